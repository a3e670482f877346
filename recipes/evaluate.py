"""Evaluation: the pipeline's models side by side on held-out prompts, scored by the toy world's gold labeler
and by judges that need no gold, each checked against it.

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

Judges (`recipes/common/judges.py`), for data without a gold labeler: the policy's own reward model, a held-out reward
model (`judge_reward_model`, trained on `recipes.compare`'s `judge_comparisons`, pairs the policy's reward model
never saw) and an LLM judge (`llm_judge`, any chat model, asked pairwise with `llm_judge_template`, both orders). Each
gives every model's win rate against SFT, raw and length-controlled; on the toy world, also how often its verdicts
agree with the gold labeler's on the same pairs, so a reader learns how far to trust it on real data.
With `dataset_name`, the prompts come from a dataset (its `dataset_split`, `prompt_column` or any conversational
layout) and there is no gold: the report gives the judges, reward-model score, KL and length.

Outputs: `report_dir/report.md` and `report.json`; in `output_dir`, `report.png` (the table as bars),
`responses.jsonl` (every response with its gold score), `config.yaml`, and `stage.json` last; `recipes/common/report.py`
writes the first two.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from recipes.common import report as render
from recipes.common import run_dir
from recipes.common.arguments import CONFIGS, EvaluateArguments
from recipes.common.cli import run_main
from recipes.common.data import load_prompts
from recipes.common.errors import ConfigError, InputError, MissingInputError
from recipes.common.evaluation import judge_models, ladder, run_models
from recipes.common.judges import check_template

CONFIG = CONFIGS["evaluate"]  # what --config and the command line fill (recipes/common/arguments.py)


def main(args: EvaluateArguments) -> dict:
    if not args.sft_model:
        raise ConfigError("sft_model is not set: the report compares every model with SFT")
    kinds = {"sft_model": "causal_lm", "base_model": "causal_lm", "ppo_model": "causal_lm",
             "reward_model": "reward_model", "judge_reward_model": "reward_model", "dataset_name": None}
    for key, kind in kinds.items():
        if getattr(args, key):
            run_dir.check_input(getattr(args, key), key, kind)
    if args.llm_judge and args.llm_judge != "sft":
        run_dir.check_input(args.llm_judge, "llm_judge", "causal_lm")
    if args.llm_judge and not AutoTokenizer.from_pretrained(
            args.sft_model if args.llm_judge == "sft" else args.llm_judge).chat_template:
        raise InputError(f"llm_judge: {args.llm_judge} has no chat template; use a chat (instruct) model as the judge")
    if args.llm_judge and not Path(args.llm_judge_template).is_file():
        in_repo = Path(__file__).resolve().parents[1] / args.llm_judge_template  # the default, run from elsewhere
        if not in_repo.is_file():
            raise MissingInputError(f"llm_judge_template: {args.llm_judge_template} does not exist")
        args.llm_judge_template = str(in_repo)
    if args.llm_judge:
        check_template(args.llm_judge_template)
    # the report is written after every model is evaluated: a directory it cannot go to is said now
    report_dir = run_dir.check_writable(args.report_dir or Path(args.output_dir).parent, "report_dir")
    out = run_dir.start_stage(args.output_dir, "evaluate")
    run_dir.save_config(out, args)
    world = None if args.dataset_name else args.world()
    if world is not None:
        tasks = world.tasks("eval", args.num_prompts, key="num_prompts")
        prompts = [t.prompt for t in tasks]
    else:
        tasks = prompts = load_prompts(args.dataset_name, args.dataset_config, args.dataset_split,
                                       args.prompt_column, args.num_prompts)
    rows, responses = run_models(args, world, tasks, {"ppo": args.ppo_model} if args.ppo_model else {})
    judges = judge_models(args, rows, responses, prompts)
    report = {"run": str(report_dir), "num_prompts": len(prompts), "gold": world is not None, "models": rows,
              "judges": judges, "ordering": ladder(rows) if world is not None else []}
    with (out / "responses.jsonl").open("w") as f:
        for i, prompt in enumerate(prompts):
            family = {"family": tasks[i].family} if world is not None else {}
            f.write(json.dumps({"prompt": prompt, **family, **{name: {"response": responses[name][i], **(
                {"gold": rows[name]["scores"][i]} if world is not None else {})} for name in rows}}) + "\n")
    figure = render.plot(out / "report.png", rows)
    curves = Path(args.ppo_model).parent / "curves.png" if args.ppo_model else None
    render.write_markdown(report_dir / "report.md", report, tasks, responses, figure,
                          curves if curves and curves.exists() else None, args.num_samples)
    for row in rows.values():
        row.pop("scores", None)  # per prompt, in responses.jsonl
    (report_dir / "report.json").write_text(json.dumps(report, indent=2))
    for name, row in rows.items():
        verdicts = "  ".join(f"{key} {render.ci(j)}" for key, j in row.get("judges", {}).items())
        print(f"{render.NAMES[name]:32s} gold {render.ci(row.get('gold'))}  "
              f"win vs SFT {render.ci(row.get('win_rate_vs_sft'))}  {verdicts}")
    for step in report["ordering"]:
        print(f"{step['from']} -> {step['to']}: gold change {render.ci(step['gold_change'])}"
              f"{'' if step['holds'] else '  (NOT above 0)'}")
    print(f"report: {report_dir / 'report.md'}")
    summary = {name: {"gold": row.get("gold", {}).get("mean"),
                      "win_rate_vs_sft": row.get("win_rate_vs_sft", {}).get("mean"),
                      **{f"{key}_win_rate": j["mean"] for key, j in row.get("judges", {}).items()}}
               for name, row in rows.items()}
    run_dir.mark_complete(out, "evaluate", {"models": summary, "ordering_holds": all(
        s["holds"] for s in report["ordering"])})
    return report


if __name__ == "__main__":
    run_main(main, CONFIG)
