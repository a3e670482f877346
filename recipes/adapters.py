"""Loading a model the way the recipes configure it, and merging a trained LoRA adapter into its base."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification
from transformers import AutoTokenizer
from trl import ModelConfig


def model_init_kwargs(model_args: ModelConfig, trust_remote_code: bool = False) -> dict:
    """What TRL's trainers pass to `from_pretrained` (quantization goes to the trainer itself)."""
    return {"revision": model_args.model_revision, "trust_remote_code": trust_remote_code,
            "attn_implementation": model_args.attn_implementation, "dtype": model_args.dtype}


def merge_adapter(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, model_args: ModelConfig,
                  sequence_classification: bool = False) -> Path:
    """Base model + adapter -> one plain model directory that `from_pretrained` loads without peft.

    The base is reloaded unquantized, so a QLoRA adapter merges into full-precision weights.
    """
    auto = AutoPeftModelForSequenceClassification if sequence_classification else AutoPeftModelForCausalLM
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else torch.float32
    extra = {"num_labels": 1} if sequence_classification else {}
    model = auto.from_pretrained(adapter_dir, dtype=dtype, revision=model_args.model_revision, **extra)
    merged = model.merge_and_unload()
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out)
    return out
