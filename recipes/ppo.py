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
A killed run restarts from the beginning when rerun (TRL's PPO trainer cannot resume from a checkpoint).
With `push_to_hub: true` the finished stage is uploaded as SFT's is (`recipes/hub.py`): adapter to `hub_model_id`,
`merged/` to `<hub_model_id>-merged`, private unless `hub_private_repo: false`; offline it stops before it starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
    set_seed,
)
from trl import ModelConfig, ScriptArguments, get_peft_config, get_quantization_config
from trl.experimental.ppo import PPOConfig, PPOTrainer

from recipes import hub, run_dir
from recipes.adapters import merge_adapter, model_init_kwargs
from recipes.cli import ConfigError, parse_config
from recipes.data import load_prompts
from recipes.generation import chat_texts, kl_to_reference, mean_ci, reward_scores
from recipes.gold import gold_eval, load_metric
from recipes.toy_world import ToyWorld, WorldArguments


@dataclass
class PPOScriptArguments(ScriptArguments, WorldArguments):
    prompt_column: str = "prompt"
    num_prompts: int = field(default=2000, metadata={"help": "Training prompts (toy world: its PPO split)."})
    max_prompt_tokens: int = field(default=256, metadata={"help": "Longer prompts are dropped."})
    # Toy world: the gold labeler watches training, then compares PPO with SFT
    gold_eval_steps: int = field(default=4, metadata={"help": "Steps between gold checks; 0 for none."})
    gold_eval_prompts: int = 128
    num_eval_prompts: int = 500
    eval_temperature: float = field(default=0.0, metadata={"help": "Decoding for the final comparison; 0: greedy."})


class GoldMonitor(TrainerCallback):
    """Logs the gold score, reward-model score and length of the policy's greedy responses to held-out prompts,
    and at the end says whether the gold score fell while the reward-model score rose."""

    def __init__(self, tokenizer, world: ToyWorld, tasks, reward_model, every: int, max_new_tokens: int):
        self.tokenizer, self.world, self.tasks, self.reward_model = tokenizer, world, tasks, reward_model
        self.every, self.max_new_tokens = every, max_new_tokens
        self.checks: list[tuple[int, list[float], float]] = []  # (step, gold score per prompt, mean RM score)
        self.overoptimization: dict | None = None

    def measure(self, policy, step: int) -> dict:
        training = policy.training
        result = gold_eval(policy, self.tokenizer, self.world, self.tasks, max_new_tokens=self.max_new_tokens,
                           desc="gold check")
        policy.train(training)
        prompts = [t.prompt for t in self.tasks]
        rm = reward_scores(self.reward_model, self.tokenizer, prompts, result["responses"])
        tokens = [len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in result["responses"]]
        self.checks.append((step, result["scores"], sum(rm) / len(rm)))
        return {"gold/score": result["gold"]["mean"], "gold/reward_model_score": sum(rm) / len(rm),
                "gold/response_tokens": sum(tokens) / len(tokens)}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        state.log_history.append({"step": 0, "episode": 0, **self.measure(model.policy, 0)})

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if "objective/scores" in logs and (state.global_step % self.every == 0 or state.global_step == state.max_steps):
            metrics = self.measure(model.policy, state.global_step)
            logs.update(metrics)  # printed by the progress callback, which runs after this one
            state.log_history[-1].update(metrics)

    def on_train_end(self, args, state, control, **kwargs):
        """Overoptimization: the last check's gold score is below the best check's (paired over the same prompts,
        the whole 95% CI of the difference below 0) while its reward-model score is higher."""
        best = max(self.checks, key=lambda check: sum(check[1]))
        last = self.checks[-1]
        drop = mean_ci([b - a for a, b in zip(best[1], last[1])])
        if drop["ci95"][1] < 0 and last[2] > best[2]:
            self.overoptimization = {"best_step": best[0], "gold_at_best": sum(best[1]) / len(best[1]),
                                     "gold_at_end": sum(last[1]) / len(last[1]), "gold_change": drop,
                                     "reward_model_score_at_best": best[2], "reward_model_score_at_end": last[2]}
            o = self.overoptimization
            print(f"WARNING: overoptimization: the gold score fell from {o['gold_at_best']:.3f} (step {best[0]}) to "
                  f"{o['gold_at_end']:.3f} while the reward-model score rose from {best[2]:.3f} to {last[2]:.3f}; "
                  "raise kl_coef or train for fewer episodes")


