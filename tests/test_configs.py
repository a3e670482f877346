"""Every config in configs/ parses against the pinned dataclasses, and mistakes in a config fail loudly."""

import dataclasses
import gc
import json
import os
import re
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import yaml
from trl import GRPOConfig, RLOOConfig

from recipes import arena, bench, benchmarks, compare, dpo, evaluate, pipeline, ppo, pretrain, reward, sft
from recipes.common import rl, run_dir
from recipes.common.cli import DEBUG_ENV, ConfigError, parse_config, run_main
from tests.conftest import ROOT, write_yaml

# Which dataclasses each stage's configs are parsed with; a config file is named after its stage.
STAGES = {
    "pretrain": (pretrain.PretrainArguments, pretrain.TrainingArguments),
    "sft": (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig),
    "compare": (compare.CompareArguments,),
    "reward": (reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
    "judge": (reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),  # a held-out reward model
    "ppo": (ppo.PPOScriptArguments, ppo.PPOConfig, ppo.ModelConfig),
    "rloo": (rl.OnlineArguments, RLOOConfig, ppo.ModelConfig),
    "grpo": (rl.OnlineArguments, GRPOConfig, ppo.ModelConfig),
    "dpo": (dpo.DPOScriptArguments, dpo.DPOConfig, dpo.ModelConfig),
    "arena": (arena.ArenaArguments,),
    "benchmarks": (benchmarks.BenchmarkArguments,),
    "bench": (bench.BenchArguments,),
    "evaluate": (evaluate.EvaluateArguments,),
    "pipeline": (pipeline.PipelineArguments,),
}
ACCELERATE = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))  # accelerate's own configs, not a stage's
CONFIGS = sorted(set((ROOT / "configs").rglob("*.yaml")) - set(ACCELERATE))


def cpu_flags(stage: str, values: dict) -> list[str]:
    """GPU configs (bf16) of training stages parse on this CPU-only machine when told it is one."""
    trains = any("use_cpu" in t.__dataclass_fields__ for t in STAGES[stage])
    return ["--use_cpu", "true"] if values.get("bf16") and trains else []


def stage_of(path: Path) -> str:
    return next(stage for stage in STAGES if path.stem.startswith(stage))


def test_there_are_configs():
    assert CONFIGS and all(any(p.stem.startswith(s) for s in STAGES) for p in CONFIGS), CONFIGS
    assert {p.stem for p in ACCELERATE} == {"ddp", "cpu_ddp", "zero2", "zero3", "fsdp2"}


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_loads_as_accelerate_reads_it(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(path)  # refuses keys it does not know
    assert config.num_machines == 1 and config.distributed_type.value in ("MULTI_GPU", "DEEPSPEED", "FSDP")
    assert path.read_text().startswith("# ")  # each says when to use it


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses(path):
    values = yaml.safe_load(path.read_text())
    # GPU configs (bf16) parse on this CPU-only machine when told it is one
    parse_config(STAGES[stage_of(path)], ["--config", str(path), *cpu_flags(stage_of(path), values)])
    for key, value in values.items():
        # YAML reads 2e-5 as a string; write 2.0e-5
        assert not (isinstance(value, str) and re.fullmatch(r"[-+]?[\d.]+e[-+]?\d+", value)), f"{path}: {key}"


def test_typo_in_yaml_names_the_file_and_key(tmp_path):
    config = write_yaml(tmp_path / "pretrain.yaml", {"output_dir": str(tmp_path), "lerning_rate": 1.0e-3})
    with pytest.raises(ConfigError) as error:
        parse_config(STAGES["pretrain"], ["--config", str(config)])
    message = str(error.value)
    assert str(config) in message and "'lerning_rate'" in message and "did you mean 'learning_rate'" in message


def test_unknown_command_line_flag_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown command-line argument 'hiden_size'.*hidden_size"):
        parse_config(STAGES["pretrain"], ["--output_dir", str(tmp_path), "--hiden_size", "8"])


def test_command_line_overrides_yaml(tmp_path):
    config = write_yaml(tmp_path / "pretrain.yaml", {"output_dir": str(tmp_path), "hidden_size": 64})
    args, _ = parse_config(STAGES["pretrain"], ["--config", str(config), "--hidden_size", "96"])
    assert args.hidden_size == 96


@pytest.mark.parametrize("stage", ["pretrain", "sft", "reward", "ppo", "rloo", "grpo", "dpo"])
def test_saved_config_reads_back(tmp_path, stage):
    """A stage's config.yaml reruns it: every argument comes back as it was (to_dict hides `*_token` fields, and
    PPO's stop_token once came back as '<STOP_TOKEN>', which PPOTrainer refuses)."""
    source = ROOT / "configs" / "tiny" / f"{stage}.yaml"
    parsed = parse_config(STAGES[stage], ["--config", str(source)])
    saved = run_dir.save_config(tmp_path, *parsed)
    assert "<" not in saved.read_text()
    reparsed = parse_config(STAGES[stage], ["--config", str(saved)])
    for before, after in zip(parsed, reparsed):
        for field in dataclasses.fields(before):
            assert getattr(after, field.name) == getattr(before, field.name), (stage, field.name)


def test_every_command_in_the_readmes_names_a_stage_and_a_config_that_parses():
    """The READMEs' `python -m recipes.<stage> --config <file>` lines stay true as recipes and configs change."""
    text = "\n".join(p.read_text() for p in (ROOT / "README.md", ROOT / "notebooks" / "README.md"))
    commands = set(re.findall(r"python -m recipes\.(\w+) --config ([\w./-]+\.yaml)", text))
    assert len(commands) >= 10, commands
    for stage, path in sorted(commands):
        assert stage in STAGES, f"README: recipes.{stage} is not a stage"
        values = yaml.safe_load((ROOT / path).read_text())
        parse_config(STAGES[stage], ["--config", str(ROOT / path), *cpu_flags(stage, values)])


@pytest.mark.parametrize("stage,key,value", [
    ("sft", "learning_rate", 0.0), ("sft", "num_train_epochs", 0.0), ("reward", "per_device_train_batch_size", 0),
    ("ppo", "kl_coef", -0.5), ("ppo", "num_mini_batches", 0), ("ppo", "total_episodes", 0), ("dpo", "beta", -0.1),
    ("compare", "test_fraction", 0.0), ("compare", "test_fraction", 1.5), ("compare", "num_prompts", 0),
    ("evaluate", "max_new_tokens", 0),
])
def test_settings_that_would_train_nothing_are_refused_naming_file_and_key(tmp_path, stage, key, value):
    values = {**yaml.safe_load((ROOT / "configs" / "tiny" / f"{stage}.yaml").read_text()), key: value}
    config = write_yaml(tmp_path / f"{stage}.yaml", values)
    cpu = cpu_flags(stage, values)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(config))}: {key}: {value} must be"):
        parse_config(STAGES[stage], ["--config", str(config), *cpu])


