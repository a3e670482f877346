"""The GPU-only extras (requirements-gpu.txt) stay off the CPU path: no recipe imports them, and a config that asks
for vLLM on a machine without it is refused before anything loads."""

import subprocess
import sys

import pytest

from recipes import rloo
from recipes.common import rl
from recipes.common.cli import parse_config
from recipes.common.errors import ConfigError
from tests.conftest import ROOT

GPU_ONLY = ("vllm", "deepspeed", "liger_kernel", "flash_attn")


def test_no_recipe_imports_a_gpu_only_package():
    modules = sorted(p.stem for p in (ROOT / "recipes").glob("*.py") if p.stem not in ("__init__", "__main__"))
    code = (f"import sys\nfor m in {modules}: __import__('recipes.' + m)\n"
            f"print(sorted(set({list(GPU_ONLY)}) & {{n.split('.')[0] for n in sys.modules}}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_pinned_gpu_extras_are_the_ones_the_configs_use():
    pins = dict(line.split("==") for line in (ROOT / "requirements-gpu.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert set(pins) == {"vllm", "deepspeed", "liger-kernel"}
    assert "use_vllm: true" in (ROOT / "configs" / "smollm2-135m" / "rloo_lora.yaml").read_text()


def test_use_vllm_without_vllm_or_a_gpu_is_refused_before_anything_loads():
    args = parse_config((rl.OnlineArguments, rloo.RLOOConfig, rloo.ModelConfig),
                        ["--config", str(ROOT / "configs" / "smollm2-135m" / "rloo_lora.yaml"), "--bf16", "false",
                         "--output_dir", "runs/never"])
    with pytest.raises(ConfigError, match="use_vllm: true"):
        rloo.main(*args)
    assert not (ROOT / "runs" / "never").exists()
