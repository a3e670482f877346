"""The replicate table: one seed's files in, the figures and the verdicts out."""

import json

from recipes.replicates import summarize, write_table


def fake_run(run, ppo_arithmetic_gold: float):
    """The files a finished pipeline leaves that the table reads; PPO's arithmetic answers score as given."""
    (run / "evaluate").mkdir(parents=True)
    (run / "pretrain").mkdir()
    (run / "reward").mkdir()
    rows = [{"prompt": f"p{i}", "family": family, "sft": {"response": "s", "gold": 0.8},
             "ppo": {"response": "p", "gold": ppo_arithmetic_gold if family == "arithmetic" else 0.9 + i % 2 / 20}}
            for i, family in enumerate(["arithmetic", "fact"] * 20)]
    (run / "evaluate" / "responses.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    model = {"gold": {"mean": 0.8}, "by_family": {}, "correct_by_family": {"arithmetic": 0.8},
             "refusal_rate_harmful": 1.0, "over_refusal_harmless": 0.0}
    report = {"models": {"sft": model, "ppo": model | {"win_rate_vs_sft": {"mean": 0.7, "ci95": [0.65, 0.75]}}},
              "ordering": [{"from": "sft", "to": "ppo", "gold_change": {"mean": 0.05}, "holds": True}]}
    (run / "report.json").write_text(json.dumps(report))
    (run / "timings.json").write_text(json.dumps({"pretrain": 100.0, "sft": "complete", "ppo": 50.0}))
    (run / "pretrain" / "eval_results.json").write_text(json.dumps({"knowledge": {"worksheet": {"accuracy": 0.9}}}))
    (run / "reward" / "eval_results.json").write_text(json.dumps(
        {"gold_agreement": 0.8, "gold_agreement_correctness_differs": 0.55, "gold_agreement_only_style_differs": 0.9}))


def test_the_table_names_a_family_whose_gold_falls_and_sums_only_measured_seconds(tmp_path):
    fake_run(tmp_path / "seed0", ppo_arithmetic_gold=0.9)
    fake_run(tmp_path / "seed1", ppo_arithmetic_gold=0.5)
    seeds = {s: summarize(tmp_path / f"seed{s}") for s in (0, 1)}
    assert seeds[1]["gold_change_by_family"]["arithmetic"]["ci95"][1] < 0
    assert seeds[0]["seconds"] == {"pretrain": 100.0, "ppo": 50.0}  # a skipped stage has no time
    write_table(tmp_path / "table.md", seeds, "configs/x.yaml")
    lines = {line.split(" | ")[0].strip("| "): line for line in (tmp_path / "table.md").read_text().splitlines()}
    assert lines["families whose gold falls (paired 95% CI below 0)"].split(" | ")[1:3] == ["none", "**arithmetic**"]
    assert "+0.100 | -0.300" in lines["gold change SFT→PPO: arithmetic"]
    assert "0.650–0.750" in lines["PPO win rate, 95% CI"]
    assert lines["… where correctness differs"].split(" | ")[1:3] == ["55%", "55%"]
    assert lines["seconds: whole pipeline"].split(" | ")[1:3] == ["150", "150"]
