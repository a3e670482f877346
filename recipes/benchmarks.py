"""Alignment tax: what RLHF cost or gained in capability, measured with lm-evaluation-harness on any stage's model.

    python -m recipes.benchmarks --config configs/tiny/benchmarks.yaml

Runs `lm_eval.simple_evaluate` (the `hf` model, so any directory or Hub id `transformers` loads) on each of
`models` for each of `tasks`, and tabulates them side by side: a fall from SFT to PPO is the alignment tax.
`tasks` are lm-eval task names (on a GPU: `gsm8k`, `arc_easy`, `hellaswag`, `ifeval`...) or this repo's toy-world
tasks, which the recipe writes as lm-eval YAML tasks over local JSONL files before it runs them (no download):
- `toy_facts`: held-out encyclopedia sentences, the true attribute against every other value of that attribute;
- `toy_arithmetic`: held-out worksheet lines, the right result against the 20 numbers around it.
Both are multiple-choice by log-likelihood (`acc`), so they measure what a model knows whatever it was tuned to say.
Outputs in `output_dir`: `tasks/` (the generated task YAML and data), `results.json` (lm-eval's results per model),
`report.md`, `config.yaml`, `stage.json` last; with `report_dir`, the table also goes into that run's `report.md`
as its "Benchmarks" section.
"""

from __future__ import annotations

import difflib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from recipes.common import report as render
from recipes.common import run_dir
from recipes.common.cli import run_main
from recipes.common.errors import ConfigError
from recipes.toy import WorldArguments

TOY_TASKS = ("toy_facts", "toy_arithmetic")
SECTION = "Benchmarks: alignment tax (lm-evaluation-harness)"


@dataclass
class BenchmarkArguments(WorldArguments):
    models: list[str] = field(default_factory=list, metadata={
        "help": "Model directories or Hub ids; a stage's `merged/` is named after its stage."})
    tasks: list[str] = field(default_factory=lambda: list(TOY_TASKS), metadata={
        "help": f"lm-eval task names, or this repo's {TOY_TASKS}."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task (all when unset)."})
    num_fewshot: int | None = None
    apply_chat_template: bool = field(default=False, metadata={
        "help": "Render each prompt with the model's chat template (instruction tasks such as ifeval)."})
    batch_size: int = 32
    num_probe_documents: int = field(default=200, metadata={"help": "Held-out toy documents the toy tasks use."})
    output_dir: str = "runs/tiny/benchmarks"
    report_dir: str | None = field(default=None, metadata={"help": "A run directory whose report.md gets the table."})
    seed: int = 0

    def __post_init__(self):
        if not self.models:
            raise ConfigError("models: name at least one model directory or Hub id")
        if not self.tasks:
            raise ConfigError("tasks: name at least one lm-eval task")


def model_name(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.name == "merged" else p.name


def toy_documents(args: BenchmarkArguments) -> dict[str, list[dict]]:
    """The toy tasks' documents, from held-out toy documents no stage trained on: {"context", "choices", "answer"}
    with `answer` the index of the true choice."""
    world = args.world()
    values: dict[str, set[str]] = {}
    for entity in world.entities:
        for attr, value in entity.facts().items():
            values.setdefault(attr, set()).add(value)
    rng = random.Random(args.seed)
    docs: dict[str, list[dict]] = {name: [] for name in TOY_TASKS}
    for probe in world.completion_probes(args.num_probe_documents):
        answer = probe["answer"]
        if probe["genre"] == "encyclopedia":
            attr = next((a for a, vs in values.items() if answer in vs), None)
            if attr is None:
                continue
            choices, task = sorted(values[attr]), "toy_facts"
        elif probe["genre"] == "worksheet" and re.fullmatch(r"-?\d+", answer):
            low = int(answer) - rng.randint(0, 20)  # the true result somewhere among 21 neighbours
            choices, task = [str(n) for n in range(low, low + 21)], "toy_arithmetic"
        else:
            continue
        docs[task].append({"context": probe["prefix"], "choices": choices, "answer": choices.index(answer)})
    return docs


def write_toy_tasks(args: BenchmarkArguments, folder: Path) -> None:
    """Each toy task as an lm-eval YAML task over a local JSONL file."""
    folder.mkdir(parents=True, exist_ok=True)
    for task, rows in toy_documents(args).items():
        data = folder / f"{task}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / f"{task}.yaml").write_text(yaml.safe_dump({
            "task": task, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "context",
            "doc_to_choice": "choices", "doc_to_target": "answer",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}, sort_keys=False))


