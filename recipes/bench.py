"""Training throughput and model FLOP utilization (MFU), with random weights of the recipes' architectures.

    python -m recipes.bench --config configs/tiny/bench.yaml   # the tiny default on this machine's CPU
    python -m recipes.bench --config configs/smollm2-135m/bench.yaml   # SmolLM2-135M and Qwen2.5-0.5B shapes on a GPU

Builds each model from its configuration alone (no download: the weights are random, the compute is the real
model's), then times training steps on random token ids: full training (pretraining, or full fine-tuning: the same
compute) and LoRA (rank 16 on every linear layer, as the recipes' SFT). The peak it is measured against is measured
too: the best rate of a large square matmul in the dtype the steps use. Writes `<output_dir>/bench.md` and
`bench.json`.

FLOPs per token follow the PaLM convention: 6 x the matmul parameters (every linear layer, the output layer
included) + 12 x layers x hidden size x sequence length for attention; LoRA does not compute the frozen weights'
gradients, so its matmuls count 4 x instead of 6 x (the adapter's own are negligible). MFU = tokens/s x FLOPs per
token / peak. Not yet measured here: RL episodes per second for PPO, RLOO and GRPO, with HF generation and with vLLM.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, set_seed

from recipes.common.cli import run_main
from recipes.common.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# The real architectures' shapes, from their configs on the Hub (written out here: nothing is downloaded)
SHAPES = {
    "smollm2-135m": lambda: LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                        tie_word_embeddings=True, max_position_embeddings=8192),
    "qwen2.5-0.5b": lambda: Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                        num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                        tie_word_embeddings=True, max_position_embeddings=32768),
}
MODES = ("full", "lora")


def tiny_shape() -> LlamaConfig:
    """The toy world's base model, as configs/tiny/pretrain.yaml sizes it (vocabulary at its configured size)."""
    c = yaml.safe_load((ROOT / "configs" / "tiny" / "pretrain.yaml").read_text())
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    return LlamaConfig(**{k: c[k] for k in keys}, tie_word_embeddings=True,
                       max_position_embeddings=c["block_size"] * 4)


@dataclass
class BenchArguments:
    models: list[str] = field(default_factory=lambda: ["tiny"], metadata={
        "help": f"Shapes to build: tiny (configs/tiny/pretrain.yaml) or any of {sorted(SHAPES)}."})
    modes: list[str] = field(default_factory=lambda: list(MODES), metadata={
        "help": "full (pretraining or full fine-tuning) and/or lora."})
    batch_size: int = 32
    seq_len: int = 128
    steps: int = 20
    warmup_steps: int = 3
    bf16: bool = field(default=True, metadata={
        "help": "Train under bf16 autocast where the device has bf16 (as the recipes' bf16: true); else fp32."})
    matmul_size: int = 2048
    output_dir: str = "runs/bench"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_available() -> bool:
    return torch.cuda.is_bf16_supported() if torch.cuda.is_available() else torch.ops.mkldnn._is_mkldnn_bf16_supported()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_peak(n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """The best FLOP/s of an n x n matmul in `dtype` on this device: the peak MFU is measured against."""
    a, b = (torch.randn(n, n, device=device()).to(dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 2):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_per_token(model, config, seq_len: int, mode: str) -> float:
    """PaLM's convention: 6 (LoRA: 4) x matmul parameters + 12 x layers x hidden x sequence length."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    matmul = sum(m.weight.numel() for name, m in base.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name)
    return (4 if mode == "lora" else 6) * matmul + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's, in KiB on Linux


def time_training(config, mode: str, args: BenchArguments, use_bf16: bool) -> dict:
    set_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(device())
    if mode == "lora":
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(config.vocab_size, (args.batch_size, args.seq_len), device=device())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = None
    for step in range(args.warmup_steps + args.steps):
        if step == args.warmup_steps:
            sync()
            start = time.perf_counter()
        with torch.autocast(device().type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    seconds = time.perf_counter() - start
    tokens_per_s = args.steps * args.batch_size * args.seq_len / seconds
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable), "tokens_per_s": tokens_per_s,
            "flops_per_token": flops_per_token(model, config, args.seq_len, mode), "step_s": seconds / args.steps,
            "peak_memory_mb": peak_memory_mb()}


def main(args: BenchArguments) -> dict:
    unknown = [m for m in args.models if m != "tiny" and m not in SHAPES]
    if unknown:
        raise ConfigError(f"models: {unknown} unknown; choose from {['tiny', *sorted(SHAPES)]}")
    if any(m not in MODES for m in args.modes):
        raise ConfigError(f"modes: {args.modes}; choose from {list(MODES)}")
    use_bf16 = args.bf16 and bf16_available()
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    if torch.cuda.is_available():
        where = torch.cuda.get_device_name()
    else:
        where = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    peak = matmul_peak(args.matmul_size, dtype)
    print(f"{where}: {args.matmul_size}x{args.matmul_size} matmul peak {peak / 1e9:.1f} GFLOP/s in {dtype}")
    rows = []
    for name in args.models:
        config = tiny_shape() if name == "tiny" else SHAPES[name]()
        for mode in args.modes:
            r = {"model": name, "mode": mode, **time_training(config, mode, args, use_bf16)}
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak
            rows.append(r)
            print(f"{name} {mode}: {r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu']:.1%}, "
                  f"peak memory {r['peak_memory_mb']:.0f} MiB")
    result = {"device": where, "dtype": str(dtype).removeprefix("torch."), "matmul_peak_flops": peak,
              "settings": asdict(args), "rows": rows}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    lines = [f"Training throughput on {where}, {result['dtype']}, batch {args.batch_size} x {args.seq_len} tokens, "
             f"random weights; MFU against a measured {args.matmul_size}x{args.matmul_size} matmul peak of "
             f"{peak / 1e9:.1f} GFLOP/s.", "",
             "| model | training | parameters | trainable | tokens/s | step (s) | MFU | peak memory (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {'LoRA r=16' if r['mode'] == 'lora' else 'full'} | {r['parameters'] / 1e6:.2f}M | "
              f"{r['trainable'] / 1e6:.2f}M | {r['tokens_per_s']:.0f} | {r['step_s']:.3f} | {r['mfu']:.1%} | "
              f"{r['peak_memory_mb']:.0f} |" for r in rows]
    if not torch.cuda.is_available():
        lines += ["", "Peak memory on a CPU is the process's largest resident set so far: it only grows down the "
                  "table."]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    run_main(main, (BenchArguments,))