def load_dataset_prompts(args: PPOScriptArguments, tokenizer) -> Dataset:
    if args.dataset_name is None:
        prompts = [t.prompt for t in args.world().tasks("ppo", args.num_prompts)]
    else:
        prompts = load_prompts(args.dataset_name, args.dataset_config, args.dataset_train_split, args.prompt_column,
                               args.num_prompts)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in chat_texts(tokenizer, prompts)]
    kept = [row for row in ids if len(row) <= args.max_prompt_tokens]
    print(f"{len(kept)} prompts; {len(ids) - len(kept)} longer than max_prompt_tokens={args.max_prompt_tokens} dropped")
    if not kept:
        raise ValueError(f"no prompt fits in max_prompt_tokens={args.max_prompt_tokens}; raise it")
    return Dataset.from_dict({"input_ids": kept})


def compare_with_sft(args, training_args, tokenizer, reward_model, world, final, out) -> dict:
    """Gold score, reward-model score and length of SFT and PPO on held-out prompts; PPO's win rate and KL."""
    tasks = world.tasks("eval", args.num_eval_prompts)
    prompts = [t.prompt for t in tasks]
    models, results, responses, scores = {}, {}, {}, {}
    for name, path in (("sft", training_args.sft_model_path), ("ppo", final)):
        models[name] = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        torch.manual_seed(training_args.seed)
        result = gold_eval(models[name], tokenizer, world, tasks, temperature=args.eval_temperature,
                           max_new_tokens=training_args.response_length, desc=f"gold eval: {name}")
        responses[name], scores[name] = result.pop("responses"), result.pop("scores")
        rm = reward_scores(reward_model, tokenizer, prompts, responses[name])
        results[name] = {**result, "reward_model_score": sum(rm) / len(rm),
                         "mean_words": sum(len(r.split()) for r in responses[name]) / len(prompts)}
    results["ppo_gold_change_vs_sft"] = mean_ci([p - s for p, s in zip(scores["ppo"], scores["sft"])])
    win = load_metric("win_rate").compute(predictions=responses["ppo"], references=responses["sft"], prompts=prompts,
                                          **world.spec)
    results["ppo_win_rate_vs_sft"] = {"mean": win.pop("win_rate"), **win}
    torch.manual_seed(training_args.seed)
    results["ppo_kl_to_sft"] = kl_to_reference(models["ppo"], models["sft"], tokenizer, prompts,
                                               max_new_tokens=training_args.response_length)
    (out / "samples.md").write_text("# Held-out prompts: SFT vs PPO (gold score in brackets)\n\n" + "\n".join(
        f"**{p}**\n- sft [{a:.2f}]: {s!r}\n- ppo [{b:.2f}]: {r!r}\n"
        for p, s, r, a, b in list(zip(prompts, responses["sft"], responses["ppo"], scores["sft"], scores["ppo"]))[:30]))
    return results


def build_trainer(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig) -> PPOTrainer:
    set_seed(training_args.seed)  # before the adapter's and the value head's random init, which precede the trainer's
    tokenizer = AutoTokenizer.from_pretrained(training_args.sft_model_path, padding_side="left")
    train = load_dataset_prompts(script_args, tokenizer)
    quantization = get_quantization_config(model_args)
    on_gpu = {"": torch.cuda.current_device()} if quantization and torch.cuda.is_available() else None
    load = model_init_kwargs(model_args) | {"quantization_config": quantization, "device_map": on_gpu}
    policy = AutoModelForCausalLM.from_pretrained(training_args.sft_model_path, **load)
    peft_config = get_peft_config(model_args)
    # without an adapter to switch off, the reference is a frozen copy of the SFT model
    ref = None if peft_config else AutoModelForCausalLM.from_pretrained(training_args.sft_model_path, **load)
    value_model, reward_model = (AutoModelForSequenceClassification.from_pretrained(
        training_args.reward_model_path, num_labels=1, **model_init_kwargs(model_args)) for _ in range(2))
    callbacks = []
    if script_args.dataset_name is None and script_args.gold_eval_steps:
        world = script_args.world()
        held_out = world.tasks("eval", script_args.num_eval_prompts + script_args.gold_eval_prompts)
        callbacks.append(GoldMonitor(tokenizer, world,
                                     held_out[script_args.num_eval_prompts:], reward_model,
                                     script_args.gold_eval_steps, training_args.response_length))
    return PPOTrainer(args=training_args, processing_class=tokenizer, model=policy, ref_model=ref,
                      reward_model=reward_model, value_model=value_model, train_dataset=train,
                      eval_dataset=train.select(range(min(64, len(train)))), peft_config=peft_config,
                      callbacks=callbacks)


