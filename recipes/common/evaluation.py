"""Measuring models on held-out prompts, shared by the evaluation and the arena: each model's responses, its report
row (on the toy world: gold score, per-family correctness, win rate against SFT, refusals; everywhere: reward-model
score, KL to SFT, length), the paired gold change between models, and the verdicts of the judges that need no gold
(`recipes/common/judges.py`), checked against the gold labeler where there is one."""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from recipes.common.generation import chat_texts, generate, kl_to_reference, mean_ci, reward_scores
from recipes.common.gold import gold_eval, load_metric
from recipes.common.judges import LLMJudge, gold_verdicts, reward_model_judge, summarize
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
    row = {"mean_words": sum(len(r.split()) for r in responses) / len(responses)}
    if ctx["reward_model"] is not None:
        row["reward_model_score"] = mean_ci(ctx["reward_model"].scores(prompts, responses, f"reward model: {name}"))
    if ctx["world"] is None:
        return row
    gold = load_metric("gold_score").compute(predictions=responses, prompts=prompts, **ctx["world"])
    refusals = load_metric("refusal_rate").compute(predictions=responses,
                                                   references=[int(t.family == "harmful") for t in tasks])
    row |= {"gold": {"mean": gold["gold_score"], "ci95": gold["ci95"], "n": gold["n"]}, "by_family": gold["by_family"],
            "correct_by_family": gold["correct_by_family"], "refusal_rate_harmful": refusals["refusal_rate"],
            "over_refusal_harmless": refusals["over_refusal_rate"], "scores": gold["scores"]}
    if name != "sft":
        win = load_metric("win_rate").compute(predictions=responses, references=ctx["responses"]["sft"],
                                              prompts=prompts, **ctx["world"])
        row["win_rate_vs_sft"] = {k: win[k] for k in ("ci95", "n", "wins", "ties", "losses", "length_controlled")} | {
            "mean": win["win_rate"]}
    return row


def load_causal_lm(path: str):
    """In float32 (the KL is a small difference of log-probabilities), on the GPU where there is one."""
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(
        "cuda" if torch.cuda.is_available() else "cpu")


def run_models(args, world: ToyWorld | None, tasks, policies: dict[str, str]) -> tuple[dict, dict]:
    """Every model's responses and report row: the base model (zero-shot, and few-shot on the toy world, with
    `args.base_model`), SFT, best-of-n (with `args.reward_model` and `args.best_of_n` >= 2), then each of
    `policies` ({name: path}, trained from SFT). `tasks`: toy-world tasks, or, without a `world`, plain prompts.
    `args` holds EvaluateArguments' keys."""
    prompts = [t.prompt for t in tasks] if world is not None else list(tasks)
    tokenizer = AutoTokenizer.from_pretrained(args.sft_model)
    sft = load_causal_lm(args.sft_model)
    judge = reward_model_judge(args.reward_model, args.batch_size) if args.reward_model else None
    reward = judge.model if judge else None
    responses, kls = {}, {"sft": 0.0}
    options = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}

    def kl(policy, name: str) -> float:
        set_seed(args.seed)
        return kl_to_reference(policy, sft, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, desc=f"KL to SFT: {name}")["kl"]["mean"]

    def answer(model, model_tokenizer, desc: str) -> dict:
        if world is not None:
            return gold_eval(model, model_tokenizer, world, tasks, desc=desc, **options)
        texts = chat_texts(model_tokenizer, prompts)
        return {"responses": [r[0] for r in generate(model, model_tokenizer, texts, desc=desc, **options)]}

    if args.base_model:
        base = load_causal_lm(args.base_model)
        base_tokenizer = AutoTokenizer.from_pretrained(args.base_model)
        if not base_tokenizer.chat_template or base_tokenizer.pad_token_id is None:
            base_tokenizer = tokenizer  # a Hub base model without them: SFT's template and pad, as SFT was trained
        responses["base"] = answer(base, base_tokenizer, "base, zero-shot")
        kls["base"] = kl(base, "base")
        if world is not None:  # the fake document is a toy-world FAQ page
            responses["base_fewshot"] = gold_eval(base, base_tokenizer, world, tasks, fewshot=True,
                                                  shots=args.fewshot_shots, desc="base, few-shot", **options)
            kls["base_fewshot"] = None  # the few-shot prompt is another context
        del base
    responses["sft"] = answer(sft, tokenizer, "SFT")
    if reward is not None and args.best_of_n >= 2:
        responses["best_of_n"] = {"responses": best_of_n(sft, reward, tokenizer, prompts, args.best_of_n, args)}
        kls["best_of_n"] = math.log(args.best_of_n) - (args.best_of_n - 1) / args.best_of_n
    for name, path in policies.items():
        policy = load_causal_lm(path)
        responses[name] = answer(policy, tokenizer, name)
        kls[name] = kl(policy, name)
    responses = {name: r["responses"] for name, r in responses.items()}
    ctx = {"prompts": prompts, "tasks": tasks, "world": world.spec if world is not None else None,
           "responses": responses, "reward_model": judge}
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


def judge_models(args, rows: dict, responses: dict, prompts: list[str]) -> dict:
    """Each judge's verdicts on every model against SFT, as a win rate (and its length-controlled version) in
    `rows[name]["judges"]`; on the toy world (rows with gold scores) each verdict is checked against the gold
    labeler's on the same pair. Returns, per judge, its model and its agreement with gold over every model's pairs.
    Judges: the policy's reward model (`reward_model`), the held-out one (`judge_reward_model`), an LLM
    (`llm_judge`, `sft` for the SFT model itself)."""
    judges = {}
    if args.reward_model:
        judges["reward_model"] = reward_model_judge(args.reward_model, args.batch_size)
    if args.judge_reward_model:
        judges["judge_reward_model"] = reward_model_judge(args.judge_reward_model, args.batch_size)
    if args.llm_judge:
        path = args.sft_model if args.llm_judge == "sft" else args.llm_judge
        judges["llm_judge"] = LLMJudge(path, args.llm_judge_template, args.llm_judge_batch_size)
    baseline, gold = responses["sft"], "scores" in rows["sft"]
    agreement = load_metric("judge_agreement")
    pooled = {key: ([], []) for key in judges}
    for name in [n for n in rows if n != "sft"]:
        truth = gold_verdicts(rows[name]["scores"], rows["sft"]["scores"]) if gold else None
        for key, judge in judges.items():
            verdicts = judge.verdicts(prompts, responses[name], baseline, desc=f"{key}: {name}")
            entry = summarize(verdicts, responses[name], baseline)
            if truth is not None:
                entry["agreement_with_gold"] = agreement.compute(predictions=verdicts, references=truth)
                entry["gold_win_rate"] = sum(truth) / len(truth)
                pooled[key][0].extend(verdicts)
                pooled[key][1].extend(truth)
            rows[name].setdefault("judges", {})[key] = entry
    return {key: {"model": judge.name, **({"agreement_with_gold": agreement.compute(
        predictions=pooled[key][0], references=pooled[key][1])} if gold and pooled[key][0] else {})}
        for key, judge in judges.items()}
