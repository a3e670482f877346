"""Stage 3: PPO with a LoRA policy on the tiny SFT model."""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline
from trl.experimental.ppo.ppo_trainer import forward

from recipes import ppo
from recipes.common import rl, run_dir
from recipes.common.cli import ConfigError, parse_config
from tests.conftest import ROOT, tensorboard_tags, write_yaml
from tests.test_sft import run_sft

TINY_PPO = {
    "dtype": "float32", "use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_target_modules": "all-linear",
    "num_prompts": 32, "per_device_train_batch_size": 8, "local_rollout_forward_batch_size": 8,
    "total_episodes": 24, "response_length": 10, "num_ppo_epochs": 1, "learning_rate": 1.0e-2,
    "stop_token": "eos", "missing_eos_penalty": 1.0, "kl_coef": 0.05, "gold_eval_steps": 2,
    "gold_eval_prompts": 8, "num_eval_prompts": 16, "logging_steps": 1, "save_strategy": "no",
    "num_sample_generations": 0, "bf16": False, "report_to": "tensorboard", "seed": 0,
    "min_reward_accuracy": 0.0,  # the tests' reward models are barely trained; the check has its own test
}
TYPES = (ppo.PPOScriptArguments, ppo.PPOConfig, ppo.ModelConfig)


def sft_and_reward(tmp, base):
    """(a tiny SFT model, a reward model made from it with an untrained score head), written under `tmp`."""
    out, _ = run_sft(tmp, base, num_eval_prompts=0)
    reward = AutoModelForSequenceClassification.from_pretrained(out / "merged", num_labels=1)
    reward.config.pad_token_id = AutoTokenizer.from_pretrained(out / "merged").pad_token_id
    reward.save_pretrained(tmp / "reward")
    return out / "merged", tmp / "reward"


@pytest.fixture(scope="module")
def models(tiny_base, tmp_path_factory):
    return sft_and_reward(tmp_path_factory.mktemp("ppo_models"), tiny_base)


def config(tmp_path, models, **overrides) -> list[str]:
    sft, reward = models
    path = write_yaml(tmp_path / "ppo.yaml", {**TINY_PPO, "sft_model_path": str(sft), "reward_model_path": str(reward),
                                              "output_dir": str(tmp_path / "ppo"), **overrides})
    return ["--config", str(path)]


@pytest.fixture(scope="module")
def ppo_run(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppo")
    return ppo.main(*parse_config(TYPES, config(tmp, models))), tmp / "ppo"


def test_ppo_run_logs_gold_and_reward_model_scores(ppo_run):
    metrics, out = ppo_run
    assert run_dir.is_complete(out)
    history = json.loads((out / "log_history.json").read_text())
    steps = [row for row in history if "objective/kl" in row]
    assert [row["step"] for row in steps] == [1, 2, 3]
    assert {"train/objective/kl", "train/gold/score"} <= tensorboard_tags(out)
    assert all(k in steps[0] for k in ("objective/scores", "objective/entropy", "val/num_eos_tokens"))
    gold = [row for row in history if "gold/score" in row]
    assert [row["step"] for row in gold] == [0, 2, 3]  # before training, every gold_eval_steps, and at the end
    assert all(0 <= row["gold/score"] <= 1 and row["gold/response_tokens"] >= 0 and "gold/reward_model_score" in row
               for row in gold)
    assert (out / "curves.png").stat().st_size > 0
    result = json.loads((out / "eval_results.json").read_text())
    win = result["ppo_win_rate_vs_sft"]
    assert win["n"] == 16 and win["wins"] + win["ties"] + win["losses"] == 16
    assert result["ppo_kl_to_sft"]["kl"]["n"] == 16 and result["ppo"]["gold"]["n"] == 16
    assert "PPO" in (out / "README.md").read_text()


def test_ppo_outputs_load_with_plain_transformers_and_peft(ppo_run, models):
    _, out = ppo_run
    chat = pipeline("text-generation", model=str(out / "merged"))
    reply = chat([{"role": "user", "content": "What is 2 + 3?"}], max_new_tokens=5, do_sample=False)
    assert reply[0]["generated_text"][-1]["role"] == "assistant"
    adapter = load_file(out / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models[0]), out)
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    ids = torch.tensor([[1, 5, 9, 14]])
    assert torch.allclose(peft_model(ids).logits, merged(ids).logits, atol=1e-4)


def test_reference_log_probs_are_the_sft_models(models, tmp_path):
    """The known pitfall: with PEFT the reference must be the SFT model (the adapter switched off)."""
    script_args, training_args, model_args = parse_config(TYPES, config(tmp_path, models, gold_eval_steps=0))
    tokenizer = rl.policy_tokenizer(training_args.sft_model_path)
    trainer = ppo.build_trainer(script_args, training_args, model_args, tokenizer,
                                rl.training_prompts(script_args, tokenizer))
    trainer.train()
    sft = AutoModelForCausalLM.from_pretrained(models[0])
    pad = trainer.processing_class.pad_token_id
    batch = torch.tensor([trainer.train_dataset[0]["input_ids"]])
    policy = trainer.model.policy
    with torch.no_grad(), trainer.null_ref_context():
        reference = forward(policy, batch, pad).logits
    with torch.no_grad():
        trained = forward(policy, batch, pad).logits
        expected = forward(sft, batch, pad).logits
    assert torch.allclose(reference.log_softmax(-1), expected.log_softmax(-1), atol=1e-5)
    assert not torch.allclose(trained.log_softmax(-1), expected.log_softmax(-1), atol=1e-3)  # PPO did train


