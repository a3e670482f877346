"""The evaluation's report: `report.md` (the table, the InstructGPT ordering, PPO's curves, scores per task family,
samples side by side) and `report.png` (the table as bars), from the rows `recipes/evaluate.py` measures."""

from __future__ import annotations

import os
from pathlib import Path

NAMES = {"base": "base, zero-shot", "base_fewshot": "base, few-shot prompted", "sft": "SFT",
         "best_of_n": "best-of-n (SFT + reward model)", "ppo": "PPO", "rloo": "RLOO", "grpo": "GRPO", "dpo": "DPO"}
SHORT = {"base": "base", "base_fewshot": "base\nfew-shot", "sft": "SFT", "best_of_n": "best-of-n", "ppo": "PPO",
         "rloo": "RLOO", "grpo": "GRPO", "dpo": "DPO"}
# A section another command keeps in report.md (the arena's), between these markers; the evaluation keeps it too.
SECTION = "<!-- section: {} -->"
SECTION_END = "<!-- end of section -->"


def ci(x: dict | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x['mean']:.{digits}f} ({x['ci95'][0]:.{digits}f} to {x['ci95'][1]:.{digits}f})"


def write_section(path: Path, title: str, lines: list[str]) -> None:
    """Put `## title` and `lines` into the report at `path` (if it exists), replacing an earlier version of the
    same section."""
    if not path.exists():
        return
    text = _without_section(path.read_text(), title)
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join([SECTION.format(title), f"## {title}", "", *lines,
                                                           SECTION_END]) + "\n")


def _without_section(text: str, title: str) -> str:
    start = text.find(SECTION.format(title))
    if start < 0:
        return text
    end = text.find(SECTION_END, start)
    return text[:start] + (text[end + len(SECTION_END):].lstrip("\n") if end >= 0 else "")


def kept_sections(path: Path) -> str:
    """The sections other commands put into the report at `path`, to keep when it is rewritten."""
    if not path.exists():
        return ""
    text, kept = path.read_text(), []
    start = text.find(SECTION.format("").split(":")[0])
    while start >= 0:
        end = text.find(SECTION_END, start)
        if end < 0:
            break
        kept.append(text[start:end + len(SECTION_END)])
        start = text.find(SECTION.format("").split(":")[0], end)
    return "\n\n".join(kept)


JUDGES = {"gold": "gold labeler (the truth)", "reward_model": "reward model (the policy's own)",
          "judge_reward_model": "held-out reward model", "llm_judge": "LLM judge"}


