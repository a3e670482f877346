"""The arena: PPO, RLOO, GRPO and DPO trained from the same SFT and reward model, measured side by side.

    python -m recipes.arena --config configs/tiny/arena.yaml

After the main job (`run_dir` holds its complete `sft`, `compare` and `reward` stages), each method in `methods`
is trained by its own recipe, in its own process, from `run_dir/sft/merged` and `run_dir/reward/merged` (DPO on
`run_dir/compare/comparisons`, the pairs the reward model saw), with its config (`<method>_config`) into
`output_dir/<method>`; a complete one is skipped, so a killed arena reruns from where it stopped. Then every
model answers the same `num_prompts` held-out prompts (greedy), beside SFT and best-of-n (SFT's `best_of_n` samples
reranked by the reward model), and the gold labeler scores them.

Outputs in `output_dir`: `report.md` (the table: gold score, per-family correctness, win rate against SFT, reward-model
score, KL to SFT, refusals, length, each method's wall time and peak memory), `arena.png` (gold score and
reward-model score against sqrt(KL to SFT) along each method's training, from the gold checks on held-out prompts:
the overoptimization picture of Gao et al. 2022), `arena.json`, `config.yaml`, `stage.json` last. The table also
goes into `run_dir/report.md`, when it exists, as its "Arena" section.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from recipes.common import report as render
from recipes.common import run_dir
from recipes.common.cli import ConfigError, run_main
from recipes.common.errors import MissingInputError
from recipes.common.evaluation import run_models
from recipes.toy import FAMILIES, ToyWorld, WorldArguments

METHODS = ("ppo", "rloo", "grpo", "dpo")


@dataclass
class ArenaArguments(WorldArguments):
    run_dir: str = field(default="runs/tiny", metadata={
        "help": "The main job's run: its complete sft, compare and reward stages are every method's start."})
    output_dir: str = field(default="runs/tiny/arena", metadata={"help": "Each method's stage, the table, the plot."})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={"help": f"Of {METHODS}."})
    seed: int | None = field(default=None, metadata={
        "help": "Seeds every method and the toy world together (as the pipeline's `seed`: use the run's). Unset: "
                "each config's."})
    ppo_config: str = "configs/tiny/ppo.yaml"
    rloo_config: str = "configs/tiny/rloo.yaml"
    grpo_config: str = "configs/tiny/grpo.yaml"
    dpo_config: str = "configs/tiny/dpo.yaml"
    method_args: list[str] = field(default_factory=list, metadata={
        "help": "Command-line overrides given to every method, e.g. [--num_eval_prompts, '0']."})
    num_prompts: int = 500
    best_of_n: int = field(default=4, metadata={"help": "Samples per prompt for best-of-n; 0 to leave it out."})
    max_new_tokens: int = 64
    batch_size: int = 64

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ConfigError(f"methods: {unknown or 'none'}; choose from {METHODS}")
        for method in self.methods:
            if not Path(getattr(self, f"{method}_config")).is_file():
                raise MissingInputError(f"{method}_config: {getattr(self, f'{method}_config')} does not exist")


def command(args: ArenaArguments, method: str) -> list[str]:
    run = Path(args.run_dir)
    argv = ["--config", getattr(args, f"{method}_config"), "--sft_model_path", str(run / "sft" / "merged"),
            "--reward_model_path", str(run / "reward" / "merged"), "--output_dir", str(Path(args.output_dir) / method)]
    if method == "dpo":
        argv += ["--dataset_name", str(run / "compare" / "comparisons")]
    if args.seed is not None:
        argv += ["--seed", str(args.seed), "--world_seed", str(args.seed)]
    return [sys.executable, "-m", f"recipes.{method}", *argv, *args.method_args]


def train(args: ArenaArguments, method: str) -> dict | None:
    """Run one method's recipe in its own process, unless its stage is complete; its wall time and peak memory
    (the process's maximum resident set), or None when it was complete already."""
    if run_dir.is_complete(Path(args.output_dir) / method):
        print(f"== {method}: already complete, skipped (delete its directory to redo it)")
        return None
    cmd = command(args, method)
    print(f"== {method}: {shlex.join(cmd)}", flush=True)
    start = time.time()
    process = subprocess.Popen(cmd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"arena: {method} failed (see above); fix it and rerun the same command: complete "
                         "methods are skipped")
    seconds = round(time.time() - start, 1)
    print(f"== {method}: done in {seconds:.0f} s", flush=True)
    return {"seconds": seconds, "peak_memory_mb": round(usage.ru_maxrss / 1024)}  # Linux reports KiB


def training_checks(stage: Path) -> list[dict]:
    """The gold checks logged while the method trained: step, gold score, reward-model score, KL to SFT."""
    history = json.loads((stage / "log_history.json").read_text())
    return [{"step": row["step"], "gold": row["gold/score"], "reward_model_score": row.get("gold/reward_model_score"),
             "kl_to_sft": row["gold/kl_to_sft"]} for row in history if "gold/kl_to_sft" in row]


def plot(path: Path, checks: dict[str, list[dict]]) -> Path:
    """Gold score and reward-model score against sqrt(KL to SFT), one line per method, a point per gold check."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "gold", "gold score (noise-free labeler)"),
                           (axes[1], "reward_model_score", "reward-model score")):
        for method, rows in checks.items():
            points = [(max(r["kl_to_sft"], 0.0) ** 0.5, r[key]) for r in rows if r[key] is not None]
            if points:
                line, = ax.plot(*zip(*points), marker=".", label=render.NAMES.get(method, method))
                ax.plot(*points[-1], marker="o", markersize=8, color=line.get_color())  # the end of training
        ax.set(xlabel="sqrt(KL to SFT), nats^0.5", title=title)
        ax.legend(fontsize="small")
    fig.suptitle("Held-out checks along training (large dot: the end): overoptimization is gold falling as the "
                 "reward rises")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table(rows: dict, runs: dict) -> list[str]:
    families = [f for f in FAMILIES if f in next(iter(rows.values()))["correct_by_family"]]
    lines = ["| model | gold score | win rate vs SFT | length-controlled win rate | "
             + " | ".join(f"{f} correct" for f in families)
             + " | reward-model score | KL to SFT | refuses harmful | refuses harmless | words | wall time | "
             "peak memory |", "|---|" + "---|" * (len(families) + 10)]
    for name, row in rows.items():
        run = runs.get(name) or {}
        kl = row["kl_to_sft"]
        lines.append(
            f"| {render.NAMES[name]} | {render.ci(row['gold'])} | {render.ci(row.get('win_rate_vs_sft'))} | "
            f"{render.ci(row.get('win_rate_vs_sft', {}).get('length_controlled'))} | "
            + " | ".join(f"{row['correct_by_family'][f]:.0%}" for f in families)
            + f" | {render.ci(row.get('reward_model_score'), 2)} | {'–' if kl is None else f'{kl:.2f}'} | "
            f"{row['refusal_rate_harmful']:.0%} | {row['over_refusal_harmless']:.0%} | {row['mean_words']:.1f} | "
            + (f"{run['seconds']:.0f} s | {run['peak_memory_mb']} MB |" if run.get("seconds") else "– | – |"))
    return lines


def main(args: ArenaArguments) -> dict:
    run = Path(args.run_dir)
    for stage in ("sft", "compare", "reward"):
        if not run_dir.is_complete(run / stage):
            raise MissingInputError(f"run_dir: {run / stage} is not a complete stage; run the main job first "
                                    "(python -m recipes.pipeline --config configs/tiny/pipeline.yaml)")
    for stage in ("sft", "compare", "reward"):  # the stages each method reads: the arena must not write in them
        run_dir.check_input(str(run / stage), "run_dir")
    out = run_dir.start_stage(args.output_dir, "arena")
    run_dir.save_config(out, args)
    timings_path = out / "timings.json"  # a method skipped as complete keeps the figures of the run that made it
    runs = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for method in args.methods:
        measured = train(args, method)
        runs[method] = measured or runs.get(method)
        timings_path.write_text(json.dumps(runs, indent=2))

    world = ToyWorld(args.world_seed if args.seed is None else args.seed, args.world_entities, args.world_max_operand)
    tasks = world.tasks("eval", args.num_prompts, key="num_prompts")
    settings = SimpleNamespace(sft_model=str(run / "sft" / "merged"), base_model=None,
                               reward_model=str(run / "reward" / "merged"), best_of_n=args.best_of_n,
                               max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                               seed=args.seed if args.seed is not None else 0, fewshot_shots=3)
    rows, _ = run_models(settings, world, tasks, {m: str(out / m / "merged") for m in args.methods})
    checks = {m: training_checks(out / m) for m in args.methods}
    figure = plot(out / "arena.png", checks)
    lines = table(rows, runs)
    intro = (f"PPO, RLOO, GRPO and DPO trained from the same SFT and reward model (`{run}`), on {len(tasks)} "
             "held-out prompts scored by the noise-free gold labeler; greedy decoding except best-of-n. 95% CIs in "
             "brackets; a tie counts half of a win. Wall time and peak memory are each method's whole stage (its "
             "own process: loading, training, its own evaluation).")
    body = [intro, "", *lines, "", f"![gold and reward-model score against sqrt(KL)]({figure.name})", ""]
    (out / "report.md").write_text("\n".join(["# Arena: PPO, RLOO, GRPO and DPO from the same SFT", "", *body]))
    render.write_section(run / "report.md", "Arena: PPO, RLOO, GRPO and DPO from the same SFT",
                         [intro, "", *lines, "", f"![arena]({os.path.relpath(figure, run)})", ""])
    for row in rows.values():
        row.pop("scores")
    result = {"run": str(run), "num_prompts": len(tasks), "models": rows, "runs": runs, "training_checks": checks}
    (out / "arena.json").write_text(json.dumps(result, indent=2))
    print("\n".join(lines))
    print(f"arena: {out / 'report.md'}")
    run_dir.mark_complete(out, "arena", {name: {"gold": row["gold"]["mean"],
                                                "win_rate_vs_sft": row.get("win_rate_vs_sft", {}).get("mean")}
                                         for name, row in rows.items()})
    return result


if __name__ == "__main__":
    run_main(main, (ArenaArguments,))
