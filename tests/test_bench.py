"""recipes.bench: throughput and MFU of the tiny default's training, against a measured matmul peak."""

import json

import pytest

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
    # configs/tiny/pretrain.yaml's shape: 4 layers of q, k, v, o (128 x 128) and gate, up, down (128 x 512), and
    # the 2048 x 128 output layer: 1,310,720 matmul weights; attention 12 x 4 layers x 128 x 32 tokens
    assert full["flops_per_token"] == 6 * 1_310_720 + 12 * 4 * 128 * 32
    assert lora["flops_per_token"] == 4 * 1_310_720 + 12 * 4 * 128 * 32  # frozen weights get no gradient
    assert lora["trainable"] < full["trainable"] == full["parameters"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in result["rows"])
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "| tiny | full |" in table and "| tiny | LoRA r=16 |" in table and "GFLOP/s" in table
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["rows"][0]["mode"] == "full"


def test_unknown_model_shape_is_refused():
    with pytest.raises(ConfigError, match=r"models: \['gpt-5'\] unknown"):
        bench.main(bench.BenchArguments(models=["gpt-5"]))
