"""Uploads to the Hugging Face Hub, shared by the recipes (`push_to_hub: true`) and by `recipes.push` (later).

A stage is uploaded once, when it is complete, never while it trains: transformers' Trainer with `push_to_hub`
creates the repo at init and pushes on every save, so a recipe checks at its start that the upload can happen
(`check_push`), takes `push_to_hub` away from the Trainer, and uploads the finished directory last
(`push_finished`). What goes where (`push_stage`):
- a model stage (pretrain, or a stage trained without LoRA): the model, tokenizer and the stage's other files
  (config.yaml, eval_results.json, samples.md, plots, stage.json) to `repo_id`;
- a LoRA stage: the adapter, tokenizer and the same files to `repo_id`, and `merged/` to `<repo_id>-merged`, a
  plain transformers model that `pipeline()` and the next stage load without peft (the adapter's base is often a
  local directory, such as the SFT stage's `merged/`);
- a compare stage (or its `comparisons/`): a dataset repo, written by `DatasetDict.push_to_hub` as Parquet.
Each repo's README.md is the stage's card (TRL's or transformers'), its quick start pointed at the repo, with a
Results section listing stage.json's metrics. Repos are created private unless asked otherwise; an existing repo
keeps its visibility. Checkpoints and training_args.bin (a pickle of what config.yaml says in plain text) stay
local. huggingface_hub finds the token itself (HF_TOKEN, or `hf auth login`) for each request: nothing here
handles it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from datasets import load_from_disk
from huggingface_hub import DatasetCardData, HfApi, ModelCard, get_token, is_offline_mode

from recipes.common import run_dir
from recipes.common.cli import ConfigError
from recipes.common.errors import UserError

# README.md goes up separately, as the Hub card; `_*` and `.*` are temporary files (the Trainer's, .stage.json.tmp)
IGNORE = ["checkpoint-*", "merged/*", "training_args.bin", "README.md", "_*", ".*"]


class HubError(UserError, RuntimeError):
    """The Hub cannot take an upload now, or an upload failed."""


class Target(NamedTuple):
    repo_id: str
    private: bool


def check_push(args) -> Target | None:
    """Where the finished stage goes, or None without `push_to_hub`. Raises now, before anything is loaded or
    trained, when the upload at the end could not happen. `args`: TrainingArguments or CompareArguments."""
    if getattr(args, "hub_token", None):  # even without push_to_hub: Trainer pickles it into training_args.bin
        raise ConfigError("hub_token: a token in a config or on the command line ends up on disk and in shell "
                          "history; remove it and log in with `hf auth login` or set HF_TOKEN")
    if not args.push_to_hub:
        return None
    key = "hub_dataset_id" if hasattr(args, "hub_dataset_id") else "hub_model_id"
    repo_id = getattr(args, key)
    if not repo_id:
        raise ConfigError(f"{key}: push_to_hub: true needs {key}: <user or organization>/<name>")
    if getattr(args, "hub_strategy", None) in ("checkpoint", "all_checkpoints"):
        raise ConfigError(f"hub_strategy: {args.hub_strategy.value} uploads checkpoints while training, but the "
                          "recipes upload the finished stage once, without checkpoints; remove hub_strategy")
    check_hub("push_to_hub: true, but", "\nOr set push_to_hub: false and upload the finished stage later with "
              f"`python -m recipes.push --stage_dir {args.output_dir} --repo_id {repo_id}`.")
    # hub_private_repo's default, None, would leave it to the Hub (public for most accounts)
    return Target(repo_id, getattr(args, "hub_private", getattr(args, "hub_private_repo", None)) is not False)


def check_hub(problem: str, fix: str = "") -> None:
    """Raise HubError (`problem`, why, `fix`) unless the Hub answers to a token that can write."""
    if is_offline_mode():
        raise HubError(f"{problem} HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it.{fix}")
    if get_token() is None:
        raise HubError(f"{problem} no Hugging Face token was found; log in with `hf auth login` or set HF_TOKEN "
                       f"to a write token.{fix}")
    try:
        me = HfApi().whoami()
    except Exception as error:  # unreachable, or the token revoked: either way, say so before training
        raise HubError(f"{problem} the Hub did not answer or refused the token ({type(error).__name__}: {error}); "
                       f"`hf auth whoami` checks the login.{fix}") from error
    if me.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise HubError(f"{problem} the token is read-only; log in with a write token (`hf auth login`).{fix}")


def push_finished(stage_dir, target: Target | None) -> None:
    """A recipe's upload once its stage is complete; when it fails, the stage stays complete and the message
    says how to upload it again."""
    if target is None:
        return
    try:
        push_stage(stage_dir, *target)
    except Exception as error:
        raise HubError(f"{stage_dir} is complete, but uploading it to {target.repo_id} failed: {error}\nUpload it "
                       f"with `python -m recipes.push --stage_dir {stage_dir} --repo_id {target.repo_id}"
                       f"{'' if target.private else ' --private false'}`.") from error


def push_stage(stage_dir, repo_id: str, private: bool = True, merged: bool = True) -> list[str]:
    """Upload a finished stage directory (or its `comparisons/` or `merged/`); returns the repos' URLs."""
    path = Path(stage_dir)
    stage = next((d for d in (path, path.parent) if (d / run_dir.MARKER).exists()), path)
    if not run_dir.is_complete(stage):
        raise HubError(f"{path} is not a finished stage (no complete {run_dir.MARKER}); run the stage first")
    metrics = json.loads((stage / run_dir.MARKER).read_text())["metrics"]
    data = path if (path / "dataset_dict.json").exists() else path / "comparisons"
    adapter = (path / "adapter_config.json").exists()
    if not (data.is_dir() or adapter or (path / "config.json").exists()):
        raise HubError(f"{path}: no model, adapter or comparisons/ to upload")
    check_hub(f"cannot upload {path}:")
    api = HfApi()
    if data.is_dir():
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # DatasetDict.push_to_hub keeps a card's text and adds the splits' metadata to it, so the card goes first
        api.upload_file(path_or_fileobj=dataset_card(url.repo_id, metrics).encode(), path_in_repo="README.md",
                        repo_id=url.repo_id, repo_type="dataset")
        load_from_disk(str(data)).push_to_hub(url.repo_id, private=private)
        print(f"uploaded {data} to {url}")
        return [str(url)]
    merged_id = f"{repo_id}-merged" if merged and adapter and (path / "merged").is_dir() else None
    note = (f"This repo holds the LoRA adapter; [{merged_id}](https://huggingface.co/{merged_id}) holds the model "
            "with the adapter merged in, which loads without peft." if merged_id else "")
    urls = [upload_model(api, path, repo_id, private, model_card(stage, merged_id or repo_id, metrics, note))]
    if merged_id:
        note = f"The model of [{repo_id}](https://huggingface.co/{repo_id}) with its LoRA adapter merged in."
        urls.append(upload_model(api, path / "merged", merged_id, private, model_card(stage, merged_id, metrics, note)))
    return urls


