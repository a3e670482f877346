"""Comparison data: sample K responses per prompt from a policy, have them ranked, expand rankings into pairs.

    python -m recipes.compare --config configs/tiny/compare.yaml

Prompts come from the toy world's comparison split, or from a dataset (`dataset_name`, its `prompt_column`, or
the prompts of any layout `recipes/common/formats.py` reads). The ranking comes from `labeler`:
- `gold`: the toy world's noise-free labeler; `noisy`: its human-like noisy mode (`labeler_temperature`);
- `reward_model`: a trained reward model (`reward_model`);
- `human`: without `rankings_file`, writes `labeling_file` (JSONL or CSV) for people to fill in and stops; with
  `rankings_file`, reads the filled-in file.
Each ranking of K responses gives K(K-1)/2 chosen/rejected pairs (InstructGPT). Outputs in `output_dir`:
`comparisons/` (a DatasetDict, train and test split by prompt, that `RewardTrainer` reads), `train.jsonl`,
`test.jsonl`, `rankings.jsonl` (every prompt, its responses, ranking and set), `config.yaml` and `stage.json` last.
With `judge_prompts: N`, N more prompts, disjoint from the other `num_prompts` (on the toy world dealt out evenly,
so that both sets hold every family), are sampled and ranked the same way into `judge_comparisons/` (and
`judge_train.jsonl`, `judge_test.jsonl`): the data of a held-out reward model, a judge that grades the policy
without being the model it optimized (`recipes.evaluate`'s `judge_reward_model`). With `labeler: human`, the
exported file holds both sets, and the last `judge_prompts` rows of the rankings file are the judge's.
With `push_to_hub: true` the finished stage's DatasetDict goes to `hub_dataset_id` as a dataset repo (Parquet, with
a card listing the metrics), private unless `hub_private: false`; offline or without a token the run stops before
it samples. `python -m recipes.push` uploads a finished stage later; see `recipes/common/hub.py`.
"""

from __future__ import annotations

import json
import random
import shutil
from itertools import combinations
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from recipes.common import hub, labeling, run_dir
from recipes.common.arguments import CONFIGS, CompareArguments
from recipes.common.cli import run_main
from recipes.common.data import load_prompts as dataset_prompts
from recipes.common.errors import ConfigError, InputError, MissingInputError
from recipes.common.generation import chat_texts, generate, reward_scores
from recipes.common.tokenizer import check_reward_pad
from recipes.toy import GoldLabeler


def load_prompts(args: CompareArguments) -> list[str]:
    if args.dataset_name is None:
        return judge_last([t.prompt for t in args.world().tasks("compare", args.num_prompts + args.judge_prompts,
                                                              key="num_prompts + judge_prompts")],
                          args.judge_prompts)
    return dataset_prompts(args.dataset_name, args.dataset_config, args.dataset_train_split, args.prompt_column,
                           args.num_prompts + args.judge_prompts)


