"""A stage's output directory: its resolved config, its loss plot, and the marker that says it finished.

A stage writes `stage.json` last, atomically; a directory without it is unfinished, whatever else it holds, and
rerunning the stage resumes or redoes it.

Under `accelerate launch` (or torchrun) every process runs the stage, but only the main one writes its files: it
prepares the directory while the others wait (`start_stage`, `save_config`), and after training the others leave,
their part done, while it merges, evaluates, writes stage.json and uploads (`is_main_process`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from recipes.common.errors import ConfigError, InputError, MissingInputError, NotWritableError

MARKER = "stage.json"
# The main job's stages, in the order the pipeline runs them, each in run_dir/<stage>
PIPELINE_STAGES = ("pretrain", "sft", "compare", "reward", "judge", "ppo", "evaluate")
SECRETS = ("hub_token", "push_to_hub_token")  # never written to disk


_INPUTS: dict[Path, str] = {}  # the local inputs this process's stage checked, by path: none may be its output


def is_main_process() -> bool:
    """Whether this process writes the stage's files: a lone process does; under a multi-process launch (accelerate
    launch, torchrun: RANK set) only global rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """Under a multi-process launch, wait until every process gets here; alone, return at once."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def check_launch(training_args, stage: str) -> None:
    """Refuse, before anything loads, a multi-process launch whose processes would not train together: on a machine
    without GPUs they join (over gloo) only with use_cpu: true; without it each would train the whole model on the
    whole data, unknown to the others; FSDP or DeepSpeed asked for where the trainer runs without them (a CPU); and
    PPO under ZeRO-3 or FSDP, which TRL's PPO trainer does not support."""
    from transformers import TrainingArguments

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    seen = training_args.world_size
    if seen is None:  # PPOConfig: a field of that name, None until its trainer fills it in; TrainingArguments' own
        seen = TrainingArguments.world_size.fget(training_args)
    if launched > 1 and seen != launched:
        raise ConfigError(f"use_cpu: launched as {launched} processes, but the {stage} trainer sees {seen}: they "
                          "would train apart. On a machine without GPUs set use_cpu: true (see "
                          "configs/accelerate/cpu_ddp.yaml)")
    asked = next((kind for kind in ("FSDP", "DEEPSPEED") if _env_true(f"ACCELERATE_USE_{kind}")), None)
    if asked and getattr(training_args, "use_cpu", False):  # seen: the trainer then runs MULTI_CPU, fsdp unset
        raise ConfigError(f"use_cpu: true, but the accelerate config asks for {asked}, which accelerate runs only on "
                          "GPUs: the processes would silently train as plain data parallel. On a CPU use "
                          "configs/accelerate/cpu_ddp.yaml")
    zero3 = _env_true("ACCELERATE_USE_DEEPSPEED") and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    if stage == "ppo" and (zero3 or _env_true("ACCELERATE_USE_FSDP")):
        raise ConfigError("accelerate config: TRL's PPO trainer does not support DeepSpeed ZeRO-3 or FSDP; launch PPO "
                          "with configs/accelerate/ddp.yaml or zero2.yaml, or use RLOO or GRPO, which do")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def check_output(output_dir: str | os.PathLike, stage: str | None = None) -> Path:
    """Refuse, without writing anything, an output directory that is one of the stage's inputs, holds one or lies
    inside one (writing there would overwrite, and un-complete, the stage it reads), that holds another kind of
    finished stage, or that cannot be made because a file stands in its path."""
    path = Path(output_dir)
    mine = path.resolve()
    for source, key in _INPUTS.items():
        if mine == source or mine in source.parents or source in mine.parents:
            raise ConfigError(f"output_dir: {output_dir} would write over {key} ({source}); give the stage a "
                              "directory of its own")
    try:
        other = json.loads((path / MARKER).read_text()).get("stage") if (path / MARKER).is_file() else None
    except (OSError, ValueError):
        other = None
    if stage is not None and other is not None and other != stage:
        raise ConfigError(f"output_dir: {output_dir} holds a finished {other} stage; give this {stage} stage a "
                          "directory of its own (or delete that one)")
    blocked = next((d for d in [mine, *mine.parents] if d.exists() and not d.is_dir()), None)
    if blocked is not None:
        raise NotWritableError(f"output_dir: cannot make {output_dir}: {blocked} is a file; choose a directory path")
    return path


