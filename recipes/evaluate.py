"""Evaluation: the pipeline's models side by side on held-out prompts, scored by the toy world's gold labeler.

    python -m recipes.evaluate --config configs/tiny/evaluate.yaml

The InstructGPT comparison, on the same `num_prompts` held-out toy-world prompts:
- `base`: the base model asked zero-shot, the prompt in a chat template it never saw in pretraining;
- `base_fewshot`: the base model prompted with a "fake document", a FAQ page whose last answer is left open
  (its answer ends at the first newline);
- `sft`; `best_of_n`: `best_of_n` samples from SFT at temperature 1, the one the reward model scores highest;
- `ppo`.
Decoding is greedy except for best-of-n. Metrics are `evaluate` modules in this repo's `metrics/`: gold score with a
95% CI (`gold_score`), win rate against SFT (`win_rate`), refusal rate on harmful prompts and over-refusal on
harmless ones (`refusal_rate`); besides them, the reward model's mean score, the KL to SFT (estimated on each
model's own samples; for best-of-n the analytic log n - (n-1)/n) and the mean length in words. Between neighbours
on the ladder base < prompted base < SFT < PPO, the paired change in gold score with its CI says whether the step
helped.

Outputs: `report_dir/report.md` and `report.json`; in `output_dir`, `report.png` (the table as bars),
`responses.jsonl` (every response with its gold score), `config.yaml`, and `stage.json` last; `recipes/report.py`
writes the first two.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, set_seed

from recipes import report as render
from recipes import run_dir
from recipes.cli import parse_config
from recipes.generation import chat_texts, generate, kl_to_reference, mean_ci, reward_scores
from recipes.gold import gold_eval, load_metric
from recipes.toy_world import ToyWorld, WorldArguments

LADDER = ("base", "base_fewshot", "sft", "ppo")  # the InstructGPT ordering, worst first


@dataclass
class EvaluateArguments(WorldArguments):
    output_dir: str = field(default="runs/tiny/evaluate", metadata={"help": "Responses, plot and stage marker."})
    report_dir: str | None = field(default=None, metadata={"help": "report.md and report.json; default: the "
                                                                   "parent of output_dir (the run directory)."})
    sft_model: str = field(default=None, metadata={"help": "The baseline for win rates and KL."})
    base_model: str | None = None
    reward_model: str | None = None
    ppo_model: str | None = None
    num_prompts: int = 500
    fewshot_shots: int = 3
    best_of_n: int = field(default=4, metadata={"help": "Samples per prompt for best-of-n; 0 to leave it out."})
    max_new_tokens: int = 48
    batch_size: int = 64
    num_samples: int = field(default=10, metadata={"help": "Prompts shown side by side in the report."})
    seed: int = 0


def best_of_n(policy, reward_model, tokenizer, prompts: list[str], n: int, args: EvaluateArguments) -> list[str]:
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
        row["win_rate_vs_sft"] = {k: win[k] for k in ("ci95", "n", "wins", "ties", "losses")} | {
            "mean": win["win_rate"]}
    if ctx["reward_model"] is not None:
        row["reward_model_score"] = mean_ci(reward_scores(ctx["reward_model"], ctx["tokenizer"], prompts, responses,
                                                          desc=f"reward model: {name}"))
    return row


def load_causal_lm(path: str):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def run_models(args: EvaluateArguments, world: ToyWorld, tasks) -> tuple[dict, dict]:
    """Every model's responses, and its KL to SFT where it has one."""
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
    if args.ppo_model:
        ppo = load_causal_lm(args.ppo_model)
        responses["ppo"] = gold_eval(ppo, tokenizer, world, tasks, desc="PPO", **options)
        kls["ppo"] = kl(ppo, "ppo")
    responses = {name: r["responses"] for name, r in responses.items()}
    ctx = {"prompts": prompts, "tasks": tasks, "world": world.spec, "responses": responses,
           "reward_model": reward, "tokenizer": tokenizer}
    rows = {name: measure(name, r, ctx) | {"kl_to_sft": kls[name]} for name, r in responses.items()}
    return rows, responses


def ladder(rows: dict) -> list[dict]:
    """The paired change in gold score between neighbours on base < prompted base < SFT < PPO."""
    present = [name for name in LADDER if name in rows]
    steps = []
    for lower, upper in zip(present, present[1:]):
        change = mean_ci([b - a for a, b in zip(rows[lower]["scores"], rows[upper]["scores"])])
        steps.append({"from": lower, "to": upper, "gold_change": change, "holds": change["ci95"][0] > 0})
    return steps


def main(args: EvaluateArguments) -> dict:
    if not args.sft_model:
        raise ValueError("sft_model is not set: the report compares every model with SFT")
    for key in ("sft_model", "base_model", "reward_model", "ppo_model"):
        if getattr(args, key):
            run_dir.check_input(getattr(args, key), key)
    out = run_dir.start_stage(args.output_dir)
    report_dir = Path(args.report_dir) if args.report_dir else out.parent
    run_dir.save_config(out, args)
    world = args.world()
    tasks = world.tasks("eval", args.num_prompts)
    rows, responses = run_models(args, world, tasks)
    report = {"run": str(report_dir), "num_prompts": len(tasks), "models": rows, "ordering": ladder(rows)}
    with (out / "responses.jsonl").open("w") as f:
        for i, task in enumerate(tasks):
            f.write(json.dumps({"prompt": task.prompt, "family": task.family, **{
                name: {"response": responses[name][i], "gold": rows[name]["scores"][i]} for name in rows}}) + "\n")
    figure = render.plot(out / "report.png", rows)
    curves = Path(args.ppo_model).parent / "curves.png" if args.ppo_model else None
    render.write_markdown(report_dir / "report.md", report, tasks, responses, figure,
                   curves if curves and curves.exists() else None, args.num_samples)
    for row in rows.values():
        row.pop("scores")  # per prompt, in responses.jsonl
    (report_dir / "report.json").write_text(json.dumps(report, indent=2))
    for name, row in rows.items():
        print(f"{render.NAMES[name]:32s} gold {render.ci(row['gold'])}  "
              f"win vs SFT {render.ci(row.get('win_rate_vs_sft'))}")
    for step in report["ordering"]:
        print(f"{step['from']} -> {step['to']}: gold change {render.ci(step['gold_change'])}"
              f"{'' if step['holds'] else '  (NOT above 0)'}")
    print(f"report: {report_dir / 'report.md'}")
    summary = {name: {"gold": row["gold"]["mean"], "win_rate_vs_sft": row.get("win_rate_vs_sft", {}).get("mean")}
               for name, row in rows.items()}
    run_dir.mark_complete(out, "evaluate", {"models": summary, "ordering_holds": all(
        s["holds"] for s in report["ordering"])})
    return report


if __name__ == "__main__":
    main(*parse_config((EvaluateArguments,)))
