"""Stage 3 by RLOO, GRPO and DPO: each a LoRA policy on the tiny SFT model, its reference the SFT model."""

import json

import pytest
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

from recipes import dpo, grpo, rloo
from recipes.common import rl, run_dir
from recipes.common.cli import ConfigError, parse_config
from recipes.common.hub import HubError
from tests.conftest import tensorboard_tags, write_yaml
from tests.test_compare_reward import run_compare
from tests.test_ppo import sft_and_reward

COMMON = {
    "dtype": "float32", "use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_target_modules": "all-linear",
    "learning_rate": 1.0e-2, "max_steps": 3, "per_device_train_batch_size": 8, "gold_eval_steps": 2,
    "gold_eval_prompts": 8, "num_eval_prompts": 16, "logging_steps": 1, "save_strategy": "no", "bf16": False,
    "report_to": "tensorboard", "seed": 0,
    "min_reward_accuracy": 0.0,  # barely trained models; the check has its own test
}
ONLINE = {**COMMON, "num_prompts": 32, "num_generations": 4, "max_completion_length": 10, "beta": 0.05}
OFFLINE = {**COMMON, "max_length": 128, "beta": 0.1, "max_new_tokens": 10}
METHODS = {  # module, its config types, its tiny config
    "rloo": (rloo, (rl.OnlineArguments, rloo.RLOOConfig, rloo.ModelConfig), ONLINE),
    "grpo": (grpo, (rl.OnlineArguments, grpo.GRPOConfig, grpo.ModelConfig), ONLINE),
    "dpo": (dpo, (dpo.DPOScriptArguments, dpo.DPOConfig, dpo.ModelConfig), OFFLINE),
}


@pytest.fixture(scope="module")
def models(tiny_base, tmp_path_factory):
    """(a tiny SFT model, a reward model made from it with an untrained score head, comparisons of its samples)."""
    tmp = tmp_path_factory.mktemp("rl_models")
    sft, reward = sft_and_reward(tmp, tiny_base)
    run_compare(tmp, sft)
    return sft, reward, tmp / "compare" / "comparisons"


def parsed(method, tmp_path, models, **overrides):
    module, types, tiny = METHODS[method]
    sft, reward, comparisons = models
    data = {"dataset_name": str(comparisons)} if method == "dpo" else {}
    path = write_yaml(tmp_path / f"{method}.yaml", {**tiny, **data, "sft_model_path": str(sft),
                                                     "reward_model_path": str(reward),
                                                     "output_dir": str(tmp_path / method), **overrides})
    return parse_config(types, ["--config", str(path)])


@pytest.fixture(scope="module", params=sorted(METHODS))
def run(request, models, tmp_path_factory):
    method = request.param
    tmp = tmp_path_factory.mktemp(method)
    return method, METHODS[method][0].main(*parsed(method, tmp, models)), tmp / method


def test_run_logs_gold_checks_and_compares_with_sft(run):
    method, metrics, out = run
    assert run_dir.is_complete(out)
    history = json.loads((out / "log_history.json").read_text())
    gold = [row for row in history if "gold/score" in row]
    assert "train/gold/score" in tensorboard_tags(out)
    assert [row["step"] for row in gold] == [0, 2, 3]  # before training, every gold_eval_steps, and at the end
    assert all(0 <= row["gold/score"] <= 1 and "gold/reward_model_score" in row for row in gold)
    assert (out / "curves.png").stat().st_size > 0
    result = json.loads((out / "eval_results.json").read_text())
    win = result[f"{method}_win_rate_vs_sft"]
    assert win["n"] == 16 and win["wins"] + win["ties"] + win["losses"] == 16
    assert result[f"{method}_kl_to_sft"]["kl"]["n"] == 16 and result[method]["gold"]["n"] == 16
    assert "reward_model_score" in result[method] and metrics["eval"] == {k: result[k] for k in metrics["eval"]}
    assert method.upper() in (out / "README.md").read_text() or method in (out / "README.md").read_text()


def test_outputs_load_with_plain_transformers_and_peft(run, models):
    _, _, out = run
    chat = pipeline("text-generation", model=str(out / "merged"))
    reply = chat([{"role": "user", "content": "What is 2 + 3?"}], max_new_tokens=5, do_sample=False)
    assert reply[0]["generated_text"][-1]["role"] == "assistant"
    adapter = load_file(out / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())  # it trained
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(models[0]), out)
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    ids = torch.tensor([[1, 5, 9, 14]])
    assert torch.allclose(peft_model(ids).logits, merged(ids).logits, atol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_reference_log_probs_are_the_sft_models(method, models, tmp_path):
    """The known pitfall: with PEFT the reference must be the SFT model (the adapter switched off), and the adapter
    must train (a PeftModel loaded with is_trainable=False trains nothing: TRL #6700)."""
    module, _, _ = METHODS[method]
    script_args, training_args, model_args = parsed(method, tmp_path, models, gold_eval_steps=0)
    tokenizer = rl.policy_tokenizer(script_args.sft_model_path)
    if method == "dpo":
        trainer = dpo.build_trainer(script_args, training_args, model_args, tokenizer,
                                    dpo.pairs_to_train_on(script_args, training_args, tokenizer))
    else:
        trainer = rl.build_online_trainer(module.__dict__[f"{method.upper()}Trainer"], script_args, training_args,
                                          model_args, tokenizer, rl.training_prompts(script_args, tokenizer))
    trainer.train()
    assert trainer.ref_model is None  # TRL takes the reference from the adapter switched off
    sft = AutoModelForCausalLM.from_pretrained(models[0])
    ids = torch.tensor([[1, 5, 9, 14, 20, 7]])
    policy = trainer.model
    with torch.no_grad():
        with policy.disable_adapter():
            reference = policy(ids).logits
        trained, expected = policy(ids).logits, sft(ids).logits
    assert torch.allclose(reference.log_softmax(-1), expected.log_softmax(-1), atol=1e-5)
    assert not torch.allclose(trained.log_softmax(-1), expected.log_softmax(-1), atol=1e-3)


def test_reward_model_is_read_at_the_eos_as_in_reward_training(models):
    """The reward function scores a completion exactly as `generation.reward_scores` (reward training's reading),
    whatever TRL's decoding left of the conversation, and the eos penalty hits only completions that never end."""
    _, reward_path, _ = models
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    model = AutoModelForSequenceClassification.from_pretrained(reward_path, num_labels=1)
    score = rl.RewardModelScore(model, tokenizer)
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]] * 2
    completions = [[{"role": "assistant", "content": "2 + 3 = 5."}], [{"role": "assistant", "content": "Five."}]]
    expected = rl.reward_scores(model, tokenizer, ["What is 2 + 3?"] * 2, ["2 + 3 = 5.", "Five."])
    assert score(prompts, completions) == pytest.approx(expected)
    penalty = rl.MissingEosPenalty(1.5, tokenizer.eos_token_id)
    assert penalty([[5, 6, tokenizer.eos_token_id], [5, 6, 7]]) == [0.0, -1.5]


