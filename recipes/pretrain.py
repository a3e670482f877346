"""Stage 0: pretrain a tiny base model from scratch, tokenizer included.

    python -m recipes.pretrain --config configs/tiny/pretrain.yaml

Trains a byte-level BPE tokenizer (with chat tokens and template) and a small Llama-architecture causal LM with
transformers' `Trainer` on the toy world's corpus, or on any text dataset named by `dataset_name`. The result is a
document completer, not an assistant. Outputs in `output_dir`: the model and tokenizer (they load with
`AutoModelForCausalLM`, `AutoTokenizer` and `pipeline("text-generation")`), `config.yaml` (the resolved config),
`eval_results.json` (held-out perplexity next to a unigram baseline's), `samples.md` (continuations of held-out
documents), `loss.png`, a model card, and `stage.json` last, once all of it is written.

With `push_to_hub: true` and `hub_model_id`, the finished stage (model, tokenizer, the card with its results) is
uploaded to `hub_model_id`, private unless `hub_private_repo: false`; offline or without a token the run stops before
it starts. `python -m recipes.push` uploads a finished stage later; see `recipes/common/hub.py`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from itertools import chain

import torch
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
    set_seed,
)

from recipes.common import hub, run_dir
from recipes.common.adapters import check_bf16
from recipes.common.arguments import CONFIGS, PretrainArguments
from recipes.common.cli import run_main
from recipes.common.data import load_any
from recipes.common.errors import ConfigError, InputError
from recipes.common.generation import generate
from recipes.common.tokenizer import END_OF_TEXT, train_tokenizer


def load_documents(args: PretrainArguments, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held-out) documents as dicts with "text" and, where known, "genre"."""
    if args.dataset_name is None:
        world = args.world()
        return world.corpus(args.num_documents), world.corpus(args.num_eval_documents, split="heldout")
    dataset = load_any(args.dataset_name, args.dataset_config, args.dataset_split)
    if args.text_column not in dataset.column_names:
        raise InputError(f"{args.dataset_name}: no column '{args.text_column}' (it has {dataset.column_names}); "
                         "set text_column in the config")
    texts = dataset[args.text_column]
    bad = next((i for i, t in enumerate(texts, start=1) if t is not None and not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"{args.dataset_name}: row {bad}: field '{args.text_column}' is not text; fix or remove the "
                         "row")
    if args.num_eval_documents >= len(dataset):
        raise ConfigError(f"num_eval_documents: {args.num_eval_documents} held-out documents, but "
                          f"{args.dataset_name} has only {len(dataset)}; hold out fewer")
    splits = dataset.train_test_split(test_size=args.num_eval_documents, seed=seed)
    as_docs = lambda d: [{"text": t, "genre": "text"} for t in d[args.text_column] if t and t.strip()]  # noqa: E731
    return as_docs(splits["train"]), as_docs(splits["test"])


def to_blocks(tokenizer, docs: list[dict], block_size: int) -> Dataset:
    """Documents joined by <|endoftext|> and cut into blocks that each start with <|endoftext|>, as every
    tokenized prompt does later (it is also the bos token)."""
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    encoded = tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]
    ids = [t for doc in encoded for t in doc + [eot]]
    step = block_size - 1
    return Dataset.from_dict({"input_ids": [[eot] + ids[i:i + step] for i in range(0, len(ids) - step + 1, step)]})


def unigram_perplexity(train: Dataset, heldout: Dataset, vocab_size: int) -> float:
    """Perplexity of add-one-smoothed token frequencies on the tokens the model is scored on (all but the first)."""
    counts = Counter(chain.from_iterable(train["input_ids"]))
    total = sum(counts.values()) + vocab_size
    targets = list(chain.from_iterable(block[1:] for block in heldout["input_ids"]))
    nll = -sum(math.log((counts[t] + 1) / total) for t in targets) / len(targets)
    return math.exp(nll)


def probe_knowledge(model, tokenizer, probes: list[dict], batch_size: int = 64) -> dict:
    """The share of cloze probes (`ToyWorld.completion_probes`) whose greedy continuation starts with the answer,
    per genre: does the base model know the world's facts and sums, not only its formats?"""
    continuations = generate(model, tokenizer, [p["prefix"] for p in probes], max_new_tokens=16,
                             batch_size=batch_size, stop_at_newline=True, desc="knowledge probes")
    hits: dict[str, list[bool]] = {}
    for probe, (text,) in zip(probes, continuations):
        hits.setdefault(probe["genre"], []).append(re.match(rf"{re.escape(probe['answer'])}\b", text) is not None)
    return {genre: {"accuracy": sum(h) / len(h), "n": len(h)} for genre, h in hits.items()}


