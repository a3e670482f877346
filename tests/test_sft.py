"""Stage 1: LoRA and QLoRA SFT on the tiny base model."""

import json
import re

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

from recipes import sft
from recipes.common import run_dir
from recipes.common.cli import parse_config
from tests.conftest import tensorboard_tags, write_yaml

TINY_SFT = {
    "dtype": "float32", "use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_target_modules": "all-linear",
    "trainable_token_embeddings": ["<|im_start|>", "<|im_end|>"], "loss_type": "nll",
    "num_demonstrations": 48, "num_eval_prompts": 10, "max_new_tokens": 8, "assistant_only_loss": True,
    "gradient_checkpointing": False, "max_length": 96, "max_steps": 3, "per_device_train_batch_size": 8,
    "learning_rate": 1.0e-2, "logging_steps": 1, "save_steps": 100, "bf16": False, "report_to": "tensorboard",
    "dataloader_pin_memory": False, "seed": 0,
}


def run_sft(tmp_path, base, **overrides):
    config = write_yaml(tmp_path / "sft.yaml", {**TINY_SFT, "model_name_or_path": str(base),
                                                "output_dir": str(tmp_path / "sft"), **overrides})
    metrics = sft.main(*parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig),
                                     ["--config", str(config)]))
    return tmp_path / "sft", metrics


@pytest.fixture(scope="module")
def lora_run(tiny_base, tmp_path_factory):
    return run_sft(tmp_path_factory.mktemp("sft"), tiny_base)


def test_lora_run_writes_adapter_merged_model_and_card(lora_run):
    out, metrics = lora_run
    assert run_dir.is_complete(out)
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "config.yaml", "loss.png",
                 "samples.md", "eval_results.json", "merged/config.json", "merged/model.safetensors"):
        assert (out / name).exists(), name
    assert "sft" in (out / "README.md").read_text()
    assert "train/loss" in tensorboard_tags(out)
    gold = json.loads((out / "eval_results.json").read_text())
    assert set(gold) == {"base", "sft"} and gold["sft"]["gold"]["n"] == 10
    assert all(r["loss"] > 0 for r in json.loads((out / "trainer_state.json").read_text())["log_history"]
               if "loss" in r)


def test_lora_changes_the_adapter_and_not_the_base(lora_run, tiny_base):
    out, _ = lora_run
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at zero
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), out)
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert torch.equal(q.base_layer.weight, base.model.layers[0].self_attn.q_proj.weight)
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)


def test_merged_model_answers_with_plain_transformers(lora_run):
    out, _ = lora_run
    chat = pipeline("text-generation", model=str(out / "merged"))
    reply = chat([{"role": "user", "content": "What is 2 + 3?"}], max_new_tokens=8, do_sample=False)
    assert reply[0]["generated_text"][-1]["role"] == "assistant"


def test_frozen_token_pattern_keeps_those_rows_as_the_base_had_them(tiny_base, tmp_path):
    """[all] with frozen_token_pattern: the number tokens' embedding rows (tied: also their output rows) come out
    of SFT exactly as the base had them, while the other rows train."""
    out, _ = run_sft(tmp_path, tiny_base, trainable_token_embeddings=["all"], frozen_token_pattern=r"\d+",
                     num_eval_prompts=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    numbers = [i for i in range(len(tokenizer)) if re.fullmatch(r"\d+", tokenizer.decode([i]).strip())]
    assert numbers
    before = AutoModelForCausalLM.from_pretrained(tiny_base).get_input_embeddings().weight
    after = AutoModelForCausalLM.from_pretrained(out / "merged").get_input_embeddings().weight
    assert torch.equal(after[numbers], before[numbers])
    others = [i for i in range(len(tokenizer)) if i not in set(numbers)]
    assert not torch.equal(after[others], before[others])


def test_qlora_runs_on_cpu(tiny_base, tmp_path):
    out, _ = run_sft(tmp_path, tiny_base, load_in_4bit=True, bnb_4bit_quant_type="nf4", max_steps=2,
                     num_eval_prompts=0, trainable_token_embeddings=None)
    assert run_dir.is_complete(out)
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == "LORA"
    AutoModelForCausalLM.from_pretrained(out / "merged")


def test_full_fine_tuning_writes_a_merged_model_later_stages_can_read(tiny_base, tmp_path):
    """use_peft: false trains every weight; merged/ still holds the model (the pipeline reads the SFT model there),
    with the tokenizer's pad and eos in its config. It used to crash after training, looking for an adapter."""
    out, _ = run_sft(tmp_path, tiny_base, use_peft=False, trainable_token_embeddings=None, num_eval_prompts=2)
    assert run_dir.is_complete(out) and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    assert not torch.equal(merged.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    assert merged.config.pad_token_id == tokenizer.pad_token_id
    eos = merged.generation_config.eos_token_id
    assert tokenizer.eos_token_id in (eos if isinstance(eos, list) else [eos])
    assert "lora" not in (out / "README.md").read_text().split("---")[1]  # the card's tags


def test_unfinished_base_is_refused_before_training(tiny_base, tmp_path):
    unfinished = tmp_path / "pretrain"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("{}")
    with pytest.raises(ValueError, match="model_name_or_path: .*unfinished stage"):
        run_sft(tmp_path, unfinished)
    with pytest.raises(FileNotFoundError, match="model_name_or_path: runs/nowhere/pretrain does not exist"):
        run_sft(tmp_path, "runs/nowhere/pretrain")


def test_an_output_dir_that_is_the_input_model_is_refused_and_the_input_left_whole(lora_run, tmp_path):
    out, _ = lora_run
    marker = (out / "stage.json").read_text()
    config = write_yaml(tmp_path / "sft.yaml", {**TINY_SFT, "model_name_or_path": str(out / "merged"),
                                                "output_dir": str(out)})
    with pytest.raises(ValueError, match=rf"output_dir: {re.escape(str(out))} would write over model_name_or_path"):
        sft.main(*parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), ["--config", str(config)]))
    assert (out / "stage.json").read_text() == marker


