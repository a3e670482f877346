"""Stage 3, RLOO: REINFORCE with a leave-one-out baseline against the reward model, with a LoRA policy.

    python -m recipes.rloo --config configs/tiny/rloo.yaml

TRL's `RLOOTrainer`. Critic-free: it samples `num_generations` completions per prompt and uses the mean reward of
the others as each one's baseline, so there is no value model to train. PPO's settings map onto it as TRL's
migration guide says: `kl_coef` -> `beta` (the KL penalty, taken off the reward as in PPO), `response_length` ->
`max_completion_length`, the reward model -> `reward_model_path` (scored at the completion's eos as in reward
training), `missing_eos_penalty` -> a reward function of its own. The policy is a LoRA adapter on the merged SFT
model (`sft_model_path`); its reference, the adapter switched off, is the SFT model. Prompts: the toy world's
PPO split, or `dataset_name`. Outputs and gold checks as PPO's (`recipes/common/rl.py`).
With `push_to_hub: true` the finished stage is uploaded as SFT's is (`recipes/common/hub.py`).
"""

from __future__ import annotations

from trl import ModelConfig, RLOOConfig, RLOOTrainer

from recipes.common import rl
from recipes.common.cli import run_main


def main(script_args: rl.OnlineArguments, training_args: RLOOConfig, model_args: ModelConfig) -> dict:
    return rl.run_online("rloo", RLOOTrainer, script_args, training_args, model_args)


if __name__ == "__main__":
    run_main(main, (rl.OnlineArguments, RLOOConfig, ModelConfig))
