"""Stage 2: a reward model trained on chosen/rejected pairs, with a LoRA adapter (QLoRA with `load_in_4bit`).

    python -m recipes.reward --config configs/tiny/reward.yaml

TRL's `RewardTrainer` on a sequence-classification model initialized from the SFT model, so that it shares the
policy's tokenizer (PPO needs that). The adapter is `SEQ_CLS` with the new `score` head in `modules_to_save`:
otherwise a reloaded LoRA reward model gets a fresh random head. Each pair is tokenized up to the response's eos,
the token where PPO reads the reward. Data: the comparisons from `recipes.compare` or any preference dataset
`recipes/common/formats.py` reads (hh-rlhf, prompt/chosen/rejected...). Outputs in `output_dir`: the adapter (with the
score head), the tokenizer and TRL's model card; `merged/`, a plain `AutoModelForSequenceClassification`
directory; `eval_results.json` (pairwise accuracy on the test split and, on the toy world, agreement with the
noise-free gold labeler, also split into the pairs that correctness decides and those that style alone decides;
and diagnostics: accuracy on the pairs whose rejected response is the longer one and on those where it is the
shorter, the correlation of score with length); `scores.png` (histograms of the chosen and the rejected responses'
scores); `config.yaml`; `loss.png`; `stage.json` last. The RL stages refuse a reward model whose accuracy here is
below their `min_reward_accuracy`.

With `push_to_hub: true` and `hub_model_id`, the finished stage is uploaded, private unless `hub_private_repo: false`:
the adapter, tokenizer and card (with the results) to `hub_model_id`, `merged/` to `<hub_model_id>-merged`. Offline
or without a token the run stops before it starts; `python -m recipes.push` uploads a finished stage later.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
from trl import ModelConfig, RewardConfig, RewardTrainer, get_peft_config, get_quantization_config

from recipes.common import hub, run_dir
from recipes.common.adapters import check_bf16, merge_adapter, model_init_kwargs, with_trainable_tokens
from recipes.common.arguments import CONFIGS, RewardScriptArguments
from recipes.common.cli import run_main
from recipes.common.data import check_fit, load_any
from recipes.common.errors import ConfigError
from recipes.common.formats import to_preference
from recipes.common.generation import conversation_ids, reward_scores
from recipes.common.gold import load_metric
from recipes.common.tokenizer import settle_pad


def load_pairs(args: RewardScriptArguments, split: str, tokenizer) -> tuple[Dataset, list | None]:
    """Tokenized pairs of a split, and the gold scores of each pair where the data has them (the toy world): (chosen,
    rejected), followed by the rubric's `correct` part of each where the data has that too."""
    raw = load_any(args.dataset_name, args.dataset_config, split, args.invalid_rows)
    pairs, report = to_preference(raw, f"{args.dataset_name} [{split}]", args.invalid_rows)
    print(f"{args.dataset_name} [{split}]: {report}")
    gold = None
    if "gold_chosen" in raw.column_names and report.rows_out == report.rows_in:
        parts = ["gold_chosen", "gold_rejected"]
        if {"gold_correct_chosen", "gold_correct_rejected"} <= set(raw.column_names):
            parts += ["gold_correct_chosen", "gold_correct_rejected"]
        gold = list(zip(*(raw[c] for c in parts)))
    tokenized = pairs.map(lambda row: {"chosen_ids": conversation_ids(tokenizer, row["prompt"] + row["chosen"]),
                                       "rejected_ids": conversation_ids(tokenizer, row["prompt"] + row["rejected"])})
    return tokenized, gold


def evaluate_pairs(model, tokenizer, pairs: Dataset, gold: list | None, limit: int) -> tuple[dict, list[float]]:
    """Pairwise accuracy against the data's labels and, where known, against the noise-free gold labeler; and the
    scores of the chosen, then the rejected responses."""
    n = min(limit, len(pairs))
    rows = pairs.select(range(n)).to_list()
    prompts = [row["prompt"][-1]["content"] for row in rows]
    chosen = reward_scores(model, tokenizer, prompts, [row["chosen"][0]["content"] for row in rows])
    rejected = reward_scores(model, tokenizer, prompts, [row["rejected"][0]["content"] for row in rows])
    metrics = {"pairs": n, "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n,
               **diagnostics(chosen, rejected, [row["chosen"][0]["content"] for row in rows],
                             [row["rejected"][0]["content"] for row in rows])}
    if gold:
        metrics |= gold_agreement([c > r for c, r in zip(chosen, rejected)], gold[:n])
    return metrics, chosen + rejected