def start_stage(output_dir: str | os.PathLike, stage: str | None = None) -> Path:
    """Make the directory and forget any earlier completion, so that a run killed from here on is not complete,
    after `check_output`."""
    path = check_output(output_dir, stage)
    _INPUTS.clear()  # the next stage run in this process checks its own
    if is_main_process():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise NotWritableError(f"output_dir: cannot make {output_dir} ({error.strerror}); choose a directory you "
                                   "can write to") from None
        (path / MARKER).unlink(missing_ok=True)
    return path


def save_config(output_dir: str | os.PathLike, *configs, name: str = "config.yaml") -> Path:
    """Write the resolved arguments as one flat YAML file that `--config` reads back. Checkpoints written under
    other arguments are removed first: resuming from them would mix two runs. Under a multi-process launch the main
    process does it while the others wait, so that none of them resumes from a checkpoint it removes."""
    resolved: dict = {}
    for config in configs:
        # TrainingArguments.to_dict turns nested configs back into what the parser takes
        values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        for f in dataclasses.fields(config):
            if f.init and not f.name.startswith("_") and f.name not in SECRETS:
                value = values[f.name]
                if value == f"<{f.name.upper()}>":  # to_dict hides every `*_token` field, PPO's stop_token too
                    value = getattr(config, f.name)
                resolved[f.name] = _plain(value)
    if resolved.get("steps_per_generation") is not None:
        # GRPO/RLOO resolve each of these from the other and refuse both given: keep the one that holds on any
        # number of processes
        resolved.pop("generation_batch_size", None)
    path, text = Path(output_dir) / name, yaml.safe_dump(resolved, sort_keys=False)
    if is_main_process():
        stale = sorted(Path(output_dir).glob("checkpoint-*")) if path.is_file() and path.read_text() != text else []
        for checkpoint in stale:
            print(f"removing {checkpoint}: written with other settings than {path} now holds; training starts over")
            shutil.rmtree(checkpoint)
        path.write_text(text)
    wait_for_everyone()
    return path


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def plot_losses(output_dir: str | os.PathLike, log_history: list[dict], title: str) -> Path:
    """loss.png: training loss (and eval loss, where logged) against step."""
    return plot_curves(output_dir, log_history, {title: ["loss", "eval_loss"]}, title, "loss.png")


