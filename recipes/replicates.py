"""The replicate benchmark: the whole pipeline once per seed, and one table of what held on each.

    python -m recipes.replicates --pipeline_config configs/tiny/pipeline.yaml --num_seeds 4

Runs `python -m recipes.pipeline --config <pipeline_config> --seed S --run_dir <output_dir>/seed<S>` for
S = 0..num_seeds-1 (each seed makes its own world, data and models: an independent replicate; complete stages are
skipped on a rerun)
and writes `<output_dir>.md` and `.json`: per seed, the base model's knowledge, SFT's and PPO's correctness and gold
score per task family, PPO's win rate against SFT with its 95% CI, refusals, the reward model's agreement with the
noise-free labeler, whether base < prompted base < SFT < PPO held, and each stage's time; then the mean and the
spread (sample standard deviation, min and max) over seeds. A result is a result only if it holds on every seed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import run_dir
from recipes.common.cli import run_main
from recipes.common.generation import mean_ci
from recipes.toy import FAMILIES

KNOWN = ("arithmetic", "fact", "list")  # the families with an answer to know


@dataclass
class ReplicateArguments:
    pipeline_config: str = field(default="configs/tiny/pipeline.yaml", metadata={
        "help": "The pipeline config to replicate."})
    num_seeds: int = field(default=4, metadata={"help": "Seeds 0..num_seeds-1."})
    output_dir: str = field(default="runs/replicates", metadata={
        "help": "Each seed runs in <output_dir>/seed<S>; the table goes to <output_dir>.md and .json."})
    pipeline_args: list[str] = field(default_factory=list, metadata={"help": "More arguments for every pipeline."})


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def family_changes(run: Path) -> dict:
    """Per task family, the paired change in gold score from SFT to PPO over the same held-out prompts."""
    path = run / "evaluate" / "responses.jsonl"
    diffs = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        if "sft" in row and "ppo" in row:
            diffs.setdefault(row["family"], []).append(row["ppo"]["gold"] - row["sft"]["gold"])
    return {family: mean_ci(d) for family, d in diffs.items()}


def summarize(run: Path) -> dict:
    """One seed's figures, from the files its stages wrote."""
    report, timings = read_json(run / "report.json"), read_json(run / "timings.json")
    models = report.get("models", {})
    sft, ppo = models.get("sft", {}), models.get("ppo", {})
    win = ppo.get("win_rate_vs_sft", {})
    knowledge = read_json(run / "pretrain" / "eval_results.json").get("knowledge", {})
    reward = read_json(run / "reward" / "eval_results.json")
    return {
        "knowledge": {genre: k["accuracy"] for genre, k in knowledge.items()},
        "sft_correct": sft.get("correct_by_family", {}), "ppo_correct": ppo.get("correct_by_family", {}),
        "sft_gold": sft.get("by_family", {}), "ppo_gold": ppo.get("by_family", {}),
        "gold_change_by_family": family_changes(run),
        "sft_mean_gold": sft.get("gold", {}).get("mean"), "ppo_mean_gold": ppo.get("gold", {}).get("mean"),
        "ppo_win_rate": win.get("mean"), "ppo_win_ci95": win.get("ci95"),
        "sft_refuses_harmful": sft.get("refusal_rate_harmful"),
        "ppo_refuses_harmful": ppo.get("refusal_rate_harmful"),
        "sft_refuses_harmless": sft.get("over_refusal_harmless"),
        "ppo_refuses_harmless": ppo.get("over_refusal_harmless"),
        "reward_gold_agreement": reward.get("gold_agreement"),
        "reward_gold_agreement_correctness": reward.get("gold_agreement_correctness_differs"),
        "reward_gold_agreement_style": reward.get("gold_agreement_only_style_differs"),
        "ordering_holds": all(step["holds"] for step in report.get("ordering", [])) if report else None,
        "ordering": {f"{s['from']}->{s['to']}": s["gold_change"]["mean"] for s in report.get("ordering", [])},
        "seconds": {stage: t for stage, t in timings.items() if isinstance(t, (int, float))},
    }


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} ({min(values):.3f}–{max(values):.3f})"


def pct(x) -> str:
    return "–" if x is None else f"{x:.0%}"


