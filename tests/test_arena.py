"""The arena: every RL method trained from the same SFT and reward model, then measured side by side."""

import pytest
import yaml

from recipes import arena
from recipes.common import report, run_dir
from recipes.common.cli import ConfigError, parse_config
from tests.conftest import ROOT, write_yaml
from tests.test_compare_reward import run_compare, run_reward
from tests.test_sft import run_sft

FAST = ROOT / "configs" / "tiny" / "fast"


@pytest.fixture(scope="module")
def main_job(tiny_base, tmp_path_factory):
    """A run directory with the stages the arena starts from: sft, compare, reward (and a report)."""
    run = tmp_path_factory.mktemp("run")
    sft_out, _ = run_sft(run, tiny_base, num_eval_prompts=0)
    run_compare(run, sft_out / "merged")
    run_reward(run, sft_out / "merged", run / "compare" / "comparisons")
    (run / "report.md").write_text("# Evaluation report\n\nthe evaluation's own text\n")
    return run


def arena_args(run, **overrides):
    fast = yaml.safe_load((FAST / "arena.yaml").read_text())
    path = write_yaml(run / "arena.yaml", {**fast, "run_dir": str(run), "output_dir": str(run / "arena"),
                                           "num_prompts": 16, **overrides})
    return parse_config((arena.ArenaArguments,), ["--config", str(path)])


@pytest.fixture(scope="module")
def arena_run(main_job):
    return arena.main(*arena_args(main_job)), main_job / "arena"


def test_every_method_is_trained_and_measured_on_the_same_prompts(arena_run):
    result, out = arena_run
    assert run_dir.is_complete(out)
    assert list(result["models"]) == ["sft", "best_of_n", "ppo", "rloo", "grpo", "dpo"]
    for method in arena.METHODS:
        assert run_dir.is_complete(out / method)
        row = result["models"][method]
        assert row["gold"]["n"] == 16 and row["win_rate_vs_sft"]["n"] == 16 and row["kl_to_sft"] is not None
        assert {"arithmetic", "fact", "list", "harmful", "open"} <= set(row["correct_by_family"])
        assert result["runs"][method]["seconds"] > 0 and result["runs"][method]["peak_memory_mb"] > 100
        checks = result["training_checks"][method]
        assert checks[0]["step"] == 0 and checks[0]["kl_to_sft"] == pytest.approx(0, abs=1e-4)  # LoRA starts at SFT
        assert len(checks) >= 2 and all(c["gold"] is not None for c in checks)
    table = (out / "report.md").read_text()
    assert all(f"| {report.NAMES[m]} |" in table for m in result["models"]) and "peak memory" in table
    assert (out / "arena.png").stat().st_size > 0


def test_the_run_report_gets_the_table_once_and_keeps_it(arena_run, main_job):
    _, out = arena_run
    text = (main_job / "report.md").read_text()
    assert text.startswith("# Evaluation report") and text.count("## Arena") == 1 and "| RLOO |" in text
    report.write_section(main_job / "report.md", "Arena: PPO, RLOO, GRPO and DPO from the same SFT", ["new table"])
    text = (main_job / "report.md").read_text()
    assert text.count("## Arena") == 1 and "new table" in text and "| RLOO |" not in text
    assert "the evaluation's own text" in text
    assert report.kept_sections(main_job / "report.md").count("new table") == 1


def test_a_rerun_skips_complete_methods_and_keeps_their_figures(arena_run, main_job):
    result, out = arena_run
    (out / "dpo" / run_dir.MARKER).unlink()
    again = arena.main(*arena_args(main_job))
    assert again["runs"]["ppo"] == result["runs"]["ppo"]  # skipped: its figures kept
    assert again["runs"]["dpo"]["seconds"] > 0 and run_dir.is_complete(out / "dpo")


def test_arena_refuses_unknown_methods_and_a_run_without_its_stages(main_job, tmp_path):
    with pytest.raises(ConfigError, match="methods"):
        arena_args(main_job, methods=["ppo", "kto"])
    args, = arena_args(main_job, run_dir=str(tmp_path), output_dir=str(tmp_path / "arena"))
    with pytest.raises(FileNotFoundError, match="not a complete stage"):
        arena.main(args)
