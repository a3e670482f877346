"""Comparison data and the reward model, on the tiny SFT model and on the hh-rlhf sample."""

import csv
import json
import statistics
from collections import Counter

import pytest
import torch
from datasets import load_from_disk
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from recipes import compare, reward
from recipes.common import labeling, run_dir
from recipes.common.cli import parse_config
from recipes.common.generation import reward_scores
from recipes.toy import GoldLabeler, ToyWorld
from tests.conftest import SHARED_DATA, tensorboard_tags, write_yaml
from tests.test_sft import run_sft

TINY_COMPARE = {"num_prompts": 24, "test_fraction": 0.25, "responses_per_prompt": 3, "max_new_tokens": 12,
                "batch_size": 24, "seed": 0}
TINY_REWARD = {
    "dtype": "float32", "use_peft": True, "lora_task_type": "SEQ_CLS", "lora_r": 8, "lora_alpha": 16,
    "lora_target_modules": "all-linear", "max_length": 256, "max_steps": 4, "per_device_train_batch_size": 8,
    "learning_rate": 5.0e-3, "logging_steps": 1, "save_steps": 100, "gradient_checkpointing": False,
    "bf16": False, "report_to": "tensorboard", "dataloader_pin_memory": False, "seed": 0, "eval_strategy": "no",
}


def run_compare(tmp_path, policy, **overrides):
    config = write_yaml(tmp_path / "compare.yaml", {**TINY_COMPARE, "policy": str(policy),
                                                    "output_dir": str(tmp_path / "compare"), **overrides})
    return compare.main(*parse_config((compare.CompareArguments,), ["--config", str(config)]))


