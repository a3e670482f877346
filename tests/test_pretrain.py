"""Stage 0: the tokenizer's special tokens and template, and a pretraining smoke run."""

import json
import shutil

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from trl import SFTConfig, SFTTrainer

from recipes.common import run_dir
from recipes.common.tokenizer import END_OF_TEXT, IM_END
from tests.conftest import tensorboard_tags


def test_smoke_run_writes_a_complete_stage(tiny_base):
    assert run_dir.is_complete(tiny_base)
    for name in ("config.yaml", "eval_results.json", "samples.md", "loss.png", "README.md", "model.safetensors"):
        assert (tiny_base / name).exists(), name
    metrics = json.loads((tiny_base / "eval_results.json").read_text())
    assert metrics["perplexity"] < metrics["unigram_perplexity"]
    # what the base model knows, measured on held-out documents (a smoke-size model knows next to nothing)
    assert set(metrics["knowledge"]) == {"encyclopedia", "worksheet", "word_game"}
    assert all(0 <= k["accuracy"] <= 1 and k["n"] > 0 for k in metrics["knowledge"].values())
    state = json.loads((tiny_base / "stage.json").read_text())
    assert state["stage"] == "pretrain" and state["metrics"] == metrics
    assert "train/loss" in tensorboard_tags(tiny_base)  # report_to: tensorboard, as a user would watch it


def test_output_loads_with_plain_transformers(tiny_base):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert model.config.model_type == "llama"
    generate = pipeline("text-generation", model=str(tiny_base))
    out = generate("Math worksheet.", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert out.startswith("Math worksheet.") and len(tokenizer(out)["input_ids"]) > 2


def test_pad_token_differs_from_eos(tiny_base):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == IM_END
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert tokenizer.convert_tokens_to_ids(END_OF_TEXT) in model.generation_config.eos_token_id


def test_trl_assistant_mask_covers_the_assistant_turn(tiny_base, tmp_path):
    messages = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."},
                {"role": "user", "content": "And 2 + 4?"}, {"role": "assistant", "content": "2 + 4 = 6."}]
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, report_to="none", max_steps=1,
                     bf16=False)
    trainer = SFTTrainer(model=str(tiny_base), args=args, train_dataset=Dataset.from_list([{"messages": messages}]))
    row = trainer.train_dataset[0]
    trained_on = [t for t in row["labels"] if t != -100]
    assert trained_on, "TRL's assistant mask is empty"
    decoded = trainer.processing_class.decode(trained_on)
    assert decoded == f"2 + 3 = 5.{IM_END}2 + 4 = 6.{IM_END}"


def test_rerun_after_a_kill_resumes_and_completes(tiny_base, tmp_path):
    """A stage directory without stage.json is unfinished; rerunning over it finishes it."""
    from recipes import pretrain
    from recipes.common.cli import parse_config
    from tests.conftest import TINY_PRETRAIN, write_yaml

    out = tmp_path / "model"
    config = write_yaml(tmp_path / "c.yaml", {**TINY_PRETRAIN, "output_dir": str(out), "max_steps": 6})
    pretrain.main(*parse_config((pretrain.PretrainArguments, pretrain.TrainingArguments), ["--config", str(config)]))
    (out / "stage.json").unlink()  # as if killed after the checkpoint at step 4 (the same config: it resumes)
    shutil.rmtree(out / "checkpoint-6")
    assert not run_dir.is_complete(out)
    state_file = out / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].append({"step": 4, "marker": "from the checkpoint"})
    state_file.write_text(json.dumps(state))
    metrics = pretrain.main(*parse_config((pretrain.PretrainArguments, pretrain.TrainingArguments),
                                          ["--config", str(config)]))
    assert run_dir.is_complete(out) and metrics["perplexity"] > 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert {"step": 4, "marker": "from the checkpoint"} in state["log_history"]  # it resumed, not restarted


