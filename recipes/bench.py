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
token / peak.

RL throughput (`rl_methods`): episodes per second and peak memory of PPO, RLOO and GRPO as the recipes build them
(`recipes.common.rl.build_ppo_trainer` and `build_online_trainer`: a LoRA policy, its reference the adapter
switched off, the reward model scoring each completion; PPO adds a value model), on a random-weight policy and reward
model of the same shape saved to a scratch directory with a word-per-token tokenizer. An episode is one sampled
completion that a step trains on; each step samples `rl_batch_size` of them (`rl_generations` per prompt for RLOO
and GRPO, one for PPO), `rl_completion_tokens` long: random weights rarely sample the eos, so every completion runs
to full length, a fixed amount of work. Generation is transformers' `generate`, and also vLLM (colocated, on a GPU
with requirements-gpu.txt installed) for RLOO and GRPO when `rl_vllm: true`. The first step is not timed.
"""

from __future__ import annotations

import copy
import json
import platform
import random
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    TrainerCallback,
    set_seed,
)

from recipes.common.cli import run_main
from recipes.common.errors import ConfigError
from recipes.common.tokenizer import CHAT_TEMPLATE, END_OF_TEXT, IM_END, IM_START, PAD

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
RL_METHODS = ("ppo", "rloo", "grpo")


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
    rl_methods: list[str] = field(default_factory=list, metadata={
        "help": f"RL stages to time, any of {list(RL_METHODS)}: episodes/s and peak memory; [] for none."})
    rl_batch_size: int = field(default=32, metadata={"help": "Episodes (completions) each RL step trains on."})
    rl_generations: int = field(default=4, metadata={"help": "Completions per prompt for RLOO and GRPO."})
    rl_prompt_tokens: int = 16
    rl_completion_tokens: int = 64
    rl_steps: int = field(default=4, metadata={"help": "Timed RL steps, after one untimed."})
    rl_ppo_epochs: int = field(default=2, metadata={"help": "PPO's num_ppo_epochs (configs/tiny/ppo.yaml: 2)."})
    rl_vllm: bool = field(default=False, metadata={
        "help": "Also time RLOO and GRPO generating with vLLM (colocate): a GPU and requirements-gpu.txt."})
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


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A tokenizer of `vocab_size` tokens, each a word ('w17'), with the recipes' chat tokens and template: enough
    for the RL trainers to run a random-weight model of any vocabulary without downloading its tokenizer."""
    vocab = {t: i for i, t in enumerate([END_OF_TEXT, IM_START, IM_END, PAD, "[UNK]", "user", "assistant"])}
    vocab |= {f"w{i}": i for i in range(len(vocab), vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=IM_END, pad_token=PAD,
                                   unk_token="[UNK]", additional_special_tokens=[IM_START], chat_template=CHAT_TEMPLATE)


def random_policy_and_reward(config, scratch: Path) -> tuple[str, str]:
    """A random-weight policy and reward model of `config`'s shape, saved with a word tokenizer (as the RL stages
    read their SFT and reward models from directories)."""
    tokenizer = word_tokenizer(config.vocab_size)
    config = copy.deepcopy(config)
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    set_seed(0)
    paths = []
    for name, model_class in (("policy", AutoModelForCausalLM), ("reward", AutoModelForSequenceClassification)):
        config = copy.deepcopy(config)
        config.num_labels = 1  # a reward model's one score (a causal LM ignores it)
        model = model_class.from_config(config)
        model.save_pretrained(scratch / name)
        tokenizer.save_pretrained(scratch / name)
        paths.append(str(scratch / name))
        del model
    return paths[0], paths[1]


class StepTimes(TrainerCallback):
    """When each training step ended."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        sync()
        self.ends.append(time.perf_counter())


def time_rl(config, models: tuple[str, str], method: str, vllm: bool, args: BenchArguments,
            scratch: Path) -> dict:
    """Episodes per second of one RL stage's training steps, as the recipe builds its trainer."""
    from trl import ModelConfig

    from recipes.common import rl

    on_gpu = torch.cuda.is_available()
    policy, reward = models
    tokenizer = rl.policy_tokenizer(policy)
    # as the recipes' configs: LoRA r=16 on every linear layer; bf16 on a GPU, float32 on a CPU (configs/tiny)
    model_args = ModelConfig(dtype="bfloat16" if on_gpu else "float32", use_peft=True, lora_r=16, lora_alpha=32,
                             lora_dropout=0.0, lora_target_modules=["all-linear"])
    steps = args.rl_steps + 1
    rng = random.Random(0)
    prompts = [" ".join(f"w{rng.randrange(8, config.vocab_size)}" for _ in range(args.rl_prompt_tokens))
               for _ in range(args.rl_batch_size * steps)]
    common = {"output_dir": str(scratch), "per_device_train_batch_size": args.rl_batch_size,
              "learning_rate": 1e-5, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
              "bf16": on_gpu, "use_cpu": not on_gpu, "seed": 0, "disable_tqdm": True}
    if method == "ppo":
        from trl.experimental.ppo import PPOConfig  # imported only here: gone from TRL after 1.12
        training = PPOConfig(**common, sft_model_path=policy, reward_model_path=reward,
                             local_rollout_forward_batch_size=args.rl_batch_size,
                             total_episodes=args.rl_batch_size * steps, response_length=args.rl_completion_tokens,
                             num_ppo_epochs=args.rl_ppo_epochs, num_mini_batches=1, stop_token="eos",
                             missing_eos_penalty=1.0, kl_coef=0.15, num_sample_generations=0)
        trainer = rl.build_ppo_trainer(rl.RLArguments(gold_eval_steps=0, num_eval_prompts=0), training, model_args,
                                       tokenizer, prompts)
    else:
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
        config_class, trainer_class = {"rloo": (RLOOConfig, RLOOTrainer), "grpo": (GRPOConfig, GRPOTrainer)}[method]
        vllm_keys = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3} if vllm else {}
        training = config_class(**common, **vllm_keys, num_generations=args.rl_generations,
                                max_completion_length=args.rl_completion_tokens, max_steps=steps, beta=0.15)
        script_args = rl.OnlineArguments(sft_model_path=policy, reward_model_path=reward, gold_eval_steps=0,
                                         num_eval_prompts=0)
        trainer = rl.build_online_trainer(trainer_class, script_args, training, model_args, tokenizer, prompts)
    timer = StepTimes()
    trainer.add_callback(timer)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    if len(timer.ends) != steps:
        raise RuntimeError(f"{method}: {len(timer.ends)} training steps ran, {steps} expected")
    seconds = timer.ends[-1] - timer.ends[0]  # the first step (compilation, caches) is not timed
    result = {"episodes_per_step": args.rl_batch_size, "episodes_per_s": args.rl_batch_size * args.rl_steps / seconds,
              "step_s": seconds / args.rl_steps, "peak_memory_mb": peak_memory_mb()}
    del trainer
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def check_rl(args: BenchArguments) -> None:
    """The RL keys, before anything is timed."""
    if any(m not in RL_METHODS for m in args.rl_methods):
        raise ConfigError(f"rl_methods: {args.rl_methods}; choose from {list(RL_METHODS)}")
    if args.rl_methods and args.rl_batch_size % args.rl_generations:
        raise ConfigError(f"rl_batch_size: {args.rl_batch_size} is not a multiple of rl_generations "
                          f"({args.rl_generations}): RLOO and GRPO sample rl_generations completions per prompt")
    if args.rl_vllm:
        from recipes.common.rl import check_vllm

        check_vllm("rl_vllm")


