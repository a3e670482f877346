"""Stage 1: supervised fine-tuning with a LoRA adapter (QLoRA with `load_in_4bit: true`).

    python -m recipes.sft --config configs/tiny/sft.yaml

Trains TRL's `SFTTrainer` on prompt -> response demonstrations, from a base model directory or Hub id: the toy
world's simulated demonstrators by default, or any dataset `recipes/common/formats.py` reads (messages,
prompt/completion, Alpaca, hh-rlhf, preference pairs). Loss is on assistant tokens only: through the chat template's
`{% generation %}` markers when `assistant_only_loss: true`, otherwise on the completion of prompt/completion rows,
which works with any chat template. Outputs in `output_dir`: the adapter, the tokenizer and TRL's model card;
`merged/`, the base model with the adapter merged in (later stages start from it); `config.yaml`; `loss.png`;
on the toy world `eval_results.json` and `samples.md` (gold scores of the base and SFT models on held-out prompts);
and `stage.json` last.

With `push_to_hub: true` and `hub_model_id`, the finished stage is uploaded, private unless `hub_private_repo: false`:
the adapter, tokenizer and card (with the results) to `hub_model_id`, `merged/` to `<hub_model_id>-merged`. Offline
or without a token the run stops before it starts; `python -m recipes.push` uploads a finished stage later.
"""

from __future__ import annotations

import json
import random

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config, get_quantization_config

from recipes.common import hub, run_dir
from recipes.common.adapters import check_bf16, merge_adapter, model_init_kwargs, save_plain, with_trainable_tokens
from recipes.common.arguments import CONFIGS, SFTScriptArguments
from recipes.common.cli import run_main
from recipes.common.data import check_fit, load_any
from recipes.common.errors import ConfigError
from recipes.common.formats import to_prompt_completion, to_sft
from recipes.common.gold import gold_eval
from recipes.common.tokenizer import read_template, settle_pad
from recipes.toy import Demonstrator


def demonstrations(args: SFTScriptArguments) -> Dataset:
    world = args.world()
    demonstrator = Demonstrator(args.wrong_rate, args.verbose_rate, args.rude_rate, args.missed_refusal_rate,
                                args.over_refusal_rate)
    rng = random.Random(f"demonstrations-{args.world_seed}")
    tasks = world.tasks("sft", args.num_demonstrations, key="num_demonstrations")
    return Dataset.from_list([
        {"messages": [{"role": "user", "content": t.prompt},
                      {"role": "assistant", "content": demonstrator.respond(world, t, rng)}]}
        for t in tasks
    ])


def load_demonstrations(args: SFTScriptArguments, training_args: SFTConfig, tokenizer) -> tuple[Dataset, dict]:
    """The conversations to train on, and what max_length does to them (checked before training: the trainer
    truncates each from its start, so an example whose prompt fills max_length has no reply left to learn)."""
    if args.dataset_name is None:
        dataset = demonstrations(args)
        print(f"toy world: {len(dataset)} demonstrations")
    else:
        raw = load_any(args.dataset_name, args.dataset_config, args.dataset_train_split, args.invalid_rows)
        dataset, report = to_sft(raw, args.dataset_name, args.invalid_rows)
        print(f"{args.dataset_name}: {report}")
    fit = {}
    if tokenizer.chat_template is not None:
        def length(messages, prompt):
            return len(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt,
                                                     return_dict=True)["input_ids"])
        conversations = dataset["messages"]
        fit = check_fit("examples", [length(row, False) for row in conversations], training_args.max_length,
                        args.max_dropped_fraction, dropped_from=[length(row[:-1], True) for row in conversations])
    if args.dataset_name is None and args.replay_documents:
        return with_replay(dataset, args.world().corpus(args.replay_documents), tokenizer, training_args), fit
    return (dataset if training_args.assistant_only_loss else to_prompt_completion(dataset)), fit


def with_replay(dataset: Dataset, documents: list[dict], tokenizer, training_args: SFTConfig) -> Dataset:
    """The conversations tokenized as the trainer would (labels on the assistant's tokens only, or on the reply
    without assistant_only_loss) and pretraining documents as the base model saw them (labels on every token), as
    pre-tokenized rows: the trainer takes those as they are, where it cannot mix conversations with plain text."""
    rows = []
    for messages in dataset["messages"]:
        full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=training_args.assistant_only_loss)
        if training_args.assistant_only_loss:
            mask = full["assistant_masks"]
        else:
            prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True,
                                                   return_dict=True)["input_ids"]
            mask = [0] * len(prompt) + [1] * (len(full["input_ids"]) - len(prompt))
        rows.append({"input_ids": full["input_ids"],
                     "labels": [t if m else -100 for t, m in zip(full["input_ids"], mask)]})
    for doc in documents:  # <bos> text <bos>: pretraining joined documents with its bos token
        ids = tokenizer(doc["text"])["input_ids"] + [tokenizer.bos_token_id]
        rows.append({"input_ids": ids, "labels": ids})
    training_args.assistant_only_loss = False  # the labels above already say which tokens count
    return Dataset.from_list(rows)


