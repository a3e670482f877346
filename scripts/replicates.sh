#!/usr/bin/env bash
# The replicate benchmark: the main job's pipeline for seeds 0..N-1 (default 4), then one table of what held on
# each seed, in runs/replicates.md. About 11 minutes a seed on 2 CPU cores. Extra arguments go to recipes.replicates.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" -m recipes.replicates --pipeline_config configs/tiny/pipeline.yaml --num_seeds "${1:-4}" "${@:2}"
