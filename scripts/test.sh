#!/usr/bin/env bash
# The test command: installs what it needs, then lints and runs the whole suite (offline).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" -m ruff check recipes tests metrics notebooks
"$PY" -m pytest "$@"
