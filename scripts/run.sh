#!/usr/bin/env bash
# The main job: installs what it needs, then runs the pipeline's stages that exist so far on the embedded toy
# world, offline, into runs/tiny/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" -m recipes.pretrain --config configs/tiny/pretrain.yaml
"$PY" -m recipes.sft --config configs/tiny/sft.yaml
"$PY" -m recipes.compare --config configs/tiny/compare.yaml
"$PY" -m recipes.reward --config configs/tiny/reward.yaml
"$PY" -m recipes.ppo --config configs/tiny/ppo.yaml