def gold_agreement(prefers_chosen: list[bool], gold: list[tuple]) -> dict:
    """How often the reward model prefers the response the noise-free labeler scores higher, over the pairs it does
    not score equally; and, where the pairs carry the rubric's `correct` parts, the same split in two: pairs whose
    answers differ in correctness (a right sum against a wrong one: the model has to know the answer) and pairs
    equally correct, decided by style alone (padding, rudeness, a missing full stop)."""
    metric = load_metric("judge_agreement")  # this repo's judge metric: a reward model is a judge of each pair

    def agreement(pairs: list) -> tuple[float | None, int]:
        decided = [(p, g) for p, g in pairs if g[0] != g[1]]
        if not decided:
            return None, 0
        result = metric.compute(predictions=[float(p) for p, _ in decided],
                                references=[float(g[0] > g[1]) for _, g in decided])
        return result["agreement"], result["n_decided"]

    pairs = list(zip(prefers_chosen, gold))
    metrics = dict(zip(("gold_agreement", "gold_pairs"), agreement(pairs)))
    if metrics["gold_pairs"] and len(gold[0]) == 4:
        for name, keep in (("correctness_differs", True), ("only_style_differs", False)):
            metrics[f"gold_agreement_{name}"], metrics[f"gold_pairs_{name}"] = agreement(
                [(p, g) for p, g in pairs if (g[2] != g[3]) == keep])
    return metrics


def diagnostics(chosen: list[float], rejected: list[float], chosen_texts: list[str], rejected_texts: list[str]) -> dict:
    """Is the reward model any good, beyond its accuracy: its accuracy on the pairs where the rejected response is
    the longer one (a model that only likes length gets these right; one that only likes brevity gets them
    wrong), and the correlation of its score with the response's length in words over every test response."""
    words = [len(t.split()) for t in chosen_texts + rejected_texts]
    scores = chosen + rejected
    longer = [c > r for c, r, ct, rt in zip(chosen, rejected, chosen_texts, rejected_texts)
              if len(rt.split()) > len(ct.split())]
    shorter = [c > r for c, r, ct, rt in zip(chosen, rejected, chosen_texts, rejected_texts)
               if len(rt.split()) < len(ct.split())]
    spread = len(set(words)) > 1 and len(set(scores)) > 1
    return {"accuracy_when_rejected_is_longer": sum(longer) / len(longer) if longer else None,
            "pairs_rejected_longer": len(longer),
            "accuracy_when_rejected_is_shorter": sum(shorter) / len(shorter) if shorter else None,
            "pairs_rejected_shorter": len(shorter),
            "score_length_correlation": statistics.correlation(scores, words) if spread else None}


