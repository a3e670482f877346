"""The evaluation's metrics (evaluate modules loaded from metrics/) and its ordering check."""

import math
import random

import pytest

from recipes.common import evaluation, gold, stats
from recipes.toy import GoldLabeler, ToyWorld

WORLD = ToyWorld(0)
TASKS = WORLD.tasks("eval", 25)
PROMPTS = [t.prompt for t in TASKS]


def test_gold_score_metric_is_the_gold_labelers_score():
    labeler = GoldLabeler(WORLD, temperature=0)
    responses = [t.answer if i % 2 else "Ugh, obviously I don't know" for i, t in enumerate(TASKS)]
    result = gold.load_metric("gold_score").compute(predictions=responses, prompts=PROMPTS, world_seed=0)
    expected = [labeler.score(p, r) for p, r in zip(PROMPTS, responses)]
    assert result["scores"] == pytest.approx(expected)
    assert result["gold_score"] == pytest.approx(sum(expected) / len(expected))
    assert result["ci95"][0] < result["gold_score"] < result["ci95"][1] and result["n"] == 25
    assert set(result["by_family"]) == {t.family for t in TASKS}


def test_win_rate_counts_ties_as_half():
    ideal = [t.answer for t in TASKS]
    worse = [t.answer if i < 10 else "No." for i, t in enumerate(TASKS)]
    result = gold.load_metric("win_rate").compute(predictions=ideal, references=worse, prompts=PROMPTS)
    assert (result["wins"], result["ties"], result["losses"]) == (15, 10, 0)
    assert result["win_rate"] == pytest.approx((15 + 0.5 * 10) / 25)
    flipped = gold.load_metric("win_rate").compute(predictions=worse, references=ideal, prompts=PROMPTS)
    assert flipped["win_rate"] == pytest.approx(1 - result["win_rate"])


def test_refusal_rate_splits_harmful_from_harmless():
    responses = ["I can't help with that."] * 4 + ["Sure, here it is."] * 4
    harmful = [1, 1, 1, 0, 0, 0, 0, 1]
    result = gold.load_metric("refusal_rate").compute(predictions=responses, references=harmful)
    assert result["refusal_rate"] == pytest.approx(3 / 4) and result["n_harmful"] == 4
    assert result["over_refusal_rate"] == pytest.approx(1 / 4) and result["n_harmless"] == 4
    none_harmful = gold.load_metric("refusal_rate").compute(predictions=responses[:2], references=[0, 0])
    assert math.isnan(none_harmful["refusal_rate"]) and none_harmful["over_refusal_rate"] == 1.0


def test_ordering_holds_only_where_each_step_is_better_beyond_its_interval():
    rows = {"base": {"scores": [0.0, 0.1, 0.0, 0.1] * 5}, "base_fewshot": {"scores": [0.3, 0.4, 0.3, 0.5] * 5},
            "sft": {"scores": [0.6, 0.7, 0.6, 0.7] * 5}, "ppo": {"scores": [0.6, 0.7, 0.5, 0.8] * 5}}
    steps = evaluation.ladder(rows)
    assert [(s["from"], s["to"]) for s in steps] == [("base", "base_fewshot"), ("base_fewshot", "sft"),
                                                     ("sft", "ppo")]
    assert [s["holds"] for s in steps] == [True, True, False]
    assert steps[0]["gold_change"]["mean"] == pytest.approx(0.325)
    assert [s["to"] for s in evaluation.ladder({k: rows[k] for k in ("base", "sft")})] == ["sft"]


def test_length_controlled_win_rate_removes_a_pure_length_preference():
    """A judge that only prefers the shorter answer has a length-controlled win rate near 0.5; a judge that
    ignores length keeps its win rate; the fitted coefficient says which way length pulls."""
    rng = random.Random(0)
    diffs = [rng.randint(-20, 20) for _ in range(400)]
    brevity = stats.length_controlled_win_rate([1.0 if d < 0 else 0.0 if d > 0 else 0.5 for d in diffs], diffs)
    assert brevity["ci95"][0] < 0.5 < brevity["ci95"][1] and brevity["length_coefficient"] < 0
    blind = stats.length_controlled_win_rate([float(rng.random() < 0.75) for _ in diffs], diffs)
    assert 0.70 < blind["mean"] < 0.80 and blind["ci95"][0] < blind["mean"] < blind["ci95"][1]


def test_win_rate_metric_reports_the_length_controlled_rate():
    result = gold.load_metric("win_rate").compute(predictions=["2 + 3 = 5."] * 4,
                                                  references=["Great question! 2 + 3 = 5. Bye now!"] * 4,
                                                  prompts=["What is 2 + 3?"] * 4)
    assert set(result["length_controlled"]) == {"mean", "ci95", "n", "length_coefficient"}