def test_ppo_refuses_model_name_or_path(models, tmp_path):
    with pytest.raises(ConfigError, match="sft_model_path"):
        ppo.main(*parse_config(TYPES, config(tmp_path, models, model_name_or_path="x")))


def test_ppo_refuses_an_unfinished_reward_stage(models, tmp_path):
    unfinished = tmp_path / "reward"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("output_dir: x\n")
    with pytest.raises(ValueError, match="reward_model_path: .* unfinished stage"):
        ppo.main(*parse_config(TYPES, config(tmp_path, models, reward_model_path=str(unfinished))))


def test_overoptimization_is_flagged_only_when_gold_falls_as_the_reward_model_score_rises():
    def monitor(checks):
        m = rl.GoldMonitor(None, None, [], None, every=1, max_new_tokens=1)
        m.checks = [(step, [gold + 0.01 * (i % 3) for i in range(30)], rm) for step, gold, rm in checks]
        m.on_train_end(None, None, None)
        return m.overoptimization

    flagged = monitor([(0, 0.5, 0.1), (4, 0.6, 0.2), (8, 0.4, 0.5)])
    assert flagged["best_step"] == 4 and flagged["gold_at_end"] < flagged["gold_at_best"]
    assert monitor([(0, 0.5, 0.1), (4, 0.6, 0.5), (8, 0.4, 0.3)]) is None  # the reward model saw the fall too
    assert monitor([(0, 0.5, 0.1), (4, 0.6, 0.2), (8, 0.6, 0.5)]) is None  # gold held


def _history(out):
    """The training log, less what depends on the wall clock."""
    return [{k: v for k, v in row.items() if k not in ("eps", "train_runtime")}
            for row in json.loads((out / "log_history.json").read_text())]


def _run_ppo(args, log, kill_after=None):
    """`python -m recipes.ppo` in a process of its own; returns the seconds between its first checkpoint (update 2)
    and its last (update 12) being complete. With `kill_after`, it is SIGKILLed that long after the first."""
    run = subprocess.Popen([sys.executable, "-m", "recipes.ppo", *args], cwd=ROOT, stdout=log, stderr=log)
    out = Path(yaml.safe_load(Path(args[1]).read_text())["output_dir"])
    deadline, times = time.time() + 300, {}
    while run.poll() is None and (len(times) < 2 or kill_after is not None) and time.time() < deadline:
        for step in {2, 12} - set(times):
            if (out / f"checkpoint-{step}/trainer_state.json").exists():
                times[step] = time.time()
        if kill_after is not None and 2 in times and (time.time() >= times[2] + kill_after or 12 in times):
            run.kill()  # at the drawn time, or at the latest when training is over (a slower machine)
        time.sleep(0.02)
    assert run.wait() == (0 if kill_after is None else -9), Path(log.name).read_text()[-3000:]
    return times[12] - times[2] if len(times) == 2 else None


def test_a_killed_ppo_run_resumes_from_its_last_checkpoint_with_an_uninterrupted_runs_figures(models, tmp_path,
                                                                                          capsys):
    """SIGKILL at a random point after the first checkpoint, rerun: same log, same weights, same evaluation.
    12 updates over 3 epochs of the 32 prompts, a checkpoint every 2."""
    settings = {"total_episodes": 96, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 1}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for d in (whole, killed):
        d.mkdir()
    with open(whole / "log.txt", "w") as log:
        window = _run_ppo(config(whole, models, **settings), log)
    args = config(killed, models, **settings)
    kill_after = random.Random().uniform(0, window)  # not the seeded global stream: a new point on every run
    with open(killed / "log.txt", "w") as log:
        _run_ppo(args, log, kill_after)
    assert not run_dir.is_complete(killed / "ppo")
    capsys.readouterr()
    ppo.main(*parse_config(TYPES, args))
    resumed = capsys.readouterr().out
    assert "resuming from" in resumed and "episode " in resumed, resumed
    said = f"killed {kill_after:.2f} s after the first checkpoint; " + resumed[resumed.index("resuming from"):][:200]
    histories = [json.dumps(_history(d / "ppo"), sort_keys=True) for d in (killed, whole)]  # key order aside
    assert histories[0] == histories[1], said
    for name in ("eval_results.json", "adapter_model.safetensors"):
        assert (killed / "ppo" / name).read_bytes() == (whole / "ppo" / name).read_bytes(), f"{name}: {said}"


def test_num_prompts_past_the_ppo_split_says_how_many_there_are(models, tmp_path, capsys):
    script_args, training_args, _ = parse_config(TYPES, config(tmp_path, models, num_prompts=100_000))
    prompts = rl.training_prompts(script_args, rl.policy_tokenizer(training_args.sft_model_path))
    assert 0 < len(prompts) < 100_000
    assert "num_prompts: 100000 asked, but the toy world's PPO split holds" in capsys.readouterr().out