def evaluate_on_toy_world(args: SFTScriptArguments, base: str, merged, out) -> dict:
    """Mean gold score, with 95% CI, of the starting model and of the SFT model on held-out prompts."""
    world = args.world()
    tasks = world.tasks("eval", args.num_eval_prompts, key="num_eval_prompts")
    tokenizer = AutoTokenizer.from_pretrained(merged)
    results, rows = {}, []
    for name, path in (("base", base), ("sft", merged)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        results[name] = gold_eval(model, tokenizer, world, tasks, max_new_tokens=args.max_new_tokens,
                                  desc=f"gold eval: {name}")
        rows.append(results[name].pop("responses"))
        results[name].pop("scores")
        print(f"{name}: mean gold score {results[name]['gold']['mean']:.3f} "
              f"(95% CI {results[name]['gold']['ci95'][0]:.3f}-{results[name]['gold']['ci95'][1]:.3f})")
    (out / "samples.md").write_text("# Held-out prompts: base model vs SFT model (greedy)\n\n" + "\n".join(
        f"**{t.prompt}**\n- base: {b!r}\n- sft: {s!r}\n" for t, b, s in list(zip(tasks, *rows))[:20]))
    return results


CONFIG = CONFIGS["sft"]  # what --config and the command line fill (recipes/common/arguments.py)


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: ModelConfig):
    push = hub.check_push(training_args)  # fails here, not after training, if the upload could not happen
    run_dir.check_launch(training_args, "sft")
    run_dir.check_input(model_args.model_name_or_path, "model_name_or_path", "causal_lm")
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    template = read_template(training_args.chat_template_path)
    if template is None and training_args.chat_template_path is None and tokenizer.chat_template is None:
        raise ConfigError(f"chat_template_path: {model_args.model_name_or_path}'s tokenizer has no chat template; "
                          "set chat_template_path: configs/templates/chatml.jinja (with eos_token: <|im_end|>), or "
                          "start from a model that has one")
    tokenizer.chat_template = template or tokenizer.chat_template  # as the trainer will: the lengths below use it
    if training_args.assistant_only_loss and isinstance(tokenizer.chat_template, str) \
            and "generation" not in tokenizer.chat_template:
        raise ConfigError(f"assistant_only_loss: {model_args.model_name_or_path}'s chat template has no "
                          "{% generation %} markers, so TRL cannot find the assistant's tokens; set "
                          "chat_template_path: configs/templates/chatml.jinja (it has them), or "
                          "assistant_only_loss: false")
    strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    if strategy != "no":
        raise ConfigError(f"eval_strategy: {strategy}; SFT here has no eval dataset (its held-out "
                          "check is the gold evaluation, num_eval_prompts): set eval_strategy: no")
    if training_args.eos_token is not None and training_args.eos_token not in tokenizer.get_vocab():
        raise ConfigError(f"eos_token: {training_args.eos_token!r} is not a token of {model_args.model_name_or_path}'s "
                          "tokenizer; name the token its chat template ends each turn with (e.g. <|im_end|>)")
    note = settle_pad(tokenizer, model_args.model_name_or_path, eos_token=training_args.eos_token,
                      pad_token=training_args.pad_token)
    if note:
        print(note)
    training_args.pad_token = tokenizer.pad_token  # TRL would pad with eos where the tokenizer has no pad
    dataset, fit = load_demonstrations(script_args, training_args, tokenizer)
    peft_config = with_trainable_tokens(get_peft_config(model_args), model_args.model_name_or_path,
                                        script_args.trainable_token_embeddings, script_args.frozen_token_pattern)
    out = run_dir.start_stage(training_args.output_dir, "sft")  # the data is read and fits: from here on, outputs
    run_dir.save_config(out, script_args, training_args, model_args)
    training_args.push_to_hub = False  # hub.push_finished uploads the finished stage; the Trainer would push every save
    training_args.model_init_kwargs = model_init_kwargs(model_args)
    check_bf16(training_args)
    set_seed(training_args.seed)  # the trainer seeds only after it has made the adapter's random init
    trainer = SFTTrainer(model=model_args.model_name_or_path, args=training_args, train_dataset=dataset,
                         quantization_config=get_quantization_config(model_args), peft_config=peft_config)
    trainer.train(resume_from_checkpoint=run_dir.last_checkpoint(out))
    trainer.save_model(out)
    trainer.save_state()
    if not run_dir.is_main_process():  # the rest is written once, by the main process; the launcher waits for it
        return {}
    if peft_config is not None:
        merge_adapter(out, out / "merged", model_args)
    else:  # fully fine-tuned: merged/ is where every later stage reads the SFT model from
        save_plain(trainer.model, trainer.processing_class, out / "merged")
    dataset_name = script_args.dataset_name or "toy-world demonstrations"
    tags = ["rlhf-recipes", "sft"] + (["lora"] if peft_config else [])
    trainer.create_model_card(model_name=out.name, dataset_name=dataset_name, tags=tags)
    run_dir.plot_losses(out, trainer.state.log_history, "SFT loss")
    metrics = {"train_loss": trainer.state.log_history[-1].get("train_loss"), "examples": len(dataset),
               "max_length": fit}
    if script_args.dataset_name is None and script_args.num_eval_prompts:
        metrics["gold"] = evaluate_on_toy_world(script_args, model_args.model_name_or_path, out / "merged", out)
        (out / "eval_results.json").write_text(json.dumps(metrics["gold"], indent=2))
    run_dir.mark_complete(out, "sft", metrics)
    hub.push_finished(out, push)
    return metrics


if __name__ == "__main__":
    run_main(main, CONFIG)