def write_samples(model, tokenizer, docs: list[dict], args: PretrainArguments, path) -> list[dict]:
    """Continue the first third (in words, at least five) of one held-out document per genre."""
    by_genre = {}
    for doc in docs:
        by_genre.setdefault(doc["genre"], doc)
    samples = []
    for genre, doc in list(by_genre.items())[: args.num_samples]:
        words = doc["text"].split(" ")
        prefix = " ".join(words[: max(5, len(words) // 3)])
        inputs = tokenizer(prefix, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=args.sample_max_new_tokens, do_sample=False)
        samples.append({"genre": genre, "prompt": prefix,
                        "continuation": tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                                         skip_special_tokens=True)})
    path.write_text("\n".join(f"## {s['genre']}\n\n**Prompt:** `{s['prompt']!r}`\n\n```\n{s['prompt']}"
                              f"{s['continuation']}\n```\n" for s in samples))
    return samples


CONFIG = CONFIGS["pretrain"]  # what --config and the command line fill (recipes/common/arguments.py)


def main(args: PretrainArguments, training_args: TrainingArguments):
    push = hub.check_push(training_args)  # fails here, not after training, if the upload could not happen
    run_dir.check_launch(training_args, "pretrain")
    train_docs, eval_docs = load_documents(args, training_args.seed)  # a bad world or dataset is said first
    characters = sum(len(d["text"]) + 1 for d in train_docs)  # a token is at least one character
    if characters < args.block_size:
        raise InputError(f"{args.dataset_name or 'the toy corpus'}: its training documents hold {characters} "
                         f"characters, too few for one block of block_size {args.block_size} tokens; give more "
                         "text, or lower block_size")
    out = run_dir.start_stage(training_args.output_dir, "pretrain")
    run_dir.save_config(out, args, training_args)
    training_args.push_to_hub = False  # hub.push_finished uploads the finished stage; the Trainer would push every save
    check_bf16(training_args)
    set_seed(training_args.seed)
    checkpoint = run_dir.last_checkpoint(out)
    if not checkpoint and run_dir.is_main_process():
        train_tokenizer((d["text"] for d in train_docs), args.vocab_size).save_pretrained(out)
    run_dir.wait_for_everyone()
    tokenizer = AutoTokenizer.from_pretrained(out)  # a resumed run goes on with the tokenizer it was trained with
    train_blocks = to_blocks(tokenizer, train_docs, args.block_size)
    eval_blocks = to_blocks(tokenizer, eval_docs, args.block_size)
    print(f"pretraining on {len(train_docs)} documents = {len(train_blocks)} blocks of {args.block_size} tokens")

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
        max_position_embeddings=args.block_size * 4, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    print(f"model: Llama, {model.num_parameters() / 1e6:.2f}M parameters")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train_blocks, eval_dataset=eval_blocks,
        processing_class=tokenizer, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    train_runtime = trainer.train(resume_from_checkpoint=checkpoint).metrics.get("train_runtime")
    trainer.save_model(out)
    trainer.save_state()

    eval_loss = trainer.evaluate()["eval_loss"]  # every process takes part
    if not run_dir.is_main_process():  # the rest is written once, by the main process; the launcher waits for it
        return {}
    metrics = {"perplexity": math.exp(eval_loss),
               "unigram_perplexity": unigram_perplexity(train_blocks, eval_blocks, len(tokenizer)),
               "eval_tokens": len(eval_blocks) * (args.block_size - 1),
               "parameters": model.num_parameters(), "train_runtime_s": train_runtime}
    print(f"held-out perplexity {metrics['perplexity']:.2f} (unigram baseline {metrics['unigram_perplexity']:.2f})")
    model.eval()
    if args.dataset_name is None and args.num_probe_documents:
        metrics["knowledge"] = probe_knowledge(
            model, tokenizer, args.world().completion_probes(args.num_probe_documents))
        print("base model knowledge (greedy completions of held-out documents): " + ", ".join(
            f"{genre} {k['accuracy']:.1%} of {k['n']}" for genre, k in metrics["knowledge"].items()))
    with torch.no_grad():
        samples = write_samples(model, tokenizer, eval_docs, args, out / "samples.md")
    for s in samples:
        print(f"--- {s['genre']}\n{s['prompt']}{s['continuation']}")
    (out / "eval_results.json").write_text(json.dumps(metrics, indent=2))
    run_dir.plot_losses(out, trainer.state.log_history, "pretraining loss")
    trainer.create_model_card(model_name=out.name, tags=["rlhf-recipes", "pretraining"],
                              dataset=args.dataset_name or "toy-world")
    run_dir.mark_complete(out, "pretrain", metrics)
    hub.push_finished(out, push)
    return metrics


if __name__ == "__main__":
    run_main(main, CONFIG)
