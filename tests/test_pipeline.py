"""The main job's pipeline: stages wired together, complete stages skipped, a killed run rerun to the end."""

import os
import signal
import subprocess
import sys
import time

import pytest

from recipes import pipeline, run_dir
from recipes.cli import parse_config
from tests.conftest import ROOT, TINY_PRETRAIN, write_yaml
from tests.test_compare_reward import TINY_COMPARE, TINY_REWARD
from tests.test_ppo import TINY_PPO
from tests.test_sft import TINY_SFT


def tiny_pipeline(tmp_path, **overrides):
    configs = {"pretrain": TINY_PRETRAIN, "sft": {**TINY_SFT, "num_eval_prompts": 0},
               "compare": TINY_COMPARE, "reward": TINY_REWARD,
               "ppo": {**TINY_PPO, "gold_eval_steps": 0, "num_eval_prompts": 0}}
    values = {f"{stage}_config": str(write_yaml(tmp_path / f"{stage}.yaml", {**config, "output_dir": "unused"}))
              for stage, config in configs.items()}
    return write_yaml(tmp_path / "pipeline.yaml", {**values, "run_dir": str(tmp_path / "run"), **overrides})


def test_stages_are_wired_to_the_outputs_before_them(tmp_path):
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path))])
    run = tmp_path / "run"
    assert pipeline.wiring(args, "reward") == ["--model_name_or_path", str(run / "sft" / "merged"),
                                               "--dataset_name", str(run / "compare" / "comparisons"),
                                               "--output_dir", str(run / "reward")]
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(
        tmp_path, base_model="HuggingFaceTB/SmolLM2-135M", skip=["compare"]))])
    assert args.skip == ["compare", "pretrain"]
    assert pipeline.wiring(args, "sft")[:2] == ["--model_name_or_path", "HuggingFaceTB/SmolLM2-135M"]
    assert "--dataset_name" not in pipeline.wiring(args, "reward")  # the reward config's own dataset


def test_unknown_stage_in_skip_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="skip: \\['rlhf'\\] are not stages"):
        parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path, skip=["rlhf"]))])


def test_a_killed_pipeline_reruns_to_the_end_and_then_skips_everything(tmp_path):
    config = tiny_pipeline(tmp_path)
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "recipes.pipeline", "--config", str(config)], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "sft" / "config.yaml").exists():  # SFT has started
        assert process.poll() is None and time.time() < deadline, "the pipeline stopped before SFT"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert run_dir.is_complete(run / "pretrain") and not run_dir.is_complete(run / "sft")

    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(config)])
    timings = pipeline.main(args)
    assert timings["pretrain"] == "complete" and all(isinstance(timings[s], float) for s in pipeline.STAGES[1:])
    assert all(run_dir.is_complete(run / stage) for stage in pipeline.STAGES)
    assert set(pipeline.main(args).values()) == {"complete"}
