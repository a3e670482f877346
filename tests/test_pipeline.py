"""The main job's pipeline: stages wired together, complete stages skipped, a killed run rerun to the end with the
figures of an uninterrupted one."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recipes import pipeline
from recipes.common import run_dir
from recipes.common.cli import DEBUG_ENV, parse_config
from tests.conftest import ROOT, TINY_PRETRAIN, write_yaml
from tests.test_compare_reward import TINY_COMPARE, TINY_REWARD
from tests.test_ppo import TINY_PPO
from tests.test_sft import TINY_SFT

TINY_EVALUATE = {"num_prompts": 20, "best_of_n": 2, "max_new_tokens": 8, "num_samples": 2, "seed": 0,
                 "llm_judge": "sft"}


def tiny_pipeline(tmp_path, **overrides):
    configs = {"pretrain": TINY_PRETRAIN, "sft": {**TINY_SFT, "num_eval_prompts": 0, "max_steps": 12, "save_steps": 3},
               "compare": {**TINY_COMPARE, "judge_prompts": 12}, "reward": TINY_REWARD, "judge": TINY_REWARD,
               "ppo": {**TINY_PPO, "gold_eval_steps": 0, "num_eval_prompts": 0}, "evaluate": TINY_EVALUATE}
    values = {f"{stage}_config": str(write_yaml(tmp_path / f"{stage}.yaml", {**config, "output_dir": "unused"}))
              for stage, config in configs.items()}
    return write_yaml(tmp_path / "pipeline.yaml", {**values, "run_dir": str(tmp_path / "run"), **overrides})


def test_stages_are_wired_to_the_outputs_before_them(tmp_path):
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path))])
    run = tmp_path / "run"
    assert pipeline.wiring(args, "reward") == ["--model_name_or_path", str(run / "sft" / "merged"),
                                               "--dataset_name", str(run / "compare" / "comparisons"),
                                               "--output_dir", str(run / "reward")]
    assert pipeline.wiring(args, "judge")[:4] == ["--model_name_or_path", str(run / "sft" / "merged"),
                                                  "--dataset_name", str(run / "compare" / "judge_comparisons")]
    evaluate = pipeline.wiring(args, "evaluate")
    assert evaluate[evaluate.index("--judge_reward_model") + 1] == str(run / "judge" / "merged")
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(
        tmp_path, base_model="HuggingFaceTB/SmolLM2-135M", skip=["compare"]))])
    assert args.skip == ["compare", "pretrain"]
    assert pipeline.wiring(args, "sft")[:2] == ["--model_name_or_path", "HuggingFaceTB/SmolLM2-135M"]
    assert "--dataset_name" not in pipeline.wiring(args, "reward")  # the reward config's own dataset


def test_one_seed_seeds_every_stage_and_the_world(tmp_path):
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path, seed=0)),
                                                         "--seed", "2", "--world_entities", "40"])
    for stage in pipeline.STAGES:
        wired = pipeline.wiring(args, stage)
        assert wired[wired.index("--seed") + 1] == "2"
        if stage in pipeline.WORLD_STAGES:
            assert wired[wired.index("--world_seed") + 1] == "2"
            assert wired[wired.index("--world_entities") + 1] == "40"
    from recipes import sft
    sft_args, *_ = parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), [
        "--config", str(ROOT / "configs/tiny/sft.yaml"), *pipeline.wiring(args, "sft")])
    assert (sft_args.world_seed, sft_args.world().seed, len(sft_args.world().entities)) == (2, 2, 40)


def test_unknown_stage_in_skip_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="skip: \\['rlhf'\\] are not stages"):
        parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path, skip=["rlhf"]))])


def test_a_trl_without_ppo_is_said_before_the_first_stage_and_ppo_can_be_skipped(tmp_path, monkeypatch):
    # TRL 1.13 removed PPOTrainer: recipes.common.arguments then has no "ppo" entry (every other stage still loads)
    monkeypatch.delitem(pipeline.CONFIGS, "ppo")
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path))])
    with pytest.raises(pipeline.ConfigError, match=r"PPOTrainer.*trl==1\.12\.0.*skip: \[ppo\]"):
        pipeline.preflight(args)
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path, skip=["ppo"]))])
    pipeline.preflight(args)  # the other stages' configs are read and pass


def test_a_pipeline_killed_mid_stage_reruns_to_the_figures_of_an_uninterrupted_run(tmp_path):
    (tmp_path / "killed").mkdir()
    config = tiny_pipeline(tmp_path / "killed")
    run = tmp_path / "killed" / "run"
    process = subprocess.Popen([sys.executable, "-m", "recipes.pipeline", "--config", str(config)], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((run / "sft").glob("checkpoint-*")):  # SFT is half-way through training
        assert process.poll() is None and time.time() < deadline, "the pipeline stopped before SFT saved a checkpoint"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert run_dir.is_complete(run / "pretrain") and not run_dir.is_complete(run / "sft")

    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(config)])
    timings = pipeline.main(args)
    assert timings["pretrain"] == "complete" and all(isinstance(timings[s], float) for s in pipeline.STAGES[1:])
    assert all(run_dir.is_complete(run / stage) for stage in pipeline.STAGES)
    assert set(pipeline.main(args).values()) == {"complete"}
    recorded = json.loads((run / "timings.json").read_text())  # the killed run's pretraining time is kept
    assert all(isinstance(recorded[s], float) for s in pipeline.STAGES)

    (tmp_path / "whole").mkdir()  # uninterrupted, and every stage in the test's own process: the same figures
    whole, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(tmp_path / "whole",
                                                                                          in_process=True))])
    pipeline.main(whole)
    reports = [json.loads((r / "report.json").read_text().replace(str(r), "<run>")) for r in (run, Path(whole.run_dir))]
    for report in reports:
        report.pop("run")
    assert reports[0] == reports[1]
    assert [row["gold"]["n"] for row in reports[0]["models"].values()] == [20] * 5
    assert set(reports[0]["judges"]) == {"reward_model", "judge_reward_model", "llm_judge"}
    assert reports[0]["judges"]["judge_reward_model"]["model"] == "<run>/judge/merged"
    assert all(0 <= j["agreement_with_gold"]["agreement"] <= 1 for j in reports[0]["judges"].values())
    assert (run / "report.md").read_text().replace(str(run), "") == \
        (Path(whole.run_dir) / "report.md").read_text().replace(whole.run_dir, "")


def test_a_stage_that_refuses_its_input_in_process_stops_the_pipeline_with_the_same_advice(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "0")  # the message alone, as without --debug
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(tiny_pipeline(
        tmp_path, in_process=True, skip=["pretrain", "sft", "compare"]))])  # reward reads no model and no data
    argv = list(sys.argv)
    with pytest.raises(SystemExit, match="stage 'reward' failed \\(see above\\); fix it and rerun the same command"):
        pipeline.run_stage(args, "reward")
    assert sys.argv == argv
    out = capsys.readouterr()
    assert "(in this process)" in out.out and "error: " in out.err and "Traceback" not in out.err
    monkeypatch.setenv(DEBUG_ENV, "1")  # --debug: the traceback, and still the pipeline's advice
    with pytest.raises(SystemExit, match="stage 'reward' failed \\(see above\\); fix it and rerun the same command"):
        pipeline.run_stage(args, "reward")
    assert "Traceback" in capsys.readouterr().err and sys.argv == argv


def test_a_checkpoint_cut_off_by_a_kill_is_removed_not_resumed_from(tmp_path):
    for step, finished in ((3, True), (6, True), (9, False)):
        checkpoint = tmp_path / f"checkpoint-{step}"
        checkpoint.mkdir()
        (checkpoint / "model.safetensors").write_bytes(b"")
        if finished:
            (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-12").mkdir()
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert run_dir.last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-6"]
    assert run_dir.last_checkpoint(tmp_path / "none") is None


def test_checkpoints_written_with_other_settings_are_not_resumed_from(tmp_path, capsys):
    @dataclasses.dataclass
    class Settings:
        learning_rate: float = 1.0e-3

    run_dir.save_config(tmp_path, Settings())
    (tmp_path / "checkpoint-4").mkdir()
    run_dir.save_config(tmp_path, Settings())  # the same run, rerun after a kill: resumes
    assert (tmp_path / "checkpoint-4").is_dir()
    run_dir.save_config(tmp_path, Settings(learning_rate=3.0e-3))
    assert not (tmp_path / "checkpoint-4").exists() and "training starts over" in capsys.readouterr().out


def test_a_stage_redone_or_changed_redoes_exactly_the_stages_that_read_it(tmp_path, capsys):
    # a number in <stage>_args, as YAML reads the README's own example, is passed on as a string
    config = tiny_pipeline(tmp_path, sft_args=["--learning_rate", 1.0e-3])
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(config)])
    run = tmp_path / "run"

    def redone() -> set[str]:
        return {stage for stage, t in pipeline.main(args).items() if isinstance(t, float)}

    assert redone() == set(pipeline.STAGES)
    assert "--learning_rate 0.001" in capsys.readouterr().out
    assert redone() == set()
    (run / "ppo" / "stage.json").unlink()  # PPO redone: the report must describe the new PPO model
    assert redone() == {"ppo", "evaluate"}
    assert "evaluate: redone from scratch, built from other inputs (ppo was redone)" in capsys.readouterr().out
    reward_config = Path(args.reward_config)
    write_yaml(reward_config, {**yaml.safe_load(reward_config.read_text()), "learning_rate": 1.0e-3})
    assert redone() == {"reward", "ppo", "evaluate"}  # the held-out judge does not read the reward model
    assert f"reward: redone from scratch, built from other inputs (its config {reward_config} changed)" \
        in capsys.readouterr().out
    assert redone() == set()


def test_a_report_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(PermissionError, match=r"report_dir: cannot write in .*a_file/reports .*choose a directory"):
        run_dir.check_writable(tmp_path / "a_file" / "reports", "report_dir")
    assert run_dir.check_writable(tmp_path / "new" / "reports", "report_dir").is_dir()
    assert list((tmp_path / "new" / "reports").iterdir()) == []  # the probe leaves nothing behind


def test_accelerate_config_launches_the_training_stages_in_several_processes(tiny_base, tmp_path):
    """accelerate_config: SFT (here the only stage run) goes through `accelerate launch` with 2 CPU processes,
    which take half the steps one would, even with in_process on; inputs.json records the launch, so another launch
    redoes the stage."""
    sft = {**TINY_SFT, "num_eval_prompts": 0, "max_steps": -1, "num_train_epochs": 1, "use_cpu": True,
           "report_to": "none"}
    config = tiny_pipeline(tmp_path, base_model=str(tiny_base), skip=["compare", "reward", "judge", "ppo", "evaluate"],
                           sft_config=str(write_yaml(tmp_path / "sft_ddp.yaml", {**sft, "output_dir": "unused"})),
                           accelerate_config=str(ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"),
                           accelerate_stages=["sft", "ppo"], in_process=True)
    result = subprocess.run([sys.executable, "-m", "recipes.pipeline", "--config", str(config)], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    out = tmp_path / "run" / "sft"
    assert "-m accelerate.commands.launch --config_file" in result.stdout and "(in this process)" not in result.stdout
    assert run_dir.is_complete(out)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3  # 48 examples, 2 x 8 a step
    assert json.loads((out / "inputs.json").read_text())["launch"]["config"].endswith("cpu_ddp.yaml")
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(config), "--accelerate_stages", "ppo"])
    assert pipeline.launch(args, "sft") == [] and pipeline.launch(args, "ppo")[-1].endswith("cpu_ddp.yaml")
    with pytest.raises(ValueError, match=r"accelerate_stages: \['evaluate'\] are not training stages"):
        parse_config((pipeline.PipelineArguments,), ["--config", str(config), "--accelerate_stages", "evaluate"])