def judge_last(prompts: list[str], judge_prompts: int) -> list[str]:
    """The toy world's prompts, its families taking turns, dealt out evenly: every (n / judge_prompts)-th goes to
    the judge, then the judge's are moved last. Taking the last `judge_prompts` as they come would leave the judge
    no fact, harmful or open prompt: those families have few comparison prompts, used up in the first turns."""
    total = len(prompts)
    judge = [(i + 1) * judge_prompts // total > i * judge_prompts // total for i in range(total)]
    return [p for p, j in zip(prompts, judge) if not j] + [p for p, j in zip(prompts, judge) if j]


def sample(args: CompareArguments, prompts: list[str]) -> list[list[str]]:
    tokenizer = AutoTokenizer.from_pretrained(args.policy)
    model = AutoModelForCausalLM.from_pretrained(args.policy, dtype=torch.float32)
    torch.manual_seed(args.seed)
    return generate(model, tokenizer, chat_texts(tokenizer, prompts), num_return_sequences=args.responses_per_prompt,
                    do_sample=True, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                    batch_size=max(1, args.batch_size // args.responses_per_prompt), desc="sampling responses")


def rank(args: CompareArguments, prompts: list[str], responses: list[list[str]]) -> list[list[int]]:
    if args.labeler in ("gold", "noisy"):
        labeler = GoldLabeler(args.world(), args.labeler_temperature if args.labeler == "noisy" else 0,
                              seed=args.seed)
        return [labeler.rank(p, rs) for p, rs in zip(prompts, responses)]
    tokenizer = AutoTokenizer.from_pretrained(args.reward_model)
    check_reward_pad(args.reward_model, tokenizer.pad_token_id, "reward_model", "its own tokenizer")
    model = AutoModelForSequenceClassification.from_pretrained(args.reward_model, num_labels=1)
    k = args.responses_per_prompt
    flat = reward_scores(model, tokenizer, [p for p in prompts for _ in range(k)], [r for rs in responses for r in rs])
    return [sorted(range(k), key=lambda j: -flat[i * k + j]) for i in range(len(prompts))]


def judge_start(args: CompareArguments, prompts: list[str]) -> int:
    """The index of the first of the judge's prompts, which come last."""
    first = len(prompts) - args.judge_prompts
    if args.judge_prompts and first < 1:
        raise ConfigError(f"judge_prompts: {args.judge_prompts} leaves none of the {len(prompts)} prompts for the "
                         "policy's reward model; lower judge_prompts or give more prompts")
    return first


def split_pairs(args: CompareArguments, prompts, responses, rankings, ids, rubrics, name: str) -> DatasetDict:
    """The pairs of prompts `ids`, split by prompt into train and test; an error, naming the split, if either has no
    pairs (the reward model could neither train nor be tested)."""
    order = list(ids)
    random.Random(args.seed).shuffle(order)
    n_test = round(args.test_fraction * len(order))
    splits = {"train": sorted(order[n_test:]), "test": sorted(order[:n_test])}
    data = DatasetDict({split: Dataset.from_list(to_pairs(prompts, responses, rankings, part, rubrics,
                                                          args.labeler == "gold")) for split, part in splits.items()})
    for split, dataset in data.items():
        if len(dataset) == 0:
            raise InputError(f"compare: the {split} split of {name} has no pairs ({len(splits[split])} prompts, their "
                             "responses identical or, for the gold labeler, equally good): the reward model could not "
                             "train or be tested on it; raise num_prompts (or judge_prompts), test_fraction or "
                             "temperature")
    return data


def to_pairs(prompts, responses, rankings, ids, rubrics=None, drop_ties=False) -> list[dict]:
    """Every pair of a ranking, better first. Identical responses give none, nor, with `drop_ties` (the noise-free
    labeler, which has no preference there), responses of equal gold score. On the toy world (`rubrics`: the gold
    labeler's rubric of each response) each pair keeps both responses' gold scores and the rubric's `correct` part of
    each, so the reward stage can tell the pairs that correctness decides from those that style alone decides."""
    pairs = []
    for i in ids:
        for better, worse in combinations(rankings[i], 2):
            chosen, rejected = responses[i][better], responses[i][worse]
            if chosen == rejected or (drop_ties and rubrics[i][better]["score"] == rubrics[i][worse]["score"]):
                continue
            pair = {"prompt": [{"role": "user", "content": prompts[i]}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}], "prompt_id": i}
            if rubrics:
                b, w = rubrics[i][better], rubrics[i][worse]
                pair |= {"gold_chosen": b["score"], "gold_rejected": w["score"],
                         "gold_correct_chosen": b["correct"], "gold_correct_rejected": w["correct"]}
            pairs.append(pair)
    return pairs


CONFIG = CONFIGS["compare"]  # what --config and the command line fill (recipes/common/arguments.py)


def main(args: CompareArguments) -> dict:
    push = hub.check_push(args)  # fails here, not after sampling, if the upload could not happen
    if args.labeler == "human" and args.rankings_file:
        if not Path(args.rankings_file).is_file():
            raise MissingInputError(f"rankings_file: {args.rankings_file} does not exist; fill in the labeling file "
                                    "compare exported (labeling_file) and name it here")
        prompts, responses, rankings = labeling.load(args.rankings_file)
        if args.dataset_name is None:  # then the toy world's gold labeler scores them: they must be its prompts
            world = args.world()
            for n, prompt in enumerate(prompts, start=1):
                try:
                    world.task_for(prompt)
                except ValueError:
                    raise InputError(f"{args.rankings_file}: row {n}: {prompt[:60]!r} is not a prompt of the toy "
                                     "world, whose gold labeler would score the answers; set dataset_name to the "
                                     "dataset the prompts came from (no gold scores are kept then)") from None
        judge_start(args, prompts)
    else:
        run_dir.check_input(args.policy, "policy", "causal_lm")
        if args.labeler == "reward_model":
            run_dir.check_input(args.reward_model, "reward_model", "reward_model")
        run_dir.check_output(args.output_dir, "compare")  # before sampling, not after
        if not AutoTokenizer.from_pretrained(args.policy).chat_template:
            raise InputError(f"policy: {args.policy} has no chat template; sample from a chat model (the SFT "
                             "model: sft/merged)")
        if args.labeler == "human":
            labeling.check_path(args.labeling_file, "labeling_file")
        prompts = load_prompts(args)
        judge_start(args, prompts)
        responses = sample(args, prompts)
        if args.labeler == "human":
            path = labeling.export(args.labeling_file, prompts, responses)
            print(f"wrote {len(prompts)} prompts x {args.responses_per_prompt} responses to {path}; fill in each "
                  "'ranking' (best first, e.g. 3>1>4>2) and rerun with rankings_file set to the filled-in file")
            return {"exported": str(path)}
        rankings = rank(args, prompts, responses)
    world = args.world() if args.dataset_name is None else None
    gold = rubrics = None
    if world is not None:
        scorer = GoldLabeler(world, temperature=0)
        rubrics = [[scorer.rubric(p, r) for r in rs] for p, rs in zip(prompts, responses)]
        gold = [[parts["score"] for parts in rs] for rs in rubrics]
    first_judge = judge_start(args, prompts)
    sets = {"comparisons": range(first_judge), "judge_comparisons": range(first_judge, len(prompts))}
    if not args.judge_prompts:
        sets.pop("judge_comparisons")
    datasets = {name: split_pairs(args, prompts, responses, rankings, ids, rubrics, name)
                for name, ids in sets.items()}
    out = run_dir.start_stage(args.output_dir, "compare")  # nothing is written before the pairs are known to be usable
    run_dir.save_config(out, args)
    if not args.judge_prompts:
        shutil.rmtree(out / "judge_comparisons", ignore_errors=True)  # an earlier run's, now stale
    metrics = {"prompts": len(prompts), "responses_per_prompt": len(responses[0]), "labeler": args.labeler}
    decided = []
    for name, data in datasets.items():
        data.save_to_disk(str(out / name))
        prefix = "" if name == "comparisons" else "judge_"
        for split, dataset in data.items():
            dataset.to_json(str(out / f"{prefix}{split}.jsonl"))
            metrics[f"{prefix}{split}_pairs"] = len(dataset)
        decided += [r for d in data.values() for r in d if gold and r["gold_chosen"] != r["gold_rejected"]]
    with (out / "rankings.jsonl").open("w") as f:
        for i, p in enumerate(prompts):
            f.write(json.dumps({"id": i, "prompt": p, "responses": responses[i], "ranking": rankings[i],
                                "set": "policy" if i < first_judge else "judge",
                                **({"gold": gold[i]} if gold else {})}) + "\n")
    if gold:
        metrics["labeler_agreement_with_gold"] = sum(r["gold_chosen"] > r["gold_rejected"] for r in decided) / max(
            1, len(decided))
        metrics["mean_gold_of_responses"] = sum(map(sum, gold)) / sum(map(len, gold))
    print(json.dumps(metrics, indent=2))
    run_dir.mark_complete(out, "compare", metrics)
    hub.push_finished(out, push)
    return metrics


if __name__ == "__main__":
    run_main(main, CONFIG)
