"""Stage 3, GRPO: group-relative policy optimization against the reward model, with a LoRA policy.

    python -m recipes.grpo --config configs/tiny/grpo.yaml

TRL's `GRPOTrainer`. Critic-free: it samples `num_generations` completions per prompt and standardizes each
one's reward within its group, so there is no value model. Unlike PPO and RLOO, the KL to the reference is a term
of the loss, weighted by `beta`, whose TRL default is 0 (no reference at all); the configs here set it. The reward
is the reward model's score at the completion's eos, as in reward training (`reward_model_path`), minus
`missing_eos_penalty` for a completion that never ends. The policy is a LoRA adapter on the merged SFT model
(`sft_model_path`); its reference, the adapter switched off, is the SFT model. Prompts: the toy world's PPO
split, or `dataset_name`. Outputs and gold checks as PPO's (`recipes/common/rl.py`).
With `push_to_hub: true` the finished stage is uploaded as SFT's is (`recipes/common/hub.py`).
"""

from __future__ import annotations

from trl import GRPOConfig, GRPOTrainer, ModelConfig

from recipes.common import rl
from recipes.common.cli import run_main


def main(script_args: rl.OnlineArguments, training_args: GRPOConfig, model_args: ModelConfig) -> dict:
    return rl.run_online("grpo", GRPOTrainer, script_args, training_args, model_args)


if __name__ == "__main__":
    run_main(main, (rl.OnlineArguments, GRPOConfig, ModelConfig))
