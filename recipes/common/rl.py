"""What the RL stages (PPO, RLOO, GRPO, DPO) share, written once: their config keys, their training prompts, the
reward model as a reward function, the gold labeler watching training, the comparison with SFT on held-out
prompts, and the finished stage's outputs.

Every RL stage trains a LoRA adapter on the merged SFT model, so its reference policy (the adapter switched off)
is the SFT model, and writes the same outputs to `output_dir`: the adapter, the tokenizer, TRL's model card,
`merged/`, `curves.png`, `log_history.json`, on the toy world `eval_results.json` (the method against SFT on
held-out prompts: gold score, win rate, reward-model score, KL to SFT) and `samples.md`; `config.yaml`;
`stage.json` last.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
    set_seed,
)
from transformers.trainer_callback import ExportableState
from trl import ScriptArguments, get_peft_config, get_quantization_config

from recipes.common import hub, run_dir
from recipes.common.adapters import check_bf16, merge_adapter, model_init_kwargs
from recipes.common.cli import ConfigError
from recipes.common.data import load_any, load_prompts
from recipes.common.errors import InputError
from recipes.common.generation import chat_texts, kl_to_reference, mean_ci, reward_scores
from recipes.common.gold import gold_eval, load_metric
from recipes.common.tokenizer import check_reward_pad, settle_pad
from recipes.toy import ToyWorld, WorldArguments


@dataclass
class RLArguments(ScriptArguments, WorldArguments):
    """Prompts, and the gold labeler's checks while training and after (toy world), of every RL stage."""

    prompt_column: str = "prompt"
    num_prompts: int = field(default=2000, metadata={"help": "Training prompts (toy world: its PPO split)."})
    max_prompt_tokens: int = field(default=256, metadata={"help": "Longer prompts are dropped."})
    gold_eval_steps: int = field(default=4, metadata={"help": "Steps between gold checks; 0 for none."})
    gold_eval_prompts: int = 128
    num_eval_prompts: int = 500
    eval_temperature: float = field(default=0.0, metadata={"help": "Decoding for the final comparison; 0: greedy."})
    min_reward_accuracy: float = field(default=0.60, metadata={
        "help": "Refuse a reward model whose held-out pairwise accuracy (its stage's eval_results.json) is lower; "
                "0 turns the check off. Not used by DPO, which does not train on the reward model."})


@dataclass
class PolicyPaths:
    """The models an RL stage starts from (PPO's own config has the same two keys)."""

    sft_model_path: str | None = field(default=None, metadata={
        "help": "The merged SFT model: the policy is a LoRA adapter on it, the reference is it."})
    reward_model_path: str | None = field(default=None, metadata={
        "help": "The merged reward model: the reward (RLOO, GRPO) and the score in the report."})


@dataclass
class OnlineArguments(RLArguments, PolicyPaths):
    """RLOO and GRPO: the reward model scores each sampled completion; one that never ends loses a penalty."""

    missing_eos_penalty: float = field(default=1.0, metadata={
        "help": "Taken off the reward of a completion cut at max_completion_length (PPO's key of the same name)."})


def check_inputs(model_args, training_args, paths, reward_model_required: bool = True,
                 min_reward_accuracy: float = 0.0) -> tuple[hub.Target | None, object]:
    """Before anything loads: the config names the SFT and reward models (`paths`), not `model_name_or_path`, and
    the stage can be uploaded if asked. Returns where the finished stage goes, and the policy's tokenizer."""
    if model_args.model_name_or_path:
        raise ConfigError("model_name_or_path: an RL stage starts from sft_model_path (the policy and its reference) "
                          "and reward_model_path; remove model_name_or_path")
    push = hub.check_push(training_args)  # fails here, not after training, if the upload could not happen
    run_dir.check_input(paths.sft_model_path, "sft_model_path", "causal_lm")
    if paths.reward_model_path is not None or reward_model_required:
        run_dir.check_input(paths.reward_model_path, "reward_model_path", "reward_model")
    if reward_model_required:
        check_reward_accuracy(paths.reward_model_path, min_reward_accuracy)
    tokenizer = policy_tokenizer(paths.sft_model_path)
    if paths.reward_model_path is not None:
        if not same_vocabulary(paths.reward_model_path, tokenizer):
            raise InputError(f"reward_model_path: {paths.reward_model_path} has another vocabulary than "
                             f"sft_model_path {paths.sft_model_path}: the reward model would read the policy's token "
                             "ids as other words. Train it from the SFT model (recipes.reward)")
        check_reward_pad(paths.reward_model_path, tokenizer.pad_token_id)
    return push, tokenizer


