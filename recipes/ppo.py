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

from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, set_seed
from trl import ModelConfig, get_peft_config, get_quantization_config
from trl.experimental.ppo import PPOConfig

from recipes.common import rl
from recipes.common.adapters import model_init_kwargs
from recipes.common.cli import run_main
from recipes.common.generation import chat_texts
from recipes.common.resume import ResumablePPOTrainer

FINISH = rl.Finish("ppo", curves={
    "reward-model score": {"objective/scores": "training samples", "gold/reward_model_score": "held out, greedy"},
    "KL to SFT": {"objective/kl": "training samples"}},
    summary_keys=("objective/kl", "objective/scores", "objective/entropy", "episode"))


@dataclass
class PPOScriptArguments(rl.RLArguments):
    """Every RL stage's script keys; PPO's models are PPOConfig's keys sft_model_path and reward_model_path."""


def build_trainer(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig, tokenizer,
                  prompts: list[str]) -> ResumablePPOTrainer:
    set_seed(training_args.seed)  # before the adapter's and the value head's random init, which precede the trainer's
    tokenizer.padding_side = "left"  # PPO generates from a left-padded batch of prompts
    train = Dataset.from_dict({"input_ids": [tokenizer(text, add_special_tokens=False)["input_ids"]
                                             for text in chat_texts(tokenizer, prompts)]})
    quantization = get_quantization_config(model_args)
    on_gpu = {"": torch.cuda.current_device()} if quantization and torch.cuda.is_available() else None
    load = model_init_kwargs(model_args) | {"quantization_config": quantization, "device_map": on_gpu}
    policy = AutoModelForCausalLM.from_pretrained(training_args.sft_model_path, **load)
    peft_config = get_peft_config(model_args)
    # without an adapter to switch off, the reference is a frozen copy of the SFT model
    ref = None if peft_config else AutoModelForCausalLM.from_pretrained(training_args.sft_model_path, **load)
    value_model, reward_model = (AutoModelForSequenceClassification.from_pretrained(
        training_args.reward_model_path, num_labels=1, **model_init_kwargs(model_args)) for _ in range(2))
    callbacks = rl.gold_monitors(script_args, tokenizer, reward_model, training_args.response_length,
                                 trigger="objective/scores")
    return ResumablePPOTrainer(args=training_args, processing_class=tokenizer, model=policy, ref_model=ref,
                               reward_model=reward_model, value_model=value_model, train_dataset=train,
                               eval_dataset=train.select(range(min(64, len(train)))), peft_config=peft_config,
                               callbacks=callbacks)


CONFIG = (PPOScriptArguments, PPOConfig, ModelConfig)  # what --config and the command line fill


def main(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig):
    return rl.run_stage(FINISH, rl.prompts_to_train_on, build_trainer, script_args, training_args, model_args,
                        training_args, training_args.response_length)


if __name__ == "__main__":
    run_main(main, CONFIG)