def main(args: BenchArguments) -> dict:
    unknown = [m for m in args.models if m != "tiny" and m not in SHAPES]
    if unknown:
        raise ConfigError(f"models: {unknown} unknown; choose from {['tiny', *sorted(SHAPES)]}")
    if any(m not in MODES for m in args.modes):
        raise ConfigError(f"modes: {args.modes}; choose from {list(MODES)}")
    check_rl(args)
    use_bf16 = args.bf16 and bf16_available()
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    if torch.cuda.is_available():
        where = torch.cuda.get_device_name()
    else:
        where = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    peak = matmul_peak(args.matmul_size, dtype)
    print(f"{where}: {args.matmul_size}x{args.matmul_size} matmul peak {peak / 1e9:.1f} GFLOP/s in {dtype}")
    rows = []
    configs = {name: tiny_shape() if name == "tiny" else SHAPES[name]() for name in args.models}
    for name, config in configs.items():
        for mode in args.modes:
            r = {"model": name, "mode": mode, **time_training(config, mode, args, use_bf16)}
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak
            rows.append(r)
            print(f"{name} {mode}: {r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu']:.1%}, "
                  f"peak memory {r['peak_memory_mb']:.0f} MiB")
    rl_rows = []
    for name, config in configs.items() if args.rl_methods else ():
        with tempfile.TemporaryDirectory() as scratch:
            models = random_policy_and_reward(config, Path(scratch))  # one pair for every method
            for method in args.rl_methods:
                for vllm in (False, True) if args.rl_vllm and method != "ppo" else (False,):
                    r = {"model": name, "method": method, "generation": "vllm" if vllm else "transformers",
                         **time_rl(config, models, method, vllm, args, Path(scratch) / f"{method}-{vllm}")}
                    rl_rows.append(r)
                    print(f"{name} {method} ({r['generation']}): {r['episodes_per_s']:.1f} episodes/s, "
                          f"peak memory {r['peak_memory_mb']:.0f} MiB")
    result = {"device": where, "dtype": str(dtype).removeprefix("torch."), "matmul_peak_flops": peak,
              "settings": asdict(args), "rows": rows, "rl_rows": rl_rows}
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
    if rl_rows:
        dtype = "bf16" if torch.cuda.is_available() else "float32"
        lines += ["", f"RL training steps, {dtype}, LoRA r=16 policy, random weights: each step samples "
                  f"{args.rl_batch_size} completions of {args.rl_completion_tokens} tokens to prompts of "
                  f"{args.rl_prompt_tokens} words ({args.rl_generations} per prompt for RLOO and GRPO) and trains "
                  f"on them; {args.rl_steps} steps timed after one.", "",
                  "| model | method | generation | episodes/step | episodes/s | step (s) | peak memory (MiB) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['method'].upper()} | {r['generation']} | {r['episodes_per_step']} | "
                  f"{r['episodes_per_s']:.1f} | {r['step_s']:.2f} | {r['peak_memory_mb']:.0f} |" for r in rl_rows]
    if not torch.cuda.is_available():
        lines += ["", "Peak memory on a CPU is the process's largest resident set so far: it only grows down the "
                  "table."]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    run_main(main, (BenchArguments,))