def same_vocabulary(reward_model_path: str, tokenizer) -> bool:
    """Whether the reward model reads token ids as the policy's tokenizer writes them: its own tokenizer's
    vocabulary where it has one, else at least its embedding size."""
    if AutoConfig.from_pretrained(reward_model_path).vocab_size < len(tokenizer):
        return False
    try:
        return AutoTokenizer.from_pretrained(reward_model_path).get_vocab() == tokenizer.get_vocab()
    except (OSError, ValueError):  # saved without a tokenizer: its embedding size is all there is to check
        return True


def policy_tokenizer(sft_model_path: str):
    """The SFT model's tokenizer, padding with a token that is neither eos nor in the chat template (settle_pad)."""
    tokenizer = AutoTokenizer.from_pretrained(sft_model_path)
    note = settle_pad(tokenizer, sft_model_path)
    if note:
        print(note)
    return tokenizer


def check_reward_accuracy(path: str, minimum: float) -> float | None:
    """Refuse a reward model whose reward stage measured a held-out pairwise accuracy below `minimum`: RL against a
    reward model that cannot rank held-out pairs optimizes noise. Returns the accuracy, or None where the model has
    no reward stage's eval_results.json beside it (a Hub model: nothing to check, said so)."""
    results = next((p / "eval_results.json" for p in (Path(path), Path(path).parent)
                    if (p / "eval_results.json").is_file()), None)
    if results is None:
        print(f"reward_model_path: {path} has no eval_results.json from a reward stage; its held-out accuracy is "
              "not checked (min_reward_accuracy)")
        return None
    try:
        accuracy = json.loads(results.read_text()).get("accuracy")
    except ValueError as error:
        raise InputError(f"reward_model_path: {results} is not valid JSON ({error}); rerun the reward stage that "
                         "wrote it") from None
    if accuracy is not None and accuracy < minimum:
        raise ConfigError(f"reward_model_path: {path} ranks held-out pairs correctly {accuracy:.1%} of the time "
                          f"({results}), below min_reward_accuracy={minimum}: RL would optimize its mistakes. Train "
                          "a better reward model (more or cleaner pairs; its diagnostics are in the same file), or "
                          "lower min_reward_accuracy (0 turns the check off) if you know why it is low")
    return accuracy


def load_reward_model(path: str | None, model_args):
    if path is None:
        return None
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **model_init_kwargs(model_args))


def training_prompts(args: RLArguments, tokenizer) -> list[str]:
    """The user prompts to train on (the toy world's PPO split, or `dataset_name`), without those whose chat
    rendering is longer than `max_prompt_tokens`."""
    if args.dataset_name is None:
        prompts = [t.prompt for t in args.world().tasks("ppo", args.num_prompts, key="num_prompts")]
    else:
        prompts = load_prompts(args.dataset_name, args.dataset_config, args.dataset_train_split, args.prompt_column,
                               args.num_prompts)
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in chat_texts(tokenizer, prompts)]
    kept = [p for p, n in zip(prompts, lengths) if n <= args.max_prompt_tokens]
    print(f"{len(kept)} prompts; {len(prompts) - len(kept)} longer than max_prompt_tokens={args.max_prompt_tokens} "
          "dropped")
    if not kept:
        raise InputError(f"no prompt fits in max_prompt_tokens={args.max_prompt_tokens}; raise it")
    return kept


def _content(turns) -> str:
    return turns[-1]["content"] if isinstance(turns, list) else turns


class RewardModelScore:
    """The trained reward model as a reward function of TRL's RLOO and GRPO trainers: each completion scored at its
    eos exactly as in reward training (`generation.reward_scores`). TRL's own scoring of a reward model re-renders
    the decoded text and pads with the eos where pad == eos, reading the score one token early (TRL #7315)."""

    __name__ = "reward_model"

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return reward_scores(self.model, self.tokenizer, [_content(p) for p in prompts],
                             [_content(c) for c in completions], desc="reward model")