@pytest.mark.parametrize("bad", [{"dataset_name": "no/such/file.jsonl"}])
def test_missing_dataset_fails_before_training(tmp_path, bad):
    from recipes import pretrain
    from recipes.common.cli import parse_config
    from tests.conftest import TINY_PRETRAIN, write_yaml

    config = write_yaml(tmp_path / "c.yaml", {**TINY_PRETRAIN, **bad, "output_dir": str(tmp_path / "m")})
    with pytest.raises(FileNotFoundError, match="no/such/file.jsonl"):
        pretrain.main(*parse_config((pretrain.PretrainArguments, pretrain.TrainingArguments),
                                    ["--config", str(config)]))


def _pretrain(tmp_path, **overrides):
    from recipes import pretrain
    from recipes.common.cli import parse_config
    from tests.conftest import TINY_PRETRAIN, write_yaml

    config = write_yaml(tmp_path / "c.yaml", {**TINY_PRETRAIN, "max_steps": 2, "num_eval_documents": 4,
                                              "output_dir": str(tmp_path / "m"), **overrides})
    return pretrain.main(*parse_config((pretrain.PretrainArguments, pretrain.TrainingArguments),
                                       ["--config", str(config)]))


def test_pretrains_on_local_files_and_saved_datasets(tmp_path):
    texts = [{"body": f"Line {i}: the quick brown fox jumps over the lazy dog {i} times."} for i in range(60)]
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("\n".join(json.dumps(t) for t in texts))
    assert _pretrain(tmp_path, dataset_name=str(jsonl), text_column="body")["eval_tokens"] > 0
    Dataset.from_list(texts).save_to_disk(str(tmp_path / "saved"))
    assert _pretrain(tmp_path, dataset_name=str(tmp_path / "saved"), text_column="body")["eval_tokens"] > 0


def test_wrong_text_column_is_named(tmp_path):
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": f"doc {i}"}) for i in range(20)))
    with pytest.raises(ValueError, match=r"corpus.jsonl: no column 'text' \(it has \['body'\]\)"):
        _pretrain(tmp_path, dataset_name=str(jsonl))


def test_a_number_is_the_same_token_wherever_it_stands(tiny_base):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    at_start = tokenizer.tokenize("17 + 5 = 22.")
    after_space = tokenizer.tokenize("What is 17 + 5? 17 + 5 = 22.")
    assert at_start[0] in after_space[after_space.index("?") + 1:]
    assert tokenizer.decode(tokenizer("What is 17 + 5?", add_special_tokens=False)["input_ids"]) == "What is 17 + 5?"


def test_bf16_falls_back_to_fp32_on_a_cpu_without_it(monkeypatch, capsys):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from recipes.common.adapters import check_bf16

    args = TrainingArguments(output_dir="unused", bf16=True, use_cpu=True, report_to="none")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    check_bf16(args)
    assert args.bf16 is False and "no bf16 instructions" in capsys.readouterr().out
    # what the Trainer does with it: no bf16 autocast (emulated on such a CPU, and over ten times slower)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    assert Trainer(model=model, args=args).accelerator.mixed_precision == "no"


def test_rl_stages_fall_back_to_fp32_on_a_cpu_without_bf16(monkeypatch, tmp_path):
    """PPO, RLOO, GRPO and DPO (rl.run_stage) check bf16 before anything loads, as the other training stages do."""
    import torch
    from trl import DPOConfig

    from recipes.common import rl

    seen = {}

    class Built(Exception):
        pass

    def build(script_args, training_args, model_args, tokenizer, data):
        seen.update(bf16=training_args.bf16, mixed_precision=training_args.mixed_precision)
        raise Built

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    monkeypatch.setattr(rl, "check_inputs", lambda *args: (None, None))
    monkeypatch.setattr(rl.run_dir, "start_stage", lambda path, method: tmp_path)
    monkeypatch.setattr(rl.run_dir, "save_config", lambda *args: None)
    args = DPOConfig(output_dir=str(tmp_path), bf16=True, use_cpu=True, report_to="none")
    with pytest.raises(Built):
        rl.run_stage(rl.Finish("dpo", {}, ("loss",)), lambda *args: [], build, rl.RLArguments(), args, None, None, 8)
    assert seen == {"bf16": False, "mixed_precision": "no"}