def run(args: BenchmarkArguments, path: str, task_manager) -> dict:
    import lm_eval

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": path, "dtype": "bfloat16" if device == "cuda" else "float32"},
        tasks=args.tasks, num_fewshot=args.num_fewshot, batch_size=args.batch_size, device=device, limit=args.limit,
        apply_chat_template=args.apply_chat_template, task_manager=task_manager, log_samples=False,
        random_seed=args.seed, numpy_random_seed=args.seed, torch_random_seed=args.seed,
        fewshot_random_seed=args.seed)
    return {task: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "alias"}
            for task, metrics in results["results"].items()}


def table(results: dict[str, dict]) -> list[str]:
    """Models as rows, each task's main metrics as columns, with lm-eval's standard errors."""
    columns = []
    for per_task in results.values():
        for task, metrics in per_task.items():
            for key in metrics:  # "acc,none": a metric and its filter; lm-eval's other entries are counts
                if "," in key and "_stderr" not in key and (task, key) not in columns:
                    columns.append((task, key))
    lines = ["| model | " + " | ".join(f"{t}: {k.split(',')[0]}" for t, k in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, per_task in results.items():
        cells = []
        for task, key in columns:
            value = per_task.get(task, {}).get(key)
            stderr = per_task.get(task, {}).get(key.replace(",", "_stderr,", 1))
            cells.append("–" if value is None else f"{value:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(args: BenchmarkArguments) -> dict:
    for i, path in enumerate(args.models):
        run_dir.check_input(path, f"models[{i}]", "causal_lm")
    if args.report_dir:  # the table goes there at the end: a directory it cannot go to is said now
        run_dir.check_writable(args.report_dir, "report_dir")
    from lm_eval.tasks import TaskManager

    others = [t for t in args.tasks if t not in TOY_TASKS]
    known = TaskManager().all_tasks if others else []
    unknown = [t for t in others if t not in known]
    if unknown:
        close = {t: difflib.get_close_matches(t, [*known, *TOY_TASKS], n=1) for t in unknown}
        raise ConfigError(f"tasks: {unknown} are not lm-eval tasks nor {list(TOY_TASKS)}"
                          + "".join(f" ('{t}': did you mean '{c[0]}'?)" for t, c in close.items() if c)
                          + "; `lm-eval ls tasks` lists them")
    out = run_dir.start_stage(args.output_dir, "benchmarks")
    run_dir.save_config(out, args)
    if any(t in TOY_TASKS for t in args.tasks):
        write_toy_tasks(args, out / "tasks")
    task_manager = TaskManager(include_path=str(out / "tasks") if (out / "tasks").is_dir() else None,
                               include_defaults=not all(t in TOY_TASKS for t in args.tasks))
    results = {}
    for path in args.models:
        print(f"== {model_name(path)}: {path}", flush=True)
        results[model_name(path)] = run(args, path, task_manager)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    intro = (f"lm-evaluation-harness on every model ({', '.join(f'`{m}`' for m in args.models)}): the same tasks "
             "before and after each stage; a fall from SFT to an RL model is what the RL stage cost in capability."
             + (" The toy tasks are multiple-choice by log-likelihood on held-out toy documents: `toy_facts` picks an "
                "animal's attribute among every value of it, `toy_arithmetic` a sum's result among 21 neighbours."
                if any(t in TOY_TASKS for t in args.tasks) else "") + " ± is lm-eval's standard error.")
    lines = [intro, "", *table(results), ""]
    (out / "report.md").write_text("\n".join([f"# {SECTION}", "", *lines]))
    if args.report_dir:
        render.write_section(Path(args.report_dir) / "report.md", SECTION, lines)
    print("\n".join(table(results)))
    run_dir.mark_complete(out, "benchmarks", results)
    return results


if __name__ == "__main__":
    run_main(main, (BenchmarkArguments,))