class MissingEosPenalty:
    """-`penalty` for a completion that never reached eos (cut at `max_completion_length`), else 0: PPO's
    `missing_eos_penalty` as a reward function. The reward model would score the cut text as if it had ended."""

    __name__ = "missing_eos_penalty"

    def __init__(self, penalty: float, eos_token_id: int):
        self.penalty, self.eos_token_id = penalty, eos_token_id

    def __call__(self, completion_ids, **kwargs) -> list[float]:
        return [0.0 if self.eos_token_id in ids else -self.penalty for ids in completion_ids]


class AdapterOff:
    """A LoRA policy's reference: the same model with its adapter switched off (what TRL's trainers use), callable
    where `generation.kl_to_reference` expects a model."""

    def __init__(self, policy):
        self.policy = policy

    def eval(self):
        return self

    def __call__(self, **inputs):
        with self.policy.disable_adapter():
            return self.policy(**inputs)


class GoldMonitor(TrainerCallback, ExportableState):
    """Logs the gold score, reward-model score and length of the policy's greedy responses to held-out prompts, and
    the KL to SFT of its samples on them (LoRA policies), before training and every `every` steps on the log that
    carries `trigger` (a key the trainer logs each step), and at the end says whether the gold score fell while the
    reward-model score rose. The same held-out measure for every method: gold and reward-model score against KL is
    the overoptimization picture (`recipes.arena` plots it). Its checks are saved with each checkpoint
    (`trainer_state.json`) and taken back by a resumed run, which does not check again at its start."""

    def __init__(self, tokenizer, world: ToyWorld, tasks, reward_model, every: int, max_new_tokens: int,
                 trigger: str = "loss"):
        self.tokenizer, self.world, self.tasks, self.reward_model = tokenizer, world, tasks, reward_model
        self.every, self.max_new_tokens, self.trigger = every, max_new_tokens, trigger
        self.checks: list[tuple[int, list[float], float | None]] = []  # (step, gold per prompt, mean RM score)
        self.overoptimization: dict | None = None

    def measure(self, model, step: int) -> dict:
        policy = getattr(model, "policy", model)  # PPO's trainer wraps the policy with the value model
        training = policy.training
        result = gold_eval(policy, self.tokenizer, self.world, self.tasks, max_new_tokens=self.max_new_tokens,
                           desc="gold check")
        tokens = [len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in result["responses"]]
        metrics = {"gold/score": result["gold"]["mean"], "gold/response_tokens": sum(tokens) / len(tokens)}
        rm = None
        if self.reward_model is not None:
            scores = reward_scores(self.reward_model, self.tokenizer, [t.prompt for t in self.tasks],
                                   result["responses"])
            rm = metrics["gold/reward_model_score"] = sum(scores) / len(scores)
        if hasattr(policy, "disable_adapter"):
            with torch.random.fork_rng():  # the same samples at every check, and training's own stream untouched
                torch.manual_seed(0)
                kl = kl_to_reference(policy, AdapterOff(policy), self.tokenizer, [t.prompt for t in self.tasks],
                                     max_new_tokens=self.max_new_tokens, desc="KL check")
            metrics["gold/kl_to_sft"] = kl["kl"]["mean"]
        policy.train(training)
        self.checks.append((step, result["scores"], rm))
        return metrics

    def state(self) -> dict:
        return {"args": {}, "attributes": {"checks": self.checks}}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__)
        if state.global_step > 0 and saved:  # resumed: the checks so far are in the checkpoint
            self.checks = [tuple(check) for check in saved["attributes"]["checks"]]
            return
        state.log_history.append({"step": 0, "episode": 0, **self.measure(model, 0)})

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        step = state.global_step
        due = step % self.every == 0 or step == state.max_steps
        if self.trigger in logs and due and self.checks[-1][0] != step:
            metrics = self.measure(model, step)
            logs.update(metrics)  # printed by the progress callback, which runs after this one
            state.log_history[-1].update(metrics)

    def on_train_end(self, args, state, control, **kwargs):
        """Overoptimization: the last check's gold score is below the best check's (paired over the same prompts,
        the whole 95% CI of the difference below 0) while its reward-model score is higher."""
        best = max(self.checks, key=lambda check: sum(check[1]))
        last = self.checks[-1]
        drop = mean_ci([b - a for a, b in zip(best[1], last[1])])
        if drop["ci95"][1] < 0 and last[2] is not None and last[2] > best[2]:
            self.overoptimization = {"best_step": best[0], "gold_at_best": sum(best[1]) / len(best[1]),
                                     "gold_at_end": sum(last[1]) / len(last[1]), "gold_change": drop,
                                     "reward_model_score_at_best": best[2], "reward_model_score_at_end": last[2]}
            o = self.overoptimization
            print(f"WARNING: overoptimization: the gold score fell from {o['gold_at_best']:.3f} (step {best[0]}) to "
                  f"{o['gold_at_end']:.3f} while the reward-model score rose from {best[2]:.3f} to {last[2]:.3f}; "
                  "strengthen the KL penalty or train for fewer steps")