def plot_curves(output_dir: str | os.PathLike, log_history: list[dict], panels: dict[str, list[str] | dict[str, str]],
                title: str, filename: str) -> Path:
    """One panel per entry of `panels` ({panel title: logged keys, or {logged key: legend label}}), each key
    plotted against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 + 3.2 * len(panels), 3.5), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels.items()):
        labels = keys if isinstance(keys, dict) else {key: key for key in keys}
        for key, label in labels.items():
            points = [(row["step"], row[key]) for row in log_history if key in row]
            if points:
                ax.plot(*zip(*points), label=label, marker="." if len(points) < 30 else None)
        ax.set(xlabel="step", title=name)
        if any(key in row for row in log_history for key in keys):
            ax.legend(fontsize="small")
    if len(panels) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(output_dir) / filename
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mark_complete(output_dir: str | os.PathLike, stage: str, metrics: dict) -> None:
    path = Path(output_dir)
    tmp = path / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"stage": stage, "complete": True, "metrics": metrics}, indent=2))
    os.replace(tmp, path / MARKER)


def is_complete(output_dir: str | os.PathLike) -> bool:
    try:
        return json.loads((Path(output_dir) / MARKER).read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


KINDS = {"causal_lm": ("ForCausalLM", "a causal language model (a policy: pretrain, sft/merged, ppo/merged...)"),
         "reward_model": ("ForSequenceClassification", "a reward model (reward/merged, judge/merged)")}


def check_input(path: str | None, key: str, kind: str | None = None) -> None:
    """Fail early, naming the config key, when an input model is a missing path, an unfinished stage, or (with
    `kind`, for a local model directory) the wrong kind of model: a causal LM given as a reward model would be read
    through a random score head; a reward model given as a policy has no language-model head."""
    if path is None:
        raise ConfigError(f"{key} is not set")
    p = Path(path)
    # "owner/name" is a Hub id, unless "owner" is a directory here ("runs/pretrain": a mistyped run path)
    looks_local = path.startswith((".", "/", "~")) or path.count("/") != 1 or Path(path.split("/")[0]).is_dir()
    if p.exists():
        _INPUTS[p.resolve()] = key
    if not p.exists():
        if looks_local:
            raise MissingInputError(f"{key}: {path} does not exist; run the stage that writes it first")
        if kind is not None and _offline() and not _cached(path):
            raise MissingInputError(f"{key}: {path} is not a local path, and as a Hub id it is not in the cache "
                                    "while offline (HF_HUB_OFFLINE=1); fix the path, or download the model first")
        return  # a Hub id
    stage = next((d for d in (p, p.parent) if (d / "config.yaml").exists()), None)
    if stage is not None and not is_complete(stage):
        raise InputError(f"{key}: {stage} is an unfinished stage (no complete {MARKER}); rerun that stage first")
    if kind is not None:  # a model: a directory with config.json, not a file or a bare adapter
        if not p.is_dir():
            raise InputError(f"{key}: {path} is a file; point {key} at a model directory (one with config.json)")
        if not (p / "config.json").is_file():
            merged = " (its merged model is in merged/)" if (p / "merged" / "config.json").is_file() else ""
            what = "a LoRA adapter, not a whole model" if (p / "adapter_config.json").is_file() \
                else "not a model directory (no config.json)"
            raise InputError(f"{key}: {path} is {what}{merged}; point {key} at a model directory")
    if kind in KINDS:
        suffix, wanted = KINDS[kind]
        architectures = json.loads((p / "config.json").read_text()).get("architectures") or []
        if architectures and not any(a.endswith(suffix) for a in architectures):
            raise InputError(f"{key}: {path} is a {architectures[0]}, not {wanted}; point {key} at one")
    if kind is not None and not any(p.glob("*.safetensors")) and not any(p.glob("pytorch_model*.bin")):
        raise InputError(f"{key}: {path} has a config.json but no weights (no *.safetensors or pytorch_model.bin); "
                         "point it at a saved model, or rerun the stage that writes it")
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if kind in ("causal_lm", "model") and not any((p / f).is_file() for f in tokenizer_files):
        raise InputError(f"{key}: {path} has no tokenizer (none of {list(tokenizer_files)}); save the tokenizer "
                         "beside the model (tokenizer.save_pretrained)")


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id either
        return False


def check_writable(directory: str | os.PathLike, key: str) -> Path:
    """Make sure files can be written in `directory` (made if missing) before any work is done, rather than fail
    after it; by trying, since permissions alone do not tell (a read-only file system, a path under a file)."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise NotWritableError(f"{key}: cannot write in {directory} ({error.strerror}); choose a directory you can "
                              f"write to for {key}") from None
    return path


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint the Trainer finished writing, to resume from. It writes `trainer_state.json` last, so a
    checkpoint without a readable one was cut off by a kill: it is removed (transformers' `get_last_checkpoint`
    would pick it and fail to resume)."""
    finished = []
    for path in sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            json.loads((path / "trainer_state.json").read_text())
            finished.append(path)
        except (OSError, ValueError):
            if is_main_process():  # every process skips it; one removes it
                print(f"removing {path}: a checkpoint cut off before it was complete")
                shutil.rmtree(path, ignore_errors=True)
    return str(finished[-1]) if finished else None