def plot_scores(path: Path, chosen: list[float], rejected: list[float]) -> Path:
    """scores.png: histograms of the scores of the chosen and of the rejected test responses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = 30
    ax.hist(chosen, bins=bins, alpha=0.6, label=f"chosen (mean {statistics.fmean(chosen):.2f})")
    ax.hist(rejected, bins=bins, alpha=0.6, label=f"rejected (mean {statistics.fmean(rejected):.2f})")
    ax.set(xlabel="reward-model score (before standardizing)", ylabel="test responses",
           title="Reward-model scores of held-out pairs")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def standardize(model, scores: list[float], out: Path, merged: Path) -> float:
    """Rescale the score head so that `scores` (of the test pairs' responses) get standard deviation 1; returns
    the factor. The pairwise loss sees only differences, so a reward model's scale is arbitrary: on the toy world it
    varies threefold from seed to seed. PPO weighs the score against `kl_coef` times the KL, so one `kl_coef` means
    the same pull toward SFT on every seed only if the scale is fixed. Both `merged/` and the adapter's copy of the
    head are rescaled, so they keep scoring alike."""
    head = getattr(model, "score", None)
    if head is None:
        print(f"standardize_scores: {type(model).__name__} has no 'score' head; scores left as trained")
        return 1.0
    sd = statistics.pstdev(scores)
    if not sd > 0:
        print("standardize_scores: every test response scores the same; scores left as trained")
        return 1.0
    with torch.no_grad():
        for param in head.parameters():
            param /= sd
    model.save_pretrained(merged)
    adapter = out / "adapter_model.safetensors"
    if merged != out and adapter.exists():
        tensors = load_file(adapter)
        save_file({k: v / sd if ".score." in f".{k}" else v for k, v in tensors.items()}, adapter,
                  metadata={"format": "pt"})
    return sd


CONFIG = CONFIGS["reward"]  # what --config and the command line fill (recipes/common/arguments.py)


def main(script_args: RewardScriptArguments, training_args: RewardConfig, model_args: ModelConfig):
    push = hub.check_push(training_args)  # fails here, not after training, if the upload could not happen
    run_dir.check_launch(training_args, "reward")
    run_dir.check_input(model_args.model_name_or_path, "model_name_or_path", "model")
    run_dir.check_input(script_args.dataset_name, "dataset_name")
    if model_args.use_peft and model_args.lora_task_type != "SEQ_CLS":
        raise ConfigError(f"lora_task_type: {model_args.lora_task_type}; a reward model's adapter is SEQ_CLS (it "
                          "trains and saves the score head): set lora_task_type: SEQ_CLS")
    training_args.push_to_hub = False  # hub.push_finished uploads the finished stage; the Trainer would push every save
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    note = settle_pad(tokenizer, model_args.model_name_or_path)  # its last token is found through the pad
    if note:
        print(note)
    train, _ = load_pairs(script_args, script_args.dataset_train_split, tokenizer)
    test, gold = load_pairs(script_args, script_args.dataset_test_split, tokenizer)
    fit = check_fit("training pairs", [max(len(c), len(r)) for c, r in zip(train["chosen_ids"], train["rejected_ids"])],
                    training_args.max_length, script_args.max_dropped_fraction)  # TRL drops longer pairs unsaid
    out = run_dir.start_stage(training_args.output_dir, "reward")  # the data is read and valid: from here on, outputs
    run_dir.save_config(out, script_args, training_args, model_args)

    peft_config = get_peft_config(model_args)
    if peft_config is not None and "score" not in (peft_config.modules_to_save or []):
        print("adding 'score' to lora_modules_to_save: a LoRA reward model must save its new head")
        peft_config.modules_to_save = [*(peft_config.modules_to_save or []), "score"]
    peft_config = with_trainable_tokens(peft_config, model_args.model_name_or_path,
                                        script_args.trainable_token_embeddings)
    training_args.model_init_kwargs = model_init_kwargs(model_args)
    check_bf16(training_args)
    set_seed(training_args.seed)  # the trainer seeds only after it has made the adapter's random init
    trainer = RewardTrainer(model=model_args.model_name_or_path, args=training_args, train_dataset=train,
                            eval_dataset=test, processing_class=tokenizer, peft_config=peft_config,
                            quantization_config=get_quantization_config(model_args))
    trainer.train(resume_from_checkpoint=run_dir.last_checkpoint(out))
    trainer.save_model(out)
    trainer.save_state()
    if not run_dir.is_main_process():  # the rest is written once, by the main process; the launcher waits for it
        return {}
    merged = merge_adapter(out, out / "merged", model_args, sequence_classification=True) if peft_config else out
    trainer.create_model_card(model_name=out.name, dataset_name=script_args.dataset_name,
                              tags=["rlhf-recipes", "reward-model", "lora"])
    run_dir.plot_losses(out, trainer.state.log_history, "reward-model loss")

    model = AutoModelForSequenceClassification.from_pretrained(merged, num_labels=1)
    metrics, scores = evaluate_pairs(model, tokenizer, test, gold, script_args.max_eval_pairs)  # unchanged by scale
    plot_scores(out / "scores.png", scores[:metrics["pairs"]], scores[metrics["pairs"]:])
    standardized = script_args.standardize_scores
    metrics["score_divided_by"] = standardize(model, scores, out, Path(merged)) if standardized else 1.0
    metrics["training_pairs_max_length"] = fit
    print(json.dumps(metrics, indent=2))
    (out / "eval_results.json").write_text(json.dumps(metrics, indent=2))
    run_dir.mark_complete(out, "reward", metrics)
    hub.push_finished(out, push)
    return metrics


if __name__ == "__main__":
    run_main(main, CONFIG)
