"""Stage 3, DPO: direct preference optimization on the comparison pairs, with a LoRA policy.

    python -m recipes.dpo --config configs/tiny/dpo.yaml

TRL's `DPOTrainer`. Offline: no sampling and no reward model while training. It raises the policy's
log-probability of each chosen response over the rejected one, relative to the reference, with `beta` the
strength of the implicit KL penalty. It trains on the pairs the reward model saw (`dataset_name`: the `compare`
stage's comparisons, or any preference dataset `recipes/common/formats.py` reads). The policy is a LoRA adapter on the
merged SFT model (`sft_model_path`); its reference, the adapter switched off, is the SFT model. The reward model
(`reward_model_path`, optional) only scores the held-out responses in the report. On the toy world's comparisons
the gold labeler watches training and compares DPO with SFT as it does for PPO; outputs as PPO's
(`recipes/common/rl.py`). With `push_to_hub: true` the finished stage is uploaded as SFT's is (`recipes/common/hub.py`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from transformers import set_seed
from trl import DPOConfig, DPOTrainer, ModelConfig, get_peft_config, get_quantization_config

from recipes.common import rl, run_dir
from recipes.common.adapters import model_init_kwargs
from recipes.common.cli import ConfigError, run_main
from recipes.common.data import check_fit, load_any
from recipes.common.formats import to_preference

FINISH = rl.Finish("dpo", curves={
    "reward-model score": {"gold/reward_model_score": "held out, greedy"},
    "implicit reward margin": {"rewards/margins": "training pairs"},
    "DPO loss": {"loss": "training pairs"}},
    summary_keys=("loss", "rewards/margins", "rewards/accuracies"))


@dataclass
class DPOScriptArguments(rl.RLArguments, rl.PolicyPaths):
    invalid_rows: str = field(default="error", metadata={"help": "'error' or 'skip' malformed rows."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest response in the gold checks and report."})
    max_dropped_fraction: float = field(default=0.1, metadata={
        "help": "Refuse to train when max_length would drop more than this share of the pairs (prompt too long)."})


def preference_pairs(script_args: DPOScriptArguments, max_length: int | None, tokenizer):
    """The pairs, and what max_length does to them, as TRL's DPOTrainer would do it: a pair whose prompt fills
    max_length is dropped (nothing of its answers would be left), a longer one is cut from its end. Said before
    training; more dropped than max_dropped_fraction is refused."""
    name = f"{script_args.dataset_name} [{script_args.dataset_train_split}]"
    raw = load_any(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split,
                   script_args.invalid_rows)
    pairs, report = to_preference(raw, name, script_args.invalid_rows)
    print(f"{name}: {report}")

    def length(messages, prompt=False):
        return len(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt,
                                                 return_dict=True)["input_ids"])
    check_fit("pairs", [max(length(p + c), length(p + r)) for p, c, r in zip(pairs["prompt"], pairs["chosen"],
                                                                              pairs["rejected"])],
              max_length, script_args.max_dropped_fraction, dropped_from=[length(p, True) for p in pairs["prompt"]])
    return pairs


def pairs_to_train_on(script_args: DPOScriptArguments, training_args: DPOConfig, tokenizer):
    """DPO's `prepare` (see rl.run_stage): the pairs, a bad row or too many too long said before any output."""
    return preference_pairs(script_args, training_args.max_length, tokenizer)


def build_trainer(script_args: DPOScriptArguments, training_args: DPOConfig, model_args: ModelConfig, tokenizer,
                  pairs) -> DPOTrainer:
    set_seed(training_args.seed)  # before the adapter's random init
    reward_model = rl.load_reward_model(script_args.reward_model_path, model_args)
    training_args.model_init_kwargs = model_init_kwargs(model_args)
    callbacks = rl.gold_monitors(script_args, tokenizer, reward_model, script_args.max_new_tokens, "loss")
    return DPOTrainer(model=script_args.sft_model_path, args=training_args, train_dataset=pairs,
                      processing_class=tokenizer, callbacks=callbacks,
                      quantization_config=get_quantization_config(model_args), peft_config=get_peft_config(model_args))


def main(script_args: DPOScriptArguments, training_args: DPOConfig, model_args: ModelConfig) -> dict:
    if script_args.dataset_name is None:
        raise ConfigError("dataset_name: DPO trains on preference pairs; point it at the compare stage's "
                          "comparisons (e.g. runs/tiny/compare/comparisons) or a preference dataset")
    losses = re.findall(r"`'(\w+)'`", next(f for f in dataclasses.fields(DPOConfig) if f.name == "loss_type")
                        .metadata["help"])  # TRL's own list: a typo would fail at the first training step
    if losses and set(training_args.loss_type) - set(losses):
        raise ConfigError(f"loss_type: {sorted(set(training_args.loss_type) - set(losses))} are not DPO losses; "
                          f"choose from {losses}")
    if training_args.beta <= 0:
        raise ConfigError(f"beta: {training_args.beta}; DPO needs beta > 0 (0.1 is TRL's default)")
    run_dir.check_input(script_args.dataset_name, "dataset_name")
    return rl.run_stage(FINISH, pairs_to_train_on, build_trainer, script_args, training_args, model_args,
                        script_args, script_args.max_new_tokens, reward_model_required=False)


if __name__ == "__main__":
    run_main(main, (DPOScriptArguments, DPOConfig, ModelConfig))