def test_max_steps_stands_in_for_epochs():
    config = ROOT / "configs" / "tiny" / "fast" / "sft.yaml"
    parse_config(STAGES["sft"], ["--config", str(config), "--num_train_epochs", "0", "--max_steps", "3"])


def test_a_mistyped_run_path_is_named_as_missing_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="model_name_or_path: runs/pretrain does not exist"):
        run_dir.check_input("runs/pretrain", "model_name_or_path")
    run_dir.check_input("HuggingFaceTB/SmolLM2-135M", "model_name_or_path")  # a Hub id: checked when loaded


def test_the_wrong_kind_of_model_is_refused_naming_the_key(tmp_path):
    for name, architecture in (("lm", "LlamaForCausalLM"), ("rm", "LlamaForSequenceClassification")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"architectures": [architecture]}))
        (tmp_path / name / "tokenizer.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_text("")
    with pytest.raises(ValueError, match=r"reward_model_path: .*lm is a LlamaForCausalLM, not a reward model"):
        run_dir.check_input(str(tmp_path / "lm"), "reward_model_path", "reward_model")
    with pytest.raises(ValueError, match=r"ppo_model: .*rm is a LlamaForSequenceClassification, not a causal"):
        run_dir.check_input(str(tmp_path / "rm"), "ppo_model", "causal_lm")
    run_dir.check_input(str(tmp_path / "rm"), "reward_model_path", "reward_model")
    run_dir.check_input(str(tmp_path / "lm"), "sft_model_path", "causal_lm")


def test_a_user_error_is_shown_as_its_message_alone_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "0")  # not delenv: --debug sets it, and only a recorded value is restored after
    args = ["--config", str(ROOT / "configs/tiny/fast/sft.yaml"), "--learning_rate", "0",
            "--output_dir", str(tmp_path / "sft")]
    with pytest.raises(SystemExit) as exit_:
        run_main(sft.main, (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "learning_rate: 0.0 must be above 0" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="learning_rate"):
        run_main(sft.main, (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), [*args, "--debug"])
    assert not (tmp_path / "sft").exists()


def test_a_stage_run_from_the_shell_exits_2_on_a_user_error_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    result = subprocess.run([sys.executable, "-m", "recipes.reward", "--config", "configs/tiny/fast/reward.yaml",
                             "--model_name_or_path", str(tmp_path / "no_such_model"),
                             "--output_dir", str(tmp_path / "reward")],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert f"model_name_or_path: {tmp_path / 'no_such_model'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "reward").exists()


def test_a_stage_runs_with_the_imports_set_aside_from_the_cycle_collector():
    """TRL's PPO loop calls gc.collect() twice a step; walking torch's and transformers' ~500,000 objects each time
    was half of the toy PPO stage's minutes. run_main freezes what is alive before the stage; what the stage makes
    is still collected."""
    class Node:
        pass

    def main(args):
        node = Node()
        node.itself = node  # a cycle: only the cycle collector frees it
        ref = weakref.ref(node)
        del node
        gc.collect()
        return gc.get_freeze_count(), ref() is None

    try:
        frozen, collected = run_main(main, (compare.CompareArguments,),
                                     ["--config", str(ROOT / "configs/tiny/fast/compare.yaml")])
    finally:
        gc.unfreeze()
    assert frozen > 100_000, frozen
    assert collected
