"""Judges that need no gold (recipes/common/judges.py), their agreement metric, and the evaluation without a toy
world: prompts from a dataset, judged by a held-out reward model and an LLM judge."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from recipes import evaluate
from recipes.common import judges
from recipes.common.cli import parse_config
from recipes.common.gold import load_metric
from tests.conftest import ROOT, write_yaml

TEMPLATE = ROOT / "configs" / "judges" / "pairwise.txt"
PROMPTS = ["What is 2 + 3?", "Name a color of the sky.", "Tell me a story about a fox and a very long river."]


def test_agreement_counts_only_pairs_gold_decides_and_a_judge_tie_as_a_miss():
    gold = [1.0, 0.0, 1.0, 0.5, 0.5, 1.0]
    judge = [1.0, 0.0, 0.5, 1.0, 0.0, 0.0]
    result = load_metric("judge_agreement").compute(predictions=judge, references=gold)
    assert result["n_decided"] == 4 and result["agreement"] == pytest.approx(2 / 4)
    assert result["judge_ties"] == pytest.approx(1 / 4)
    assert result["win_rate_gap"] == pytest.approx((sum(judge) - sum(gold)) / 6)


@pytest.fixture(scope="module")
def llm_judge(tiny_base):
    return judges.LLMJudge(str(tiny_base), TEMPLATE, batch_size=8)


def test_llm_judge_reads_the_same_margin_alone_or_left_padded_in_a_batch(llm_judge):
    answers = ["2 + 3 = 5.", "Blue.", "Once upon a time a fox swam the whole long river and was happy."]
    others = ["I don't know.", "The sky is blue, I am glad you asked!", "No."]
    batched = llm_judge.prefers_a(PROMPTS, answers, others)
    llm_judge.batch_size = 1
    alone = llm_judge.prefers_a(PROMPTS, answers, others)
    llm_judge.batch_size = 8
    assert batched == pytest.approx(alone, abs=1e-4)
    assert len({round(m, 6) for m in batched}) == 3  # it reads each question, not a constant


def test_llm_judge_asks_both_orders_and_a_position_preference_is_a_tie(llm_judge, monkeypatch):
    answers, baseline = ["a1", "a2", "same"], ["b1", "b2", "same"]
    monkeypatch.setattr(llm_judge, "prefers_a", lambda prompts, a, b, desc="": [1.0] * len(a))  # always "A"
    assert llm_judge.verdicts(PROMPTS, answers, baseline) == [0.5, 0.5, 0.5]

    def prefers_a_answer(prompts, a, b, desc=""):  # a judge that likes the answers starting with "a"
        return [(1.0 if x.startswith("a") else 0.0) - (1.0 if y.startswith("a") else 0.0) for x, y in zip(a, b)]

    monkeypatch.setattr(llm_judge, "prefers_a", prefers_a_answer)
    assert llm_judge.verdicts(PROMPTS, answers, baseline) == [1.0, 1.0, 0.5]  # identical answers always tie
    assert llm_judge.verdicts(PROMPTS, baseline, answers) == [0.0, 0.0, 0.5]


def test_llm_judge_refuses_a_template_without_its_placeholders_and_a_model_without_a_chat_template(
        tiny_base, tmp_path):
    template = tmp_path / "bad.txt"
    template.write_text("Which is better, {response_a} or {response_b}?")
    with pytest.raises(ValueError, match=r"bad.txt lacks \['\{prompt\}'\]"):
        judges.LLMJudge(str(tiny_base), template)
    plain = tmp_path / "plain"
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain)
    AutoConfig.from_pretrained(tiny_base).save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="has no chat template"):
        judges.LLMJudge(str(plain), TEMPLATE)


@pytest.fixture(scope="module")
def reward_model_dir(tiny_base, tmp_path_factory):
    """A reward model with a random score head: enough to check the judge's arithmetic."""
    out = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=1)
    model.config.pad_token_id = AutoTokenizer.from_pretrained(tiny_base).pad_token_id
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(out)
    return out


def test_reward_model_judge_prefers_the_higher_score_and_scores_the_baseline_once(reward_model_dir, monkeypatch):
    judge = judges.RewardModelJudge(str(reward_model_dir))
    answers, baseline = ["2 + 3 = 5.", "Blue.", "same"], ["Five.", "Green, I think.", "same"]
    scores = judge.scores(PROMPTS, answers), judge.scores(PROMPTS, baseline)
    expected = [1.0 if s > t else 0.0 for s, t in zip(*scores)][:2] + [0.5]
    calls = []
    monkeypatch.setattr(judges, "reward_scores", lambda *a, **k: calls.append(1))  # everything is cached now
    assert judge.verdicts(PROMPTS, answers, baseline) == expected
    assert judge.verdicts(PROMPTS, answers, baseline) == expected and calls == []


def test_evaluation_on_a_dataset_has_no_gold_and_reports_every_judge(tiny_base, reward_model_dir, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS * 2))  # duplicates are dropped
    config = write_yaml(tmp_path / "evaluate.yaml", {
        "dataset_name": str(data), "dataset_split": "train", "sft_model": str(tiny_base), "ppo_model": str(tiny_base),
        "base_model": str(tiny_base), "reward_model": str(reward_model_dir),
        "judge_reward_model": str(reward_model_dir), "llm_judge": "sft", "best_of_n": 2, "max_new_tokens": 6,
        "num_samples": 2, "output_dir": str(tmp_path / "evaluate"), "report_dir": str(tmp_path)})
    report = evaluate.main(*parse_config((evaluate.EvaluateArguments,), ["--config", str(config)]))
    assert report["gold"] is False and report["num_prompts"] == 3 and report["ordering"] == []
    assert set(report["models"]) == {"base", "sft", "best_of_n", "ppo"}  # no few-shot page outside the toy world
    for name, row in report["models"].items():
        assert "gold" not in row and "win_rate_vs_sft" not in row
        if name != "sft":
            assert set(row["judges"]) == {"reward_model", "judge_reward_model", "llm_judge"}
            assert all("length_controlled" in j and "agreement_with_gold" not in j for j in row["judges"].values())
    # the PPO model here is the SFT model itself: every judge calls every answer a tie
    assert all(j["mean"] == 0.5 for j in report["models"]["ppo"]["judges"].values())
    text = (tmp_path / "report.md").read_text()
    assert "no gold labeler" in text and "gold score" not in text and "| PPO | LLM judge |" in text
    rows = [json.loads(line) for line in (tmp_path / "evaluate" / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and "gold" not in rows[0]["ppo"]
    assert (tmp_path / "evaluate" / "report.png").exists()