def upload_model(api: HfApi, folder: Path, repo_id: str, private: bool, card: str) -> str:
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=url.repo_id, folder_path=folder, ignore_patterns=IGNORE,
                      commit_message="Upload a finished stage of rlhf-recipes")
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=url.repo_id,
                    commit_message="Model card with the stage's results")
    print(f"uploaded {folder} to {url}")
    return str(url)


def model_card(stage: Path, repo_id: str, metrics: dict, note: str = "") -> str:
    """The stage's card for `repo_id`: TRL's quick start names the repo the Trainer pushed to (None here, since it
    does not push), `note` goes under the title, and the results at the end."""
    card = ModelCard.load(stage / "README.md")
    # the Hub refuses a card whose `datasets` are not dataset ids, such as the toy world's or a local path
    names = [card.data.datasets] if isinstance(card.data.datasets, str) else card.data.datasets or []
    card.data.datasets = [name for name in names if re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name)] or None
    text = card.text.replace('model="None"', f'model="{repo_id}"')
    if note:
        text = re.sub(r"^# .*$", lambda title: f"{title.group(0)}\n\n{note}", text, count=1, flags=re.M)
    card.text = f"{text.rstrip()}\n\n{results(metrics)}"
    return str(card)


def dataset_card(repo_id: str, metrics: dict) -> str:
    tags = DatasetCardData(tags=["rlhf-recipes", "preference", "comparisons"]).to_yaml()
    return (f"---\n{tags}\n---\n\n# {repo_id}\n\n"
            "Chosen/rejected pairs written by `python -m recipes.compare` (rlhf-recipes): a policy's responses to each "
            f"prompt, ranked by the `{metrics.get('labeler')}` labeler, every pair of a ranking kept, better first. "
            f"`recipes.reward` trains on it with `dataset_name: {repo_id}`.\n\n{results(metrics)}")


def results(metrics: dict) -> str:
    """stage.json's metrics as a table, nested keys joined with dots."""
    flat = _flat(metrics)
    gold = (" On the toy world, `gold` figures are the noise-free labeler's mean score on held-out prompts, with "
            "their 95% confidence interval (`ci95`)." if any("gold" in key for key in flat) else "")
    rows = "".join(f"| {key} | {_value(value)} |\n" for key, value in flat.items())
    return f"## Results\n\nThe stage's metrics, from `{run_dir.MARKER}`.{gold}\n\n| metric | value |\n|---|---|\n{rows}"


def _flat(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        flat |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return flat


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    return str(value)