def on_toy_world(args: RLArguments) -> bool:
    """Whether the stage trains on the toy world, so that the gold labeler can judge it: online methods without
    `dataset_name` (they use the world's prompts); DPO on the toy world's comparisons."""
    if args.dataset_name is None:
        return True
    return "gold_chosen" in load_any(args.dataset_name, args.dataset_config, args.dataset_train_split).column_names


def gold_monitors(args: RLArguments, tokenizer, reward_model, max_new_tokens: int, trigger: str) -> list:
    """The gold monitor on the toy world (held-out prompts the final comparison does not use), or nothing."""
    if not on_toy_world(args) or not args.gold_eval_steps:
        return []
    world = args.world()
    tasks = world.tasks("eval", args.num_eval_prompts + args.gold_eval_prompts,
                        key="num_eval_prompts + gold_eval_prompts")[args.num_eval_prompts:]
    return [GoldMonitor(tokenizer, world, tasks, reward_model, args.gold_eval_steps, max_new_tokens, trigger)]


def compare_with_sft(method: str, args: RLArguments, sft_path: str, policy_path, tokenizer, reward_model,
                     max_new_tokens: int, seed: int, out: Path) -> dict:
    """Gold score, reward-model score and length of SFT and the trained policy on held-out prompts; the policy's
    gold change, win rate and KL against SFT (keys `<method>_...`); samples.md."""
    world = args.world()
    tasks = world.tasks("eval", args.num_eval_prompts, key="num_eval_prompts")
    prompts = [t.prompt for t in tasks]
    models, results, responses, scores = {}, {}, {}, {}
    for name, path in (("sft", sft_path), (method, policy_path)):
        models[name] = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        torch.manual_seed(seed)
        result = gold_eval(models[name], tokenizer, world, tasks, temperature=args.eval_temperature,
                           max_new_tokens=max_new_tokens, desc=f"gold eval: {name}")
        responses[name], scores[name] = result.pop("responses"), result.pop("scores")
        if reward_model is not None:
            rm = reward_scores(reward_model, tokenizer, prompts, responses[name])
            result["reward_model_score"] = sum(rm) / len(rm)
        refusals = load_metric("refusal_rate").compute(predictions=responses[name],
                                                       references=[int(t.family == "harmful") for t in tasks])
        results[name] = {**result, "refusal_rate_harmful": refusals["refusal_rate"],
                         "over_refusal_harmless": refusals["over_refusal_rate"],
                         "mean_words": sum(len(r.split()) for r in responses[name]) / len(prompts)}
    results[f"{method}_gold_change_vs_sft"] = mean_ci([p - s for p, s in zip(scores[method], scores["sft"])])
    win = load_metric("win_rate").compute(predictions=responses[method], references=responses["sft"],
                                          prompts=prompts, **world.spec)
    results[f"{method}_win_rate_vs_sft"] = {"mean": win.pop("win_rate"), **win}
    torch.manual_seed(seed)
    results[f"{method}_kl_to_sft"] = kl_to_reference(models[method], models["sft"], tokenizer, prompts,
                                                     max_new_tokens=max_new_tokens)
    label = method.upper()
    (out / "samples.md").write_text(f"# Held-out prompts: SFT vs {label} (gold score in brackets)\n\n" + "\n".join(
        f"**{p}**\n- sft [{a:.2f}]: {s!r}\n- {method} [{b:.2f}]: {r!r}\n"
        for p, s, r, a, b in list(zip(prompts, responses["sft"], responses[method], scores["sft"],
                                      scores[method]))[:30]))
    return results


def prompts_to_train_on(script_args: RLArguments, training_args, tokenizer) -> list[str]:
    """PPO's, RLOO's and GRPO's `prepare` (see run_stage): the prompts that fit, or the reason none does."""
    return training_prompts(script_args, tokenizer)