def test_configs_are_checked_before_anything_loads(models, tmp_path):
    with pytest.raises(ConfigError, match="sft_model_path"):
        rloo.main(*parsed("rloo", tmp_path, models, model_name_or_path="x"))
    with pytest.raises(ConfigError, match="beta"):
        grpo.main(*parsed("grpo", tmp_path, models, beta=-0.1))
    with pytest.raises(ConfigError, match="dataset_name"):
        dpo.main(*parsed("dpo", tmp_path, models, dataset_name=None))
    with pytest.raises(FileNotFoundError, match="reward_model_path"):
        grpo.main(*parsed("grpo", tmp_path, models, reward_model_path=str(tmp_path / "missing")))
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):  # the upload at the end could not happen: say so first
        dpo.main(*parsed("dpo", tmp_path, models, push_to_hub=True, hub_model_id="someone/dpo"))
    assert not any((tmp_path / m).exists() for m in METHODS)


def test_rl_stages_refuse_a_reward_model_below_min_reward_accuracy(models, tmp_path):
    """Checked from the reward stage's eval_results.json before the policy loads; the message names the figure
    and the key that overrides it; 0 turns the check off; DPO, which does not train on it, does not check."""
    sft, reward, comparisons = models
    stage = tmp_path / "reward_stage"
    stage.mkdir()
    (stage / "eval_results.json").write_text('{"accuracy": 0.52, "pairs": 100}')
    (stage / "merged").symlink_to(reward, target_is_directory=True)
    low = {"reward_model_path": str(stage / "merged"), "min_reward_accuracy": 0.6}
    for method, module in (("rloo", rloo), ("grpo", grpo)):
        with pytest.raises(ConfigError, match=r"52\.0%.*min_reward_accuracy=0\.6.*lower min_reward_accuracy"):
            module.main(*parsed(method, tmp_path, models, **low))
        assert not (tmp_path / method).exists()
    from recipes import ppo
    from tests.test_ppo import TYPES, config
    with pytest.raises(ConfigError, match="min_reward_accuracy"):
        ppo.main(*parse_config(TYPES, config(tmp_path, (sft, stage / "merged"), min_reward_accuracy=0.6)))
    assert rl.check_reward_accuracy(str(stage / "merged"), 0.5) == 0.52  # passes at a lower bar
    assert rl.check_reward_accuracy(str(reward), 0.99) is None  # no reward stage beside it: nothing to check


class _Killed(Exception):
    pass


@pytest.mark.parametrize("method", sorted(METHODS))
def test_an_interrupted_run_resumes_from_its_last_checkpoint(method, models, tmp_path, monkeypatch):
    """Interrupted after its checkpoint at step 2 of 4, rerun: it goes on from there (the Trainer's own resume),
    with the gold checks it had made, and logs what an uninterrupted run logs."""
    settings = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2}

    class Stop(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise _Killed

    (tmp_path / "whole").mkdir()
    METHODS[method][0].main(*parsed(method, tmp_path / "whole", models, **settings))
    monitors = rl.gold_monitors
    monkeypatch.setattr(rl, "gold_monitors", lambda *args, **kw: [*monitors(*args, **kw), Stop()])
    with pytest.raises(_Killed):
        METHODS[method][0].main(*parsed(method, tmp_path, models, **settings))
    monkeypatch.setattr(rl, "gold_monitors", monitors)
    METHODS[method][0].main(*parsed(method, tmp_path, models, **settings))
    # not carried over by the Trainer: TRL's token counter, and train_loss (averaged over this process's steps)
    # and the wall clock
    later = ("num_tokens", "train_loss", "step_time", "train_runtime", "train_samples_per_second",
             "train_steps_per_second")
    histories = [[{k: v for k, v in row.items() if k not in later}
                  for row in json.loads((d / method / "log_history.json").read_text())]
                 for d in (tmp_path, tmp_path / "whole")]
    assert [row["step"] for row in histories[0] if "gold/score" in row] == [0, 2, 4]
    assert json.dumps(histories[0], sort_keys=True) == json.dumps(histories[1], sort_keys=True)