def run_reward(tmp_path, model, dataset, **overrides):
    config = write_yaml(tmp_path / "reward.yaml", {**TINY_REWARD, "model_name_or_path": str(model),
                                                   "dataset_name": str(dataset),
                                                   "output_dir": str(tmp_path / "reward"), **overrides})
    return reward.main(*parse_config((reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
                                     ["--config", str(config)])), tmp_path / "reward"


@pytest.fixture(scope="module")
def sft_model(tiny_base, tmp_path_factory):
    out, _ = run_sft(tmp_path_factory.mktemp("sft"), tiny_base, num_eval_prompts=0)
    return out / "merged"


@pytest.fixture(scope="module")
def comparisons(sft_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    return run_compare(tmp, sft_model, labeler="noisy"), tmp / "compare"


def test_rankings_expand_into_pairs(comparisons):
    metrics, out = comparisons
    assert run_dir.is_complete(out)
    rows = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(sorted(r["ranking"]) == [0, 1, 2] for r in rows)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    # K=3 gives at most 3 pairs per prompt; identical responses give none
    assert 0 < metrics["train_pairs"] + metrics["test_pairs"] <= 24 * 3
    assert metrics["train_pairs"] == len(train)
    first = rows[train[0]["prompt_id"]]
    ranked = [first["responses"][i] for i in first["ranking"]]
    assert ranked.index(train[0]["chosen"][0]["content"]) < ranked.index(train[0]["rejected"][0]["content"])
    assert {r["prompt_id"] for r in train}.isdisjoint(
        json.loads(line)["prompt_id"] for line in (out / "test.jsonl").read_text().splitlines())


def test_toy_world_pairs_carry_each_responses_gold_score_and_correctness(comparisons):
    _, out = comparisons
    labeler = GoldLabeler(ToyWorld(seed=0), temperature=0)
    test = load_from_disk(str(out / "comparisons"))["test"].to_list()
    for row in test:
        prompt = row["prompt"][0]["content"]
        for side in ("chosen", "rejected"):
            parts = labeler.rubric(prompt, row[side][0]["content"])
            assert (row[f"gold_{side}"], row[f"gold_correct_{side}"]) == (parts["score"], parts["correct"])


def test_gold_agreement_splits_pairs_by_whether_correctness_decides_them():
    # (gold chosen, gold rejected, correct chosen, correct rejected); the reward model's preference for chosen
    gold = [(1.0, 0.2, 1.0, 0.0), (0.9, 0.3, 1.0, 0.0), (0.9, 0.7, 1.0, 1.0), (0.6, 0.6, 1.0, 1.0), (0.4, 0.8, 1, 1)]
    metrics = reward.gold_agreement([True, False, True, True, True], gold)
    assert metrics["gold_pairs"] == 4 and metrics["gold_agreement"] == 0.5  # the tied pair counts nowhere
    assert (metrics["gold_agreement_correctness_differs"], metrics["gold_pairs_correctness_differs"]) == (0.5, 2)
    assert (metrics["gold_agreement_only_style_differs"], metrics["gold_pairs_only_style_differs"]) == (0.5, 2)
    assert "gold_agreement_correctness_differs" not in reward.gold_agreement([True], [(1.0, 0.0)])


def test_gold_labeler_pairs_always_prefer_the_higher_gold_score(sft_model, tmp_path):
    metrics = run_compare(tmp_path, sft_model, labeler="gold")
    assert metrics["labeler_agreement_with_gold"] == 1.0


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_labeling_round_trip_is_lossless(tmp_path, suffix):
    prompts = ["What is 2 + 3?", 'Quote "this", please,\nover two lines.']
    responses = [["2 + 3 = 5.", "", "It is 5, I think."], ['"this", please,\nover two lines.', "No.", "  x  "]]
    path = labeling.export(tmp_path / f"label{suffix}", prompts, responses)
    filled = ["3>1>2", "2>3>1"]  # what a person types in
    if suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row, ranking in zip(rows, filled):
            row["ranking"] = ranking
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row, ranking in zip(rows, filled):
            row["ranking"] = [int(r) for r in ranking.split(">")]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got_prompts, got_responses, rankings = labeling.load(path)
    assert got_prompts == prompts and got_responses == responses
    assert rankings == [[2, 0, 1], [1, 2, 0]]


def test_human_labeling_exports_then_imports(sft_model, tmp_path):
    labels = tmp_path / "to_label.jsonl"
    assert run_compare(tmp_path, sft_model, labeler="human", labeling_file=str(labels)) == {"exported": str(labels)}
    assert not (tmp_path / "compare" / "stage.json").exists()  # nothing to train on until people rank
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    for row in rows:
        row["ranking"] = [1, 2, 3]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = run_compare(tmp_path, sft_model, labeler="human", rankings_file=str(labels))
    assert metrics["prompts"] == 24 and run_dir.is_complete(tmp_path / "compare")


def test_bad_ranking_names_file_row_and_field(tmp_path):
    path = labeling.export(tmp_path / "l.jsonl", ["a", "b"], [["x", "y"], ["x", "y"]])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["ranking"], rows[1]["ranking"] = [1, 2], [1, 1]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(labeling.LabelingError, match=r"l.jsonl: row 2: field 'ranking'"):
        labeling.load(path)


@pytest.fixture(scope="module")
def reward_run(sft_model, comparisons, tmp_path_factory):
    return run_reward(tmp_path_factory.mktemp("reward"), sft_model, comparisons[1] / "comparisons")


def test_reward_model_trains_and_reports_gold_agreement(reward_run):
    metrics, out = reward_run
    assert run_dir.is_complete(out)
    assert 0 <= metrics["accuracy"] <= 1 and "gold_agreement" in metrics
    split = [(metrics[f"gold_agreement_{k}"] or 0, metrics[f"gold_pairs_{k}"])
             for k in ("correctness_differs", "only_style_differs")]
    assert sum(n for _, n in split) == metrics["gold_pairs"]
    assert sum(a * n for a, n in split) == pytest.approx(metrics["gold_agreement"] * metrics["gold_pairs"])
    assert "train/loss" in tensorboard_tags(out)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]


def test_reward_diagnostics_split_accuracy_by_length():
    # chosen scores 1.0 everywhere: right on every pair, so right where the rejected one is longer or shorter
    d = reward.diagnostics([1.0, 1.0, 1.0], [0.0, 0.5, 0.2], ["a b", "a b c d", "a"], ["a b c", "a", "a b"])
    assert d["accuracy_when_rejected_is_longer"] == 1.0 and d["pairs_rejected_longer"] == 2
    assert d["accuracy_when_rejected_is_shorter"] == 1.0 and d["pairs_rejected_shorter"] == 1
    # a model that only likes length: right exactly when the chosen one is longer, and its score tracks length
    texts_c, texts_r = ["a b c", "a"], ["a", "a b c"]
    liker = reward.diagnostics([3.0, 1.0], [1.0, 3.0], texts_c, texts_r)
    assert liker["accuracy_when_rejected_is_longer"] == 0.0 and liker["accuracy_when_rejected_is_shorter"] == 1.0
    assert liker["score_length_correlation"] == pytest.approx(1.0)


def test_reward_stage_writes_its_diagnostics(reward_run):
    metrics, out = reward_run
    results = json.loads((out / "eval_results.json").read_text())
    assert {"accuracy_when_rejected_is_longer", "score_length_correlation"} <= set(results)
    assert (out / "scores.png").stat().st_size > 0


def test_lora_reward_model_reloads_with_identical_scores(reward_run, sft_model):
    _, out = reward_run
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompts, responses = ["What is 2 + 3?"] * 3, ["2 + 3 = 5.", "Ugh, obviously 5.", ""]
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(out, num_labels=1)
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged", num_labels=1)
    again = AutoPeftModelForSequenceClassification.from_pretrained(out, num_labels=1)
    a, b, c = (reward_scores(m, tokenizer, prompts, responses) for m in (adapter, merged, again))
    assert a == c  # the score head was saved, not re-initialized at random
    assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4)
    fresh = AutoModelForSequenceClassification.from_pretrained(sft_model, num_labels=1)
    assert reward_scores(fresh, tokenizer, prompts, responses) != a


def test_reward_scores_are_standardized_on_the_test_responses(reward_run, comparisons):
    metrics, out = reward_run
    test = load_from_disk(str(comparisons[1] / "comparisons"))["test"].to_list()
    prompts = [row["prompt"][-1]["content"] for row in test] * 2
    responses = [row["chosen"][0]["content"] for row in test] + [row["rejected"][0]["content"] for row in test]
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged", num_labels=1)
    assert statistics.pstdev(reward_scores(merged, AutoTokenizer.from_pretrained(out), prompts, responses)) == \
        pytest.approx(1.0, abs=1e-3)
    assert metrics["score_divided_by"] > 0