def build_online_trainer(trainer_class, script_args: OnlineArguments, training_args, model_args, tokenizer,
                         prompts: list[str]):
    """An RLOO or GRPO trainer (they take the same arguments): a LoRA policy on the SFT model, the trained reward
    model and the missing-eos penalty as reward functions, the prompts (`prompts_to_train_on`) as conversations,
    the gold monitor."""
    set_seed(training_args.seed)  # before the adapter's random init
    train = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts]})
    reward_model = load_reward_model(script_args.reward_model_path, model_args)
    rewards = [RewardModelScore(reward_model, tokenizer),
               MissingEosPenalty(script_args.missing_eos_penalty, tokenizer.eos_token_id)]
    training_args.reward_weights = [1.0, 1.0]
    training_args.model_init_kwargs = model_init_kwargs(model_args)
    callbacks = gold_monitors(script_args, tokenizer, reward_model, training_args.max_completion_length, "reward")
    return trainer_class(model=script_args.sft_model_path, reward_funcs=rewards, args=training_args,
                         train_dataset=train, processing_class=tokenizer, callbacks=callbacks,
                         quantization_config=get_quantization_config(model_args),
                         peft_config=get_peft_config(model_args))


def build_ppo_trainer(script_args: RLArguments, training_args, model_args, tokenizer, prompts: list[str]):
    """PPO's trainer (recipes.ppo, recipes.bench): a LoRA policy on the SFT model, its reference the adapter
    switched off, value and reward models from the reward model, the prompts in the chat template, the gold monitor."""
    from recipes.common.resume import ResumablePPOTrainer  # imported here: TRL after 1.12 has no PPO

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
    callbacks = gold_monitors(script_args, tokenizer, reward_model, training_args.response_length,
                              trigger="objective/scores")
    return ResumablePPOTrainer(args=training_args, processing_class=tokenizer, model=policy, ref_model=ref,
                               reward_model=reward_model, value_model=value_model, train_dataset=train,
                               eval_dataset=train.select(range(min(64, len(train)))), peft_config=peft_config,
                               callbacks=callbacks)


ONLINE_CURVES = {
    "reward-model score": {"rewards/reward_model/mean": "training samples",
                           "gold/reward_model_score": "held out, greedy"},
    "KL to SFT": {"kl": "training samples"}}
ONLINE_SUMMARY = ("reward", "rewards/reward_model/mean", "kl", "entropy", "completions/mean_length")


def check_vllm(key: str) -> None:
    """Generation with vLLM, asked for by `key`: it needs a GPU and requirements-gpu.txt."""
    if not torch.cuda.is_available():  # said first: installing vllm would not help
        raise ConfigError(f"{key}: true needs a GPU, and this machine has none; set {key}: false")
    if importlib.util.find_spec("vllm") is None:  # found, not imported: GPU only
        raise ConfigError(f"{key}: true, but vllm is not installed; on a GPU machine `pip install -r "
                          f"requirements-gpu.txt`, or set {key}: false to generate with transformers")


def run_online(method: str, trainer_class, script_args: OnlineArguments, training_args, model_args) -> dict:
    """A whole RLOO or GRPO stage."""
    if training_args.use_vllm:
        check_vllm("use_vllm")
    if training_args.beta < 0:
        raise ConfigError(f"beta: {training_args.beta} would reward moving away from SFT; use beta > 0")
    if training_args.beta == 0:
        print("beta: 0, so no KL penalty: nothing keeps the policy near SFT but the number of steps")
    build = functools.partial(build_online_trainer, trainer_class)
    return run_stage(Finish(method, ONLINE_CURVES, ONLINE_SUMMARY), prompts_to_train_on, build, script_args,
                     training_args, model_args, script_args, training_args.max_completion_length)


def run_stage(spec: Finish, prepare, build, script_args: RLArguments, training_args, model_args, paths,
              max_new_tokens: int, reward_model_required: bool = True) -> dict:
    """A whole RL stage: the checks before anything loads; the training data, read once by
    `prepare(script_args, training_args, tokenizer)` before any output, so that a bad row or a prompt too long is
    said first; the trainer `build(script_args, training_args, model_args, tokenizer, data)` makes from them;
    training; the outputs (`finish`). `paths` holds sft_model_path and reward_model_path."""
    run_dir.check_launch(training_args, spec.method)
    check_bf16(training_args)  # bf16 on a CPU without it would be emulated, many times slower: fp32 instead
    push, tokenizer = check_inputs(model_args, training_args, paths, reward_model_required,
                                   script_args.min_reward_accuracy)
    data = prepare(script_args, training_args, tokenizer)
    out = run_dir.start_stage(training_args.output_dir, spec.method)
    run_dir.save_config(out, script_args, training_args, model_args)
    training_args.push_to_hub = False  # hub.push_finished uploads the finished stage; the Trainer would push every save
    trainer = build(script_args, training_args, model_args, tokenizer, data)
    # the gold monitor adds its figures to a step's logs: it goes first, so every reporter (TensorBoard...) sees them
    trainer.callback_handler.callbacks.sort(key=lambda callback: not isinstance(callback, GoldMonitor))
    trainer.train(resume_from_checkpoint=run_dir.last_checkpoint(out))  # a killed run goes on from its last save
    return finish(trainer, spec, script_args, training_args, model_args, paths, out, push, max_new_tokens)


