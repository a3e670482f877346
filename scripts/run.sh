#!/usr/bin/env bash
# The main job: installs what it needs, then runs the pipeline on the embedded toy world, offline, into
# runs/tiny/. A rerun skips the stages that are complete. Extra arguments go to recipes.pipeline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" -m recipes.pipeline --config configs/tiny/pipeline.yaml "$@"