def write_markdown(path: Path, report: dict, tasks, responses: dict, plot: Path, curves: Path | None,
                   num_samples: int) -> None:
    rows, here, gold = report["models"], path.parent, report.get("gold", True)
    lines = [f"# Evaluation report: {report['run']}", ""]
    if gold:
        lines += [f"{report['num_prompts']} held-out toy-world prompts, never seen in training, scored by the "
                  "noise-free gold labeler (0 to 1). Greedy decoding except best-of-n. 95% confidence intervals in "
                  "brackets; win rates count a tie as half. The length-controlled win rate is the win rate with the "
                  "difference in length factored out (a logistic fit on it, predicted at equal length, as "
                  "AlpacaEval's): RLHF's cheapest gain is length, and this shows what is left without it.", "",
                  "| model | gold score | win rate vs SFT | length-controlled win rate | reward-model score | "
                  "KL to SFT (nats) | mean words | refuses harmful | refuses harmless |", "|---|" + "---|" * 8]
        for name, row in rows.items():
            lines.append(f"| {NAMES[name]} | {ci(row['gold'])} | {ci(row.get('win_rate_vs_sft'))} | "
                         f"{ci(row.get('win_rate_vs_sft', {}).get('length_controlled'))} | "
                         f"{ci(row.get('reward_model_score'), 2)} | {_kl(row)} | "
                         f"{row['mean_words']:.1f} | {row['refusal_rate_harmful']:.0%} | "
                         f"{row['over_refusal_harmless']:.0%} |")
    else:
        lines += [f"{report['num_prompts']} held-out prompts, with no gold labeler: the judges below say whether "
                  "each model beats SFT. Greedy decoding except best-of-n; 95% confidence intervals in brackets.", "",
                  "| model | reward-model score | KL to SFT (nats) | mean words |", "|---|---|---|---|"]
        lines += [f"| {NAMES[name]} | {ci(row.get('reward_model_score'), 2)} | {_kl(row)} | {row['mean_words']:.1f} |"
                  for name, row in rows.items()]
    lines += ["", *judges_section(report)]
    if report["ordering"]:
        lines += ["## The InstructGPT ordering: base < prompted base < SFT < PPO", "",
                  "The paired change in gold score from each model to the next, over the same prompts:", "",
                  "| step | gold change | holds (CI above 0) |", "|---|---|---|"]
        lines += [f"| {NAMES[s['from']]} → {NAMES[s['to']]} | {ci(s['gold_change'])} | "
                  f"{'yes' if s['holds'] else '**no**'} |" for s in report["ordering"]]
        lines.append("")
    lines += [f"![the table as bars]({os.path.relpath(plot, here)})", ""]
    if curves is not None:
        lines += ["## PPO training", "", "Reward-model score, gold score on held-out prompts, KL to SFT and response "
                  "length over PPO's steps:", "", f"![PPO curves]({os.path.relpath(curves, here)})", ""]
    if gold:
        families = list(next(iter(rows.values()))["by_family"])
        lines += ["## Per task family: correctness and gold score", "",
                  "Correctness is the rubric's `correct` part alone (does the model know the answer, or refuse a "
                  "harmful request, apart from style); the gold score adds politeness, concision and a proper ending.",
                  "", "| model | " + " | ".join(f"{f}: correct" for f in families) + " | "
                  + " | ".join(f"{f}: gold" for f in families) + " |", "|---|" + "---|" * 2 * len(families)]
        lines += [f"| {NAMES[n]} | " + " | ".join(f"{r['correct_by_family'][f]:.0%}" for f in families) + " | "
                  + " | ".join(f"{r['by_family'][f]:.2f}" for f in families) + " |" for n, r in rows.items()]
        lines.append("")
    lines += ["## Samples side by side", ""]
    for i, task in enumerate(tasks[:num_samples]):
        prompt, family = (task.prompt, f" ({task.family})") if gold else (task, "")
        lines += [f"**{prompt}**{family}".replace("\n", " "), "", "| model | response |" + (" gold |" if gold else ""),
                  "|---|---|" + ("---|" if gold else "")]
        lines += [(f"| {NAMES[n]} | {responses[n][i]!r} |" + (f" {rows[n]['scores'][i]:.2f} |" if gold else ""))
                  .replace("\n", " ") for n in rows]
        lines.append("")
    kept = kept_sections(path)
    path.write_text("\n".join(lines) + (f"\n{kept}\n" if kept else ""))


def _kl(row: dict) -> str:
    return "–" if row.get("kl_to_sft") is None else f"{row['kl_to_sft']:.2f}"