def write_table(path: Path, seeds: dict[int, dict], config: str) -> None:
    rows = list(seeds.items())
    head = "| | " + " | ".join(f"seed {s}" for s, _ in rows) + " | mean ± sd (min–max) |"
    line = "|---|" + "---|" * (len(rows) + 1)

    def row(label: str, get, fmt=lambda x: "–" if x is None else f"{x:.3f}") -> str:
        values = [get(r) for _, r in rows]
        numeric = all(isinstance(v, (int, float)) or v is None for v in values) and not any(
            isinstance(v, bool) for v in values)
        return f"| {label} | " + " | ".join(fmt(v) for v in values) + f" | {spread(values) if numeric else ''} |"

    lines = [f"# Replicates of `{config}`", "",
             f"{len(rows)} seeds; each seed makes its own toy world, data and models. 500 held-out prompts per seed, "
             "greedy, scored by the noise-free gold labeler. Correctness is the rubric's `correct` part alone.", "",
             head, line]
    for genre in ("encyclopedia", "worksheet", "word_game"):
        lines.append(row(f"base knows: {genre} probes", lambda r, g=genre: r["knowledge"].get(g), pct))
    for family in KNOWN:
        lines.append(row(f"SFT correct: {family}", lambda r, f=family: r["sft_correct"].get(f), pct))
    lines.append(row("SFT refuses harmful", lambda r: r["sft_refuses_harmful"], pct))
    lines.append(row("SFT refuses harmless", lambda r: r["sft_refuses_harmless"], pct))
    lines.append(row("reward model agrees with gold", lambda r: r["reward_gold_agreement"], pct))
    lines.append(row("… where correctness differs", lambda r: r["reward_gold_agreement_correctness"], pct))
    lines.append(row("… where only style differs", lambda r: r["reward_gold_agreement_style"], pct))
    lines.append(row("**PPO win rate vs SFT**", lambda r: r["ppo_win_rate"]))
    lines.append(row("PPO win rate, 95% CI", lambda r: r["ppo_win_ci95"],
                     lambda c: "–" if c is None else f"{c[0]:.3f}–{c[1]:.3f}"))
    lines.append(row("gold score: SFT", lambda r: r["sft_mean_gold"]))
    lines.append(row("gold score: PPO", lambda r: r["ppo_mean_gold"]))
    for family in FAMILIES:
        lines.append(row(f"gold change SFT→PPO: {family}",
                         lambda r, f=family: r["gold_change_by_family"].get(f, {}).get("mean"),
                         lambda x: "–" if x is None else f"{x:+.3f}"))
    lines.append(row("families whose gold falls (paired 95% CI below 0)", lambda r: [
        f for f, c in r["gold_change_by_family"].items() if c["ci95"][1] < 0] if r["gold_change_by_family"] else None,
        lambda x: "–" if x is None else (", ".join(f"**{f}**" for f in x) or "none")))
    for family in KNOWN:
        lines.append(row(f"PPO correct: {family}", lambda r, f=family: r["ppo_correct"].get(f), pct))
    lines.append(row("PPO refuses harmful", lambda r: r["ppo_refuses_harmful"], pct))
    lines.append(row("PPO refuses harmless", lambda r: r["ppo_refuses_harmless"], pct))
    lines.append(row("base < few-shot < SFT < PPO holds", lambda r: r["ordering_holds"],
                     lambda x: "–" if x is None else ("yes" if x else "**no**")))
    for stage in run_dir.PIPELINE_STAGES:
        lines.append(row(f"seconds: {stage}", lambda r, s=stage: r["seconds"].get(s), lambda x: "–" if x is None
                         else f"{x:.0f}"))
    lines.append(row("seconds: whole pipeline", lambda r: sum(r["seconds"].values()) or None,
                     lambda x: "–" if x is None else f"{x:.0f}"))
    path.write_text("\n".join(lines) + "\n")


def main(args: ReplicateArguments) -> dict:
    out = Path(args.output_dir)
    seeds = {}
    for seed in range(args.num_seeds):
        run = out / f"seed{seed}"
        command = [sys.executable, "-m", "recipes.pipeline", "--config", args.pipeline_config, "--seed", str(seed),
                   "--run_dir", str(run), *args.pipeline_args]
        print(f"=== replicate {seed + 1}/{args.num_seeds}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"replicates: seed {seed} failed (see above); rerun the same command to carry on")
        seeds[seed] = summarize(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(seeds, indent=2))
    write_table(out.with_suffix(".md"), seeds, args.pipeline_config)
    print(out.with_suffix(".md").read_text())
    return seeds


if __name__ == "__main__":
    run_main(main, (ReplicateArguments,))