def test_examples_max_length_leaves_no_reply_in_are_counted_and_capped(tiny_base, tmp_path):
    """The trainer truncates from the start: an example whose prompt fills max_length has no reply left and
    trains nothing, yet stage.json used to count it. Too many such examples stop the stage before it writes."""
    rows = [{"prompt": "Tell me about the sky. " * (20 if i < 3 else 1), "completion": f"It is blue {i}."}
            for i in range(12)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"max_length: 96 drops 3 of 12 examples \(25%\), more than "
                                         r"max_dropped_fraction=0.1: raise max_length"):
        run_sft(tmp_path, tiny_base, dataset_name=str(data), num_eval_prompts=0)
    assert not (tmp_path / "sft").exists()
    out, metrics = run_sft(tmp_path, tiny_base, dataset_name=str(data), num_eval_prompts=0, max_dropped_fraction=0.5)
    assert metrics["max_length"] == {"rows": 12, "dropped_by_max_length": 3, "cut_by_max_length": 0}
    assert json.loads((out / "stage.json").read_text())["metrics"]["max_length"]["dropped_by_max_length"] == 3


def test_replayed_documents_train_on_every_token_and_demonstrations_on_the_reply_only(tiny_base, tmp_path):
    """replay_documents mixes pretraining documents into SFT (it keeps the base model's sums from being washed out):
    a document's every token is a label, a demonstration's only the assistant's reply and its end of turn."""
    args, training_args, model_args = parse_config(
        (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig),
        ["--config", str(write_yaml(tmp_path / "sft.yaml", {**TINY_SFT, "model_name_or_path": str(tiny_base),
                                                              "output_dir": str(tmp_path / "sft"),
                                                              "num_demonstrations": 6, "replay_documents": 4}))])
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    dataset, _ = sft.load_demonstrations(args, training_args, tokenizer)
    assert len(dataset) == 10 and training_args.assistant_only_loss is False  # the labels now say what counts
    demos, docs = dataset.select(range(6)), dataset.select(range(6, 10))
    documents = args.world().corpus(4)
    for row, doc in zip(docs, documents):
        assert row["labels"] == row["input_ids"]
        assert tokenizer.decode(row["input_ids"], skip_special_tokens=True).strip() == doc["text"].strip()
    for row, messages in zip(demos, sft.demonstrations(args)["messages"]):
        learned = tokenizer.decode([t for t in row["labels"] if t != -100])
        assert learned.startswith(messages[1]["content"]) and learned.rstrip().endswith("<|im_end|>")
        assert messages[0]["content"] not in learned
    out, metrics = run_sft(tmp_path, tiny_base, num_demonstrations=6, replay_documents=4, max_steps=2,
                           num_eval_prompts=0)
    assert run_dir.is_complete(out) and metrics["examples"] == 10


def test_demonstrations_past_the_sft_split_say_how_many_there_are(capsys):
    args = sft.SFTScriptArguments(num_demonstrations=100_000, world_entities=2, world_max_operand=2)
    dataset = sft.demonstrations(args)
    assert 0 < len(dataset) < 100_000
    assert f"num_demonstrations: 100000 asked, but the toy world's SFT split holds {len(dataset)} prompts" in (
        capsys.readouterr().out)
