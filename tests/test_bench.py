"""recipes.bench: throughput and MFU of the tiny default's training, against a measured matmul peak."""

import json

import pytest
import torch

from recipes import bench
from recipes.common.cli import parse_config
from recipes.common.errors import ConfigError
from tests.conftest import write_yaml


def test_bench_times_full_and_lora_training_and_writes_a_table(tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", {"models": ["tiny"], "modes": ["full", "lora"], "steps": 2,
                                                  "warmup_steps": 1, "batch_size": 4, "seq_len": 32,
                                                  "matmul_size": 256, "output_dir": str(tmp_path / "bench")})
    result = bench.main(*parse_config((bench.BenchArguments,), ["--config", str(config)]))
    full, lora = result["rows"]
    # configs/tiny/pretrain.yaml's shape: 2 layers of q, k, v, o (128 x 128) and gate, up, down (128 x 512), and
    # the 2048 x 128 output layer: 786,432 matmul weights; attention 12 x 2 layers x 128 x 32 tokens
    assert full["flops_per_token"] == 6 * 786_432 + 12 * 2 * 128 * 32
    assert lora["flops_per_token"] == 4 * 786_432 + 12 * 2 * 128 * 32  # frozen weights get no gradient
    assert lora["trainable"] < full["trainable"] == full["parameters"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in result["rows"])
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "| tiny | full |" in table and "| tiny | LoRA r=16 |" in table and "GFLOP/s" in table
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"][0]["mode"] == "full"


def test_unknown_model_shape_is_refused():
    with pytest.raises(ConfigError, match=r"models: \['gpt-5'\] unknown"):
        bench.main(bench.BenchArguments(models=["gpt-5"]))


def test_bench_times_ppo_rloo_and_grpo_steps_as_the_recipes_build_them(tmp_path):
    config = write_yaml(tmp_path / "bench.yaml", {
        "models": ["tiny"], "modes": [], "matmul_size": 64, "rl_methods": ["ppo", "rloo", "grpo"],
        "rl_batch_size": 4, "rl_generations": 2, "rl_prompt_tokens": 4, "rl_completion_tokens": 6, "rl_steps": 1,
        "output_dir": str(tmp_path / "bench")})
    result = bench.main(*parse_config((bench.BenchArguments,), ["--config", str(config)]))
    assert [r["method"] for r in result["rl_rows"]] == ["ppo", "rloo", "grpo"]
    assert all(r["episodes_per_s"] > 0 and r["episodes_per_step"] == 4 and r["generation"] == "transformers"
               for r in result["rl_rows"])
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "| tiny | PPO | transformers | 4 |" in table and "| tiny | GRPO | transformers | 4 |" in table


def test_word_tokenizer_gives_one_token_a_word_and_the_chat_tokens():
    tokenizer = bench.word_tokenizer(64)
    assert len(tokenizer) == 64
    assert tokenizer("w10 w63", add_special_tokens=False)["input_ids"] == [10, 63]
    text = tokenizer.apply_chat_template([{"role": "user", "content": "w9"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert ids[-2:] == tokenizer.convert_tokens_to_ids(["<|im_start|>", "assistant"])


@pytest.mark.parametrize("keys, message", [
    ({"rl_methods": ["dpo"]}, r"rl_methods: \['dpo'\]"),
    ({"rl_methods": ["grpo"], "rl_batch_size": 6, "rl_generations": 4}, "not a multiple of rl_generations"),
    pytest.param({"rl_methods": ["grpo"], "rl_vllm": True}, "needs a GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine")),
])
def test_bad_rl_keys_are_refused_before_anything_is_timed(keys, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        bench.main(bench.BenchArguments(**keys, output_dir=str(tmp_path / "bench")))
    assert not (tmp_path / "bench").exists()
