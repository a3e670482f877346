#!/usr/bin/env bash
# Creates .venv (once) and installs requirements.txt into it (again whenever the file changes).
# Sourced by scripts/run.sh and scripts/test.sh; set RLHF_VENV=none to install into the current Python instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${RLHF_VENV:-.venv}
if [ "$VENV" = none ]; then
  PY=${PYTHON:-python3}
else
  if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV" || {
      echo "error: could not create $VENV with '${PYTHON:-python3} -m venv' (on Debian/Ubuntu: apt install python3-venv)," \
           "or set RLHF_VENV=none to install into the current Python." >&2
      exit 1
    }
  fi
  PY=$VENV/bin/python
fi
stamp="$VENV/.requirements.sha256"
[ "$VENV" = none ] && stamp=.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing requirements.txt into $VENV (a few minutes the first time)..."
  "$PY" -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
