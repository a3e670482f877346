"""Stage 3: RLHF with PPO against the reward model, with a LoRA policy (QLoRA with `load_in_4bit`).

    python -m recipes.ppo --config configs/tiny/ppo.yaml

TRL's `PPOTrainer` (`trl.experimental.ppo`, trl 1.12). The policy is a LoRA adapter on the merged SFT model
(`sft_model_path`), so the reference policy, the adapter switched off, is the SFT model and not the base model.
The value model starts from the reward model (`reward_model_path`), which also scores each response at its eos;
generation stops at eos and `missing_eos_penalty` is taken off responses that never end. The reward is that score
minus `kl_coef` times the KL to the SFT model. Prompts: the toy world's PPO split, or `dataset_name`.

On the toy world a callback scores greedy responses to held-out prompts with the noise-free gold labeler every
`gold_eval_steps` steps, beside the reward model's score, KL and entropy that TRL logs: if the reward-model score
climbs while the gold score falls, the policy is overoptimizing the reward model. Outputs in `output_dir`: the
adapter, the tokenizer, TRL's model card, `merged/`, `curves.png`, `log_history.json`, on the toy world
`eval_results.json` (PPO against SFT on held-out prompts) and `samples.md`; `config.yaml`; `stage.json` last.
A checkpoint every `save_steps` holds all a resumed run needs (`recipes/common/resume.py`: TRL's PPO trainer cannot
resume by itself): rerun a killed stage and it goes on from its last checkpoint, with an uninterrupted run's figures.
With `push_to_hub: true` the finished stage is uploaded as SFT's is (`recipes/common/hub.py`): adapter to
`hub_model_id`, `merged/` to `<hub_model_id>-merged`, private unless `hub_private_repo: false`; offline it stops
before it starts.
"""

from __future__ import annotations

from trl import ModelConfig

from recipes.common import rl
from recipes.common.arguments import CONFIGS, NO_PPO, PPOConfig, PPOScriptArguments  # PPOConfig: None from TRL 1.13
from recipes.common.cli import run_main

FINISH = rl.Finish("ppo", curves={
    "reward-model score": {"objective/scores": "training samples", "gold/reward_model_score": "held out, greedy"},
    "KL to SFT": {"objective/kl": "training samples"}},
    summary_keys=("objective/kl", "objective/scores", "objective/entropy", "episode"))


build_trainer = rl.build_ppo_trainer  # in the shared module: recipes.bench builds PPO's trainer too


CONFIG = CONFIGS.get("ppo")  # what --config and the command line fill (recipes/common/arguments.py); None from TRL 1.13


def main(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig):
    return rl.run_stage(FINISH, rl.prompts_to_train_on, build_trainer, script_args, training_args, model_args,
                        training_args, training_args.response_length)


if __name__ == "__main__":
    if CONFIG is None:
        raise SystemExit(f"error: {NO_PPO}")
    run_main(main, CONFIG)
