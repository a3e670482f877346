"""Stages under `accelerate launch` with configs/accelerate/cpu_ddp.yaml: 2 processes on one CPU machine (gloo),
chained as in the pipeline (SFT -> comparisons -> reward model -> RLOO and PPO). Each stage must train with both
processes together, and write its files, evaluation and stage.json once."""

import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from datasets import load_from_disk

from recipes.common import run_dir
from recipes.common.errors import ConfigError
from tests.conftest import ROOT, write_yaml
from tests.test_compare_reward import TINY_REWARD, run_compare
from tests.test_ppo import TINY_PPO
from tests.test_rl_methods import ONLINE
from tests.test_sft import TINY_SFT

ACCELERATE = os.path.join(os.path.dirname(sys.executable), "accelerate")
PER_DEVICE = 8


def launch(module: str, config: dict, tmp_path) -> str:
    """`accelerate launch --config_file configs/accelerate/cpu_ddp.yaml -m recipes.<module> --config ...`; its
    output (both processes')."""
    path = write_yaml(tmp_path / f"{module}.yaml", {**config, "use_cpu": True, "report_to": "none"})
    result = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"),
         "-m", f"recipes.{module}", "--config", str(path)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def steps_per_epoch(examples: int, processes: int) -> int:
    """Optimizer steps in one epoch: each process takes its share of the examples in batches of PER_DEVICE."""
    return math.ceil(math.ceil(examples / processes) / PER_DEVICE)


def losses(out) -> list[float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [row["loss"] for row in history if "loss" in row]


@pytest.fixture(scope="module")
def chain(tiny_base, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    sft = launch("sft", {**TINY_SFT, "max_steps": -1, "num_train_epochs": 2, "num_eval_prompts": 10,
                         "model_name_or_path": str(tiny_base), "output_dir": str(tmp / "sft")}, tmp)
    run_compare(tmp, tmp / "sft" / "merged")  # sampling is one process's work
    reward = launch("reward", {**TINY_REWARD, "max_steps": -1, "num_train_epochs": 4, "learning_rate": 1.0e-2,
                               "model_name_or_path": str(tmp / "sft" / "merged"),
                               "dataset_name": str(tmp / "compare" / "comparisons"), "output_dir": str(tmp / "reward")},
                    tmp)
    rloo = launch("rloo", {**ONLINE, "sft_model_path": str(tmp / "sft" / "merged"),
                           "reward_model_path": str(tmp / "reward" / "merged"), "output_dir": str(tmp / "rloo")}, tmp)
    # a checkpoint at every update: saving is where TRL's PPO trainer broke under DDP on the other process
    ppo = launch("ppo", {**TINY_PPO, "total_episodes": 32, "save_strategy": "steps", "save_steps": 1,
                         "sft_model_path": str(tmp / "sft" / "merged"),
                         "reward_model_path": str(tmp / "reward" / "merged"), "output_dir": str(tmp / "ppo")}, tmp)
    return tmp, {"sft": sft, "reward": reward, "rloo": rloo, "ppo": ppo}


def test_sft_under_ddp_trains_on_both_processes_and_writes_once(chain):
    tmp, output = chain
    out = tmp / "sft"
    assert run_dir.is_complete(out) and (out / "merged" / "model.safetensors").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 * steps_per_epoch(TINY_SFT["num_demonstrations"], 2)  # 6, not 12 alone
    loss = losses(out)
    assert loss[-1] < loss[0]
    assert output["sft"].count("sft: mean gold score") == 1  # the gold evaluation ran once
    assert json.loads((out / "stage.json").read_text())["metrics"]["gold"]["sft"]["gold"]["n"] == 10


def test_reward_model_under_ddp_trains_on_both_processes_and_writes_once(chain):
    tmp, output = chain
    out = tmp / "reward"
    assert run_dir.is_complete(out) and (out / "merged" / "model.safetensors").is_file()
    pairs = len(load_from_disk(str(tmp / "compare" / "comparisons"))["train"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 * steps_per_epoch(pairs, 2) != 4 * steps_per_epoch(pairs, 1)
    loss = losses(out)
    half = len(loss) // 2
    assert sum(loss[half:]) / (len(loss) - half) < sum(loss[:half]) / half
    assert output["reward"].count('"gold_agreement"') == 1  # evaluated and reported once
    assert (out / "scores.png").is_file()


def test_rloo_under_ddp_runs_and_compares_with_sft_once(chain):
    tmp, output = chain
    out = tmp / "rloo"
    assert run_dir.is_complete(out) and (out / "merged" / "model.safetensors").is_file()
    history = json.loads((out / "log_history.json").read_text())
    assert max(row["step"] for row in history) == ONLINE["max_steps"]
    assert output["rloo"].count("RLOO win rate vs SFT") == 1
    assert "rloo_win_rate_vs_sft" in json.loads((out / "eval_results.json").read_text())


def test_ppo_under_ddp_collects_episodes_on_both_processes_and_compares_with_sft_once(chain):
    """TRL's PPO trainer reaches past the DDP wrapper for its policy (TRL #2375); resume.ResumablePPOTrainer
    points it there. Each update takes 8 prompts on each process: 32 episodes in 2 updates, not 4."""
    tmp, output = chain
    out = tmp / "ppo"
    assert run_dir.is_complete(out) and (out / "merged" / "model.safetensors").is_file()
    history = json.loads((out / "log_history.json").read_text())
    assert [row["episode"] for row in history if "objective/scores" in row] == [16, 32]
    assert output["ppo"].count("PPO win rate vs SFT") == 1
    assert "ppo_win_rate_vs_sft" in json.loads((out / "eval_results.json").read_text())


def test_processes_that_would_train_apart_are_refused(monkeypatch):
    """Launched as 2 processes without use_cpu on a machine without GPUs, the trainer sees 1: each would train
    alone. Refused, naming the key (every training stage checks this first). PPO under ZeRO-3 or FSDP likewise."""
    alone = SimpleNamespace(world_size=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="use_cpu: launched as 2 processes, but the sft trainer sees 1"):
        run_dir.check_launch(alone, "sft")
    run_dir.check_launch(SimpleNamespace(world_size=2), "sft")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="PPO trainer does not support DeepSpeed ZeRO-3 or FSDP"):
        run_dir.check_launch(alone, "ppo")
    run_dir.check_launch(alone, "rloo")  # RLOO and GRPO may
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    with pytest.raises(ConfigError, match="ZeRO-3"):
        run_dir.check_launch(alone, "ppo")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    run_dir.check_launch(alone, "ppo")
    # fsdp2.yaml on a CPU: accelerate gives plain data parallel instead, without a word (seen: MULTI_CPU, fsdp None)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="use_cpu: true, but the accelerate config asks for FSDP"):
        run_dir.check_launch(SimpleNamespace(world_size=2, use_cpu=True), "sft")
    run_dir.check_launch(SimpleNamespace(world_size=2, use_cpu=False), "sft")  # on GPUs

def test_every_stage_checks_its_launch_before_it_starts():
    """The check above is made by every training stage, before its output directory is touched."""
    for path in ("recipes/pretrain.py", "recipes/sft.py", "recipes/reward.py", "recipes/common/rl.py"):
        text = (ROOT / path).read_text()
        assert 0 < text.index("run_dir.check_launch(") < text.index("run_dir.start_stage("), path
