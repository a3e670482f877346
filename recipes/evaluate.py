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
`responses.jsonl` (every response with its gold score), `config.yaml`, and `stage.json` last; `recipes/common/report.py`
writes the first two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import report as render
from recipes.common import run_dir
from recipes.common.cli import parse_config
from recipes.common.evaluation import ladder, run_models
from recipes.toy import WorldArguments


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
    rows, responses = run_models(args, world, tasks, {"ppo": args.ppo_model} if args.ppo_model else {})
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
