"""recipes.benchmarks: lm-evaluation-harness on a model, through the toy world's local YAML tasks (no download)."""

import json

import pytest
import yaml

from recipes import benchmarks
from recipes.common import run_dir
from recipes.common.cli import parse_config
from recipes.toy import ToyWorld
from tests.conftest import write_yaml


def test_toy_documents_hold_the_true_answer_among_their_choices():
    args = benchmarks.BenchmarkArguments(models=["unused"], num_probe_documents=30)
    docs = benchmarks.toy_documents(args)
    assert docs["toy_facts"] and docs["toy_arithmetic"]
    probes = {(p["prefix"], p["answer"]) for p in ToyWorld(0).completion_probes(30)}
    for rows in docs.values():
        for row in rows:
            assert (row["context"], row["choices"][row["answer"]]) in probes
            assert len(set(row["choices"])) == len(row["choices"]) > 2
    assert all(len(r["choices"]) == 21 for r in docs["toy_arithmetic"])


def test_benchmarks_run_lm_eval_on_local_tasks_and_report(tiny_base, tmp_path):
    (tmp_path / "report.md").write_text("# Evaluation report\n")
    config = write_yaml(tmp_path / "benchmarks.yaml", {
        "models": [str(tiny_base)], "num_probe_documents": 10, "limit": 6, "batch_size": 8,
        "output_dir": str(tmp_path / "benchmarks"), "report_dir": str(tmp_path)})
    results = benchmarks.main(*parse_config((benchmarks.BenchmarkArguments,), ["--config", str(config)]))
    name = benchmarks.model_name(str(tiny_base))
    for task in benchmarks.TOY_TASKS:
        assert 0 <= results[name][task]["acc,none"] <= 1
        spec = yaml.safe_load((tmp_path / "benchmarks" / "tasks" / f"{task}.yaml").read_text())
        assert spec["output_type"] == "multiple_choice" and spec["dataset_path"] == "json"
    assert run_dir.is_complete(tmp_path / "benchmarks")
    assert json.loads((tmp_path / "benchmarks" / "results.json").read_text()) == results
    report = (tmp_path / "report.md").read_text()
    assert report.count(f"## {benchmarks.SECTION}") == 1 and f"| {name} | " in report


def test_benchmarks_need_a_model():
    with pytest.raises(ValueError, match="models: name at least one"):
        benchmarks.BenchmarkArguments()