@dataclass
class Finish:
    """How an RL stage's trainer logs: what `curves.png` plots ({panel title: {logged key: legend label}}) and
    which keys of its last training log go to stage.json."""

    method: str
    curves: dict[str, dict[str, str]]
    summary_keys: tuple[str, ...]


def finish(trainer, spec: Finish, script_args: RLArguments, training_args, model_args, paths, out: Path,
           push, max_new_tokens: int) -> dict:
    """Everything after `trainer.train()`: save and merge the adapter, card, curves, the comparison with SFT on the
    toy world, stage.json, upload."""
    method, label = spec.method, spec.method.upper()
    trainer.save_model(out)
    if not run_dir.is_main_process():  # the rest is written once, by the main process; the launcher waits for it
        return {}
    final = merge_adapter(out, out / "merged", model_args) if model_args.use_peft else out
    trainer.create_model_card(model_name=out.name, dataset_name=script_args.dataset_name or "toy-world prompts",
                              tags=["rlhf-recipes", method, "lora"])
    history = trainer.state.log_history
    (out / "log_history.json").write_text(json.dumps(history, indent=1))
    run_dir.plot_curves(out, history, {**spec.curves, "gold score": {"gold/score": "held out, greedy"},
                                       "response length (tokens)": {"gold/response_tokens": "held out, greedy"}},
                        label, "curves.png")
    last = next((row for row in reversed(history) if spec.summary_keys[0] in row), {})
    metrics = {k: last[k] for k in spec.summary_keys if k in last}
    monitor = next((c for c in trainer.callback_handler.callbacks if isinstance(c, GoldMonitor)), None)
    if monitor is not None:
        metrics["overoptimization"] = monitor.overoptimization  # None: not seen
    if on_toy_world(script_args) and script_args.num_eval_prompts:
        reward_model = load_reward_model(paths.reward_model_path, model_args)
        e = metrics["eval"] = compare_with_sft(method, script_args, paths.sft_model_path, final,
                                               trainer.processing_class, reward_model, max_new_tokens,
                                               training_args.seed, out)
        win, kl = e[f"{method}_win_rate_vs_sft"], e[f"{method}_kl_to_sft"]["kl"]["mean"]
        print(f"gold: sft {e['sft']['gold']['mean']:.3f}, {method} {e[method]['gold']['mean']:.3f}; {label} win rate "
              f"vs SFT {win['mean']:.3f} (95% CI {win['ci95'][0]:.3f}-{win['ci95'][1]:.3f}); KL to SFT {kl:.2f}")
        rm = (e["sft"].get("reward_model_score"), e[method].get("reward_model_score"))
        if e[f"{method}_gold_change_vs_sft"]["ci95"][1] < 0 and None not in rm and rm[1] > rm[0]:
            print(f"WARNING: overoptimization: on held-out prompts {label}'s gold score is below SFT's "
                  f"({e[method]['gold']['mean']:.3f} vs {e['sft']['gold']['mean']:.3f}) while its reward-model score "
                  f"is higher ({rm[1]:.3f} vs {rm[0]:.3f}); strengthen the KL penalty or train for fewer steps")
            below = {"gold_change": e[f"{method}_gold_change_vs_sft"],
                     "reward_model_scores": dict(zip(("sft", method), rm))}
            metrics["overoptimization"] = {**(metrics.get("overoptimization") or {}), "below_sft": below}
        results = {**e, "overoptimization": metrics.get("overoptimization")}
        (out / "eval_results.json").write_text(json.dumps(results, indent=2))
    run_dir.mark_complete(out, method, metrics)
    hub.push_finished(out, push)
    return metrics