def judges_section(report: dict) -> list[str]:
    """Each judge's win rate of every model against SFT; on the toy world, beside the gold labeler's, with how often
    the judge agreed with it."""
    judges, gold = report.get("judges") or {}, report.get("gold", True)
    if not judges:
        return []
    lines = ["## Judges: did RLHF help, without a gold labeler?", "",
             "Each judge compares every model's answer with SFT's to the same prompt. The policy's own reward model "
             "is what the policy was optimized against, so it flatters it; the held-out reward model was trained on "
             "comparisons the policy's never saw; the LLM judge is asked both ways round, a disagreement between the "
             "two orders counting as a tie."
             + (" Agreement is the share of pairs the gold labeler does not tie on which the judge gives gold's "
                "verdict (a judge's tie counts as a miss): how far to trust the judge where there is no gold." if gold
                else ""), ""]
    if gold:
        lines += ["| judge | model | agreement with gold (all models' pairs) | pairs | judge ties |",
                  "|---|---|---|---|---|"]
        for key, judge in judges.items():
            a = judge["agreement_with_gold"]
            lines.append(f"| {JUDGES[key]} | `{judge['model']}` | {ci(a | {'mean': a['agreement']})} | "
                         f"{a['n_decided']} | {a['judge_ties']:.0%} |")
        lines.append("")
    header = "| model | judge | win rate vs SFT | length-controlled win rate |"
    lines += [header + (" gold win rate | agreement with gold |" if gold else ""),
              "|---|---|---|---|" + ("---|---|" if gold else "")]
    for name, row in report["models"].items():
        for key, j in row.get("judges", {}).items():
            extra = ""
            if gold:
                a = j["agreement_with_gold"]
                extra = f" {j['gold_win_rate']:.3f} | {a['agreement']:.0%} of {a['n_decided']} |"
            lines.append(f"| {NAMES[name]} | {JUDGES[key]} | {ci(j)} | {ci(j['length_controlled'])} |{extra}")
    return [*lines, ""]


def plot(path: Path, rows: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    gold = "gold" in rows[names[0]]
    panels = {"gold score": "gold", "win rate vs SFT": "win_rate_vs_sft", "reward-model score": "reward_model_score"}
    if not gold:
        panels.pop("gold score")
        panels.pop("win rate vs SFT")
    judged = [n for n in names if rows[n].get("judges")]
    fig, axes = plt.subplots(1, len(panels) + int(gold) + int(bool(judged)), figsize=(16 if gold else 10, 3.8),
                             squeeze=False)
    axes = list(axes[0])
    for ax, (title, key) in zip(axes, panels.items()):
        shown = [n for n in names if rows[n].get(key)]
        means = [rows[n][key]["mean"] for n in shown]
        errors = [[m - rows[n][key]["ci95"][0] for n, m in zip(shown, means)],
                  [rows[n][key]["ci95"][1] - m for n, m in zip(shown, means)]]
        ax.bar(range(len(shown)), means, yerr=errors, capsize=4, color="tab:blue")
        ax.set_xticks(range(len(shown)), [SHORT[n] for n in shown], fontsize="small")
        ax.set_title(f"{title} (95% CI)")
        if key == "win_rate_vs_sft":
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    if judged:
        judge_panel(axes[len(panels)], rows, judged, gold)
    if not gold:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
    ax = axes[-1]
    width = 0.4
    for offset, (key, label) in zip((-width / 2, width / 2), (("refusal_rate_harmful", "harmful prompts"),
                                                             ("over_refusal_harmless", "harmless prompts"))):
        ax.bar([i + offset for i in range(len(names))], [rows[n][key] for n in names], width, label=label)
    ax.set_xticks(range(len(names)), [SHORT[n] for n in names], fontsize="small")
    ax.set_title("refusal rate")
    ax.legend(fontsize="small", loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def judge_panel(ax, rows: dict, names: list[str], gold: bool) -> None:
    """Win rate vs SFT by judge: grouped bars per model, gold first where there is one."""
    keys = list(rows[names[0]]["judges"])
    series = ([("gold", [rows[n]["win_rate_vs_sft"] for n in names])] if gold else []) + [
        (k, [rows[n]["judges"][k] for n in names]) for k in keys]
    width = 0.8 / len(series)
    for i, (key, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [v["mean"] for v in values], width, yerr=[[v["mean"] - v["ci95"][0] for v in values],
                                                             [v["ci95"][1] - v["mean"] for v in values]],
               capsize=2, label=JUDGES[key].split(" (")[0])
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), [SHORT[n] for n in names], fontsize="small")
    ax.set_title("win rate vs SFT, by judge")
    ax.legend(fontsize="x-small")