@pytest.mark.skipif(not (SHARED_DATA / "hh-rlhf").exists(), reason="../shared/data is absent")
def test_reward_model_trains_on_hh_rlhf_sample(tiny_base, tmp_path):
    """With the tiny model's tokenizer most hh-rlhf pairs are longer than max_length 256: TRL drops them unsaid, so
    the stage refuses before it starts, naming the key and the counts, unless told how many it may drop."""
    sample = SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    settings = {"invalid_rows": "skip", "dataset_test_split": "train", "max_eval_pairs": 16, "max_steps": 2}
    with pytest.raises(ValueError, match=r"max_length: 256 drops \d+ of \d+ training pairs .* raise max_length"):
        run_reward(tmp_path, tiny_base, sample, **settings)
    assert not (tmp_path / "reward").exists()
    metrics, out = run_reward(tmp_path, tiny_base, sample, **settings, max_dropped_fraction=0.9)
    assert run_dir.is_complete(out) and metrics["pairs"] == 16
    fit = metrics["training_pairs_max_length"]
    assert 0 < fit["dropped_by_max_length"] < fit["rows"] and fit["cut_by_max_length"] == 0


def test_reward_model_can_be_the_labeler(sft_model, reward_run, tmp_path):
    _, out = reward_run
    metrics = run_compare(tmp_path, sft_model, labeler="reward_model", reward_model=str(out / "merged"))
    assert metrics["labeler"] == "reward_model" and metrics["train_pairs"] > 0


def test_judge_prompts_are_ranked_into_a_set_disjoint_by_prompt(sft_model, tmp_path):
    metrics = run_compare(tmp_path, sft_model, labeler="noisy", num_prompts=16, judge_prompts=8)
    out = tmp_path / "compare"
    rows = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert [r["set"] for r in rows] == ["policy"] * 16 + ["judge"] * 8
    policy, judge = (load_from_disk(str(out / name)) for name in ("comparisons", "judge_comparisons"))
    prompts = [{r["prompt"][0]["content"] for split in data.values() for r in split} for data in (policy, judge)]
    assert prompts[0] and prompts[1] and prompts[0].isdisjoint(prompts[1])
    assert metrics["judge_train_pairs"] + metrics["judge_test_pairs"] == sum(map(len, judge.values()))
    (tmp_path / "too_many").mkdir()
    with pytest.raises(ValueError, match="judge_prompts: 2290 leaves none of the 2290 prompts"):
        run_compare(tmp_path / "too_many", sft_model, num_prompts=1, judge_prompts=2290)  # all the split has
    assert not (tmp_path / "too_many" / "compare").exists()  # refused before anything was written


def test_the_judge_gets_every_family_of_the_toy_worlds_comparison_prompts():
    """The fact, harmful and open families have few comparison prompts; taken in turns, they run out within the
    first 1,200, and the judge's 1,000 would be sums and lists alone. Dealt out evenly, each set gets its share."""
    args = compare.CompareArguments(num_prompts=1200, judge_prompts=1000)
    prompts = compare.load_prompts(args)
    world = args.world()
    shares = [Counter(world.task_for(p).family for p in part) for part in (prompts[:1200], prompts[1200:])]
    assert len(set(prompts)) == 2200
    for family, n in shares[0].items():
        assert abs(shares[1][family] / 1000 - n / 1200) < 0.02, (family, shares)


def test_rankings_too_few_for_a_test_split_are_refused_before_anything_is_written(tmp_path):
    path = labeling.export(tmp_path / "two.jsonl", ["What is 2 + 3?", "What is 4 + 4?"],
                           [["2 + 3 = 5.", "Five."], ["4 + 4 = 8.", "Eight."]])
    rows = [json.loads(line) | {"ranking": [1, 2]} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_yaml(tmp_path / "compare.yaml", {**TINY_COMPARE, "labeler": "human", "rankings_file": str(path),
                                                    "output_dir": str(tmp_path / "compare")})
    with pytest.raises(ValueError, match="the test split of comparisons has no pairs .0 prompts"):
        compare.main(*parse_config((compare.CompareArguments,), ["--config", str(config)]))
    assert not (tmp_path / "compare").exists()


def test_reward_on_one_file_without_a_test_split_is_refused_before_anything_is_written(sft_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": "No."}) + "\n"
                            for i in range(8)))
    config = write_yaml(tmp_path / "reward.yaml", {**TINY_REWARD, "model_name_or_path": str(sft_model),
                                                   "dataset_name": str(data), "output_dir": str(tmp_path / "reward")})
    with pytest.raises(ValueError, match=r"pairs.jsonl is one file, so its only split is 'train', not 'test'.*"
                                         r"train\[90%:\]"):
        reward.main(*parse_config((reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
                                  ["--config", str(config)]))
    assert not (tmp_path / "reward").exists()
