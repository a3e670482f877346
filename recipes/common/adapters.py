"""Loading a model the way the recipes configure it, and merging a trained LoRA adapter into its base."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
from trl import ModelConfig

from recipes.common.errors import ConfigError


def model_init_kwargs(model_args: ModelConfig, trust_remote_code: bool = False) -> dict:
    """What TRL's trainers pass to `from_pretrained` (quantization goes to the trainer itself)."""
    return {"revision": model_args.model_revision, "trust_remote_code": trust_remote_code,
            "attn_implementation": model_args.attn_implementation, "dtype": model_args.dtype}


def check_bf16(training_args) -> None:
    """`bf16: true` on a machine without a GPU trains under CPU bf16 autocast where the CPU has bf16 instructions
    (AVX512-BF16, AMX); whether that beats fp32 depends on the CPU and the model's size (the tiny configs use fp32).
    Where the CPU has none, train in fp32 instead, saying so."""
    if training_args.bf16 and not torch.cuda.is_available() and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("bf16: this CPU has no bf16 instructions; training in float32 instead (slower, same recipe)")
        training_args.bf16 = False
        # TrainingArguments decided its accelerator's autocast from bf16 when it was built: without this the Trainer
        # still runs under bf16 autocast, emulated on such a CPU and over ten times slower than float32
        training_args.mixed_precision = "no"


def with_trainable_tokens(peft_config, model_name_or_path: str, tokens: list[str] | None,
                          frozen_pattern: str | None = None):
    """Let these tokens' embedding rows train beside the adapter (peft trainable tokens, kept tied to the output
    layer); ['all'] for every row, less those whose text fully matches `frozen_pattern`. A base model's untrained
    chat tokens need this."""
    if peft_config is None or not tokens:
        return peft_config
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab and tokens != ["all"]]
    if missing:
        raise ConfigError(f"trainable_token_embeddings: {missing} are not tokens of {model_name_or_path}'s tokenizer")
    ids = list(range(len(tokenizer))) if tokens == ["all"] else [vocab[t] for t in tokens]
    if frozen_pattern:
        try:
            pattern = re.compile(frozen_pattern)
        except re.error as e:
            raise ConfigError(f"frozen_token_pattern: {frozen_pattern!r} is not a regular expression ({e})") from None
        frozen = {i for i in ids if pattern.fullmatch(tokenizer.convert_tokens_to_string(
            [tokenizer.convert_ids_to_tokens(i)]).strip())}
        ids = [i for i in ids if i not in frozen]
        print(f"trainable token embeddings: {len(ids)} rows; {len(frozen)} rows matching "
              f"frozen_token_pattern {frozen_pattern!r} stay frozen")
    peft_config.trainable_token_indices = {"embed_tokens": ids}
    peft_config.ensure_weight_tying = True
    return peft_config


def merge_adapter(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, model_args: ModelConfig,
                  sequence_classification: bool = False) -> Path:
    """Base model + adapter -> one plain model directory that `from_pretrained` loads without peft.

    The base is reloaded unquantized, so a QLoRA adapter merges into full-precision weights.
    """
    auto = AutoPeftModelForSequenceClassification if sequence_classification else AutoPeftModelForCausalLM
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else torch.float32
    extra = {"num_labels": 1} if sequence_classification else {}
    model = auto.from_pretrained(adapter_dir, dtype=dtype, revision=model_args.model_revision, **extra)
    return save_plain(model.merge_and_unload(), AutoTokenizer.from_pretrained(adapter_dir), out_dir)


def save_plain(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """A model (merged, or fully fine-tuned) and its tokenizer, as one directory that plain `from_pretrained` loads.

    The saved config says what the tokenizer says: a classifier finds each sequence's last token through the pad
    id, and plain `generate` stops at the config's eos (SFT may have replaced both, e.g. eos_token: <|im_end|>).
    """
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None:
            config.pad_token_id = tokenizer.pad_token_id
            if tokenizer.eos_token_id not in _ids(config.eos_token_id):
                config.eos_token_id = tokenizer.eos_token_id
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _ids(value) -> list:
    return value if isinstance(value, list) else [value]