def main(script_args: PPOScriptArguments, training_args: PPOConfig, model_args: ModelConfig):
    if model_args.model_name_or_path:
        raise ConfigError("model_name_or_path: PPO starts from sft_model_path (the policy) and reward_model_path "
                          "(the reward and value models); remove model_name_or_path")
    push = hub.check_push(training_args)  # fails here, not after training, if the upload could not happen
    run_dir.check_input(training_args.sft_model_path, "sft_model_path")
    run_dir.check_input(training_args.reward_model_path, "reward_model_path")
    out = run_dir.start_stage(training_args.output_dir)
    run_dir.save_config(out, script_args, training_args, model_args)
    training_args.push_to_hub = False  # hub.push_finished uploads the finished stage; the Trainer would push every save
    trainer = build_trainer(script_args, training_args, model_args)
    trainer.train()
    trainer.save_model(out)
    final = merge_adapter(out, out / "merged", model_args) if trainer.is_peft_model else out
    trainer.create_model_card(model_name=out.name, dataset_name=script_args.dataset_name or "toy-world prompts",
                              tags=["rlhf-recipes", "ppo", "lora"])
    history = trainer.state.log_history
    (out / "log_history.json").write_text(json.dumps(history, indent=1))
    run_dir.plot_curves(out, history, {
        "reward-model score": {"objective/scores": "training samples", "gold/reward_model_score": "held out, greedy"},
        "gold score": {"gold/score": "held out, greedy"},
        "KL to SFT": {"objective/kl": "training samples"},
        "response length (tokens)": {"gold/response_tokens": "held out, greedy"}}, "PPO", "curves.png")
    last = next(row for row in reversed(history) if "objective/kl" in row)
    metrics = {k: last[k] for k in ("objective/scores", "objective/kl", "objective/entropy", "episode")}
    monitor = next((c for c in trainer.callback_handler.callbacks if isinstance(c, GoldMonitor)), None)
    if monitor is not None:
        metrics["overoptimization"] = monitor.overoptimization  # None: not seen
    if script_args.dataset_name is None and script_args.num_eval_prompts:
        e = metrics["eval"] = compare_with_sft(script_args, training_args, trainer.processing_class,
                                               trainer.reward_model, script_args.world(), final, out)
        print(f"gold: sft {e['sft']['gold']['mean']:.3f}, ppo {e['ppo']['gold']['mean']:.3f}; PPO win rate vs SFT "
              f"{e['ppo_win_rate_vs_sft']['mean']:.3f} (95% CI {e['ppo_win_rate_vs_sft']['ci95'][0]:.3f}-"
              f"{e['ppo_win_rate_vs_sft']['ci95'][1]:.3f}); KL to SFT {e['ppo_kl_to_sft']['kl']['mean']:.2f}")
        rm = (e["sft"]["reward_model_score"], e["ppo"]["reward_model_score"])
        if e["ppo_gold_change_vs_sft"]["ci95"][1] < 0 and rm[1] > rm[0]:
            print(f"WARNING: overoptimization: on held-out prompts PPO's gold score is below SFT's "
                  f"({e['ppo']['gold']['mean']:.3f} vs {e['sft']['gold']['mean']:.3f}) while its reward-model score "
                  f"is higher ({rm[1]:.3f} vs {rm[0]:.3f}); raise kl_coef or train for fewer episodes")
            metrics["overoptimization"] = {**(metrics.get("overoptimization") or {}), "below_sft": {
                "gold_change": e["ppo_gold_change_vs_sft"], "reward_model_scores": dict(zip(("sft", "ppo"), rm))}}
        results = {**e, "overoptimization": metrics.get("overoptimization")}
        (out / "eval_results.json").write_text(json.dumps(results, indent=2))
    run_dir.mark_complete(out, "ppo", metrics)
    hub.push_finished(out, push)
    return metrics


if __name__ == "__main__":
    main(*parse_config((PPOScriptArguments, PPOConfig, ModelConfig)))
