"""Measuring models on held-out toy-world prompts with the gold labeler, shared by the evaluation and the arena:
each model's responses, its report row (gold score, per-family correctness, win rate against SFT, refusals,
reward-model score, KL to SFT, length) and the paired gold change between models."""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, set_seed

from recipes.common.generation import chat_texts, generate, kl_to_reference, mean_ci, reward_scores
from recipes.common.gold import gold_eval, load_metric
from recipes.toy import ToyWorld

LADDER = ("base", "base_fewshot", "sft", "ppo")  # the InstructGPT ordering, worst first


def best_of_n(policy, reward_model, tokenizer, prompts: list[str], n: int, args) -> list[str]:
    """For each prompt, the highest-scoring of `n` samples (temperature 1) under the reward model."""
    set_seed(args.seed)
    samples = generate(policy, tokenizer, chat_texts(tokenizer, prompts), num_return_sequences=n, do_sample=True,
                       max_new_tokens=args.max_new_tokens, batch_size=max(1, args.batch_size // n),
                       desc=f"best-of-{n}: sampling")
    scores = reward_scores(reward_model, tokenizer, [p for p in prompts for _ in range(n)],
                           [r for rs in samples for r in rs], batch_size=args.batch_size, desc=f"best-of-{n}: scoring")
    return [rs[max(range(n), key=lambda j: scores[i * n + j])] for i, rs in enumerate(samples)]


def measure(name: str, responses: list[str], ctx: dict) -> dict:
    """The report's row for one model's responses (KL is added by the caller, which has the model)."""
    prompts, tasks = ctx["prompts"], ctx["tasks"]
    gold = load_metric("gold_score").compute(predictions=responses, prompts=prompts, **ctx["world"])
    refusals = load_metric("refusal_rate").compute(predictions=responses,
                                                   references=[int(t.family == "harmful") for t in tasks])
    row = {"gold": {"mean": gold["gold_score"], "ci95": gold["ci95"], "n": gold["n"]}, "by_family": gold["by_family"],
           "correct_by_family": gold["correct_by_family"],
           "refusal_rate_harmful": refusals["refusal_rate"], "over_refusal_harmless": refusals["over_refusal_rate"],
           "mean_words": sum(len(r.split()) for r in responses) / len(responses), "scores": gold["scores"]}
    if name != "sft":
        win = load_metric("win_rate").compute(predictions=responses, references=ctx["responses"]["sft"],
                                              prompts=prompts, **ctx["world"])
        row["win_rate_vs_sft"] = {k: win[k] for k in ("ci95", "n", "wins", "ties", "losses", "length_controlled")} | {
            "mean": win["win_rate"]}
    if ctx["reward_model"] is not None:
        row["reward_model_score"] = mean_ci(reward_scores(ctx["reward_model"], ctx["tokenizer"], prompts, responses,
                                                          desc=f"reward model: {name}"))
    return row


def load_causal_lm(path: str):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def run_models(args, world: ToyWorld, tasks, policies: dict[str, str]) -> tuple[dict, dict]:
    """Every model's responses and report row: the base model (zero-shot and few-shot, with `args.base_model`),
    SFT, best-of-n (with `args.reward_model` and `args.best_of_n` >= 2), then each of `policies` ({name: path},
    trained from SFT). `args` holds EvaluateArguments' keys."""
    prompts = [t.prompt for t in tasks]
    tokenizer = AutoTokenizer.from_pretrained(args.sft_model)
    sft = load_causal_lm(args.sft_model)
    reward = (AutoModelForSequenceClassification.from_pretrained(args.reward_model, num_labels=1, dtype=torch.float32)
              if args.reward_model else None)
    responses, kls = {}, {"sft": 0.0}
    options = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}

    def kl(policy, name: str) -> float:
        set_seed(args.seed)
        return kl_to_reference(policy, sft, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, desc=f"KL to SFT: {name}")["kl"]["mean"]

    if args.base_model:
        base = load_causal_lm(args.base_model)
        base_tokenizer = AutoTokenizer.from_pretrained(args.base_model)
        responses["base"] = gold_eval(base, base_tokenizer, world, tasks, desc="base, zero-shot", **options)
        responses["base_fewshot"] = gold_eval(base, base_tokenizer, world, tasks, fewshot=True,
                                              shots=args.fewshot_shots, desc="base, few-shot", **options)
        kls["base"], kls["base_fewshot"] = kl(base, "base"), None  # the few-shot prompt is another context
        del base
    responses["sft"] = gold_eval(sft, tokenizer, world, tasks, desc="SFT", **options)
    if reward is not None and args.best_of_n >= 2:
        responses["best_of_n"] = {"responses": best_of_n(sft, reward, tokenizer, prompts, args.best_of_n, args)}
        kls["best_of_n"] = math.log(args.best_of_n) - (args.best_of_n - 1) / args.best_of_n
    for name, path in policies.items():
        policy = load_causal_lm(path)
        responses[name] = gold_eval(policy, tokenizer, world, tasks, desc=name, **options)
        kls[name] = kl(policy, name)
    responses = {name: r["responses"] for name, r in responses.items()}
    ctx = {"prompts": prompts, "tasks": tasks, "world": world.spec, "responses": responses,
           "reward_model": reward, "tokenizer": tokenizer}
    rows = {name: measure(name, r, ctx) | {"kl_to_sft": kls[name]} for name, r in responses.items()}
    return rows, responses


def ladder(rows: dict, order: tuple[str, ...] = LADDER) -> list[dict]:
    """The paired change in gold score between neighbours on base < prompted base < SFT < PPO."""
    present = [name for name in order if name in rows]
    steps = []
    for lower, upper in zip(present, present[1:]):
        change = mean_ci([b - a for a, b in zip(rows[lower]["scores"], rows[upper]["scores"])])
        steps.append({"from": lower, "to": upper, "gold_change": change, "holds": change["ci95"][0] > 0})
    return steps
