"""The main job: pretraining -> SFT -> comparisons -> reward model (and a held-out judge) -> PPO -> evaluation,
from one YAML file.

    python -m recipes.pipeline --config configs/tiny/pipeline.yaml

Each stage runs in its own process, `python -m recipes.<stage> --config <its config>`, writing to `run_dir/<stage>`
and reading the stages before it from there; `in_process: true` runs them one after another in the pipeline's own
process instead (the tiny CPU pipeline does: it saves each stage's imports). `judge` is `recipes.reward` again, on
the comparisons the policy's reward model never sees (`compare`'s `judge_comparisons`): the held-out reward model
the evaluation grades the policy with. A stage whose directory is complete (it has `stage.json`) is skipped, so a
rerun picks up where a killed run stopped: an unfinished training stage resumes from its last checkpoint (PPO
included: `recipes/common/resume.py`). Each stage's `inputs.json` records what it was built from: a rerun redoes,
from scratch, a stage whose config, command line or input stages changed, says why, and so redoes every stage that
reads it. `skip` leaves stages out, and their inputs then come from the next stage's own config; `base_model`
starts SFT from a pretrained model (a Hub id or a directory) instead of pretraining one. `<stage>_args` adds
command-line overrides to one stage, e.g. `sft_args: [--learning_rate, 1.0e-3]`. The evaluation writes
`run_dir/report.md` and `report.json`.
`seed` (or `--seed N`) seeds every stage and the toy world together, so
`python -m recipes.pipeline --config configs/tiny/pipeline.yaml --seed 2 --run_dir runs/seed2` is an independent
replicate (`python -m recipes.replicates` runs several and tabulates them).
`configs/tiny/fast/pipeline.yaml` runs every stage at toy size in about two minutes: a smoke test, and the
settings the notebooks run with in the tests. `accelerate_config` (one of `configs/accelerate/`) launches the
training stages (`accelerate_stages`) with `accelerate launch`, in several processes.
"""

from __future__ import annotations

import gc
import hashlib
import json
import runpy
import shlex
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import run_dir
from recipes.common.arguments import CONFIGS, NO_PPO
from recipes.common.cli import parse_config, run_main
from recipes.common.errors import ConfigError, MissingInputError

STAGES = run_dir.PIPELINE_STAGES
MODULES = {"judge": "reward"}  # a stage that runs another stage's recipe
WORLD_STAGES = ("pretrain", "sft", "compare", "ppo", "evaluate")  # the stages with a `world_seed`
TRAINING_STAGES = ("pretrain", "sft", "reward", "judge", "ppo")  # what accelerate_config can launch


@dataclass
class PipelineArguments:
    run_dir: str = field(default="runs/tiny", metadata={"help": "Every stage writes to run_dir/<stage>."})
    seed: int | None = field(default=None, metadata={
        "help": "Seeds every stage (`seed`) and the toy world (`world_seed`) together: each seed is an independent "
                "replicate of the whole pipeline. Unset: each stage's config decides."})
    base_model: str | None = field(default=None, metadata={"help": "Start SFT here instead of pretraining."})
    skip: list[str] = field(default_factory=list, metadata={"help": f"Stages to leave out, of {STAGES}."})
    world_entities: int | None = field(default=None, metadata={
        "help": "The toy world's number of animals, for every stage that uses it. Unset: each stage's config."})
    world_max_operand: int | None = field(default=None, metadata={
        "help": "The toy world's largest operand, for every stage that uses it. Unset: each stage's config."})
    accelerate_config: str | None = field(default=None, metadata={
        "help": "An accelerate config (configs/accelerate/) to launch the training stages with, in several "
                "processes. Unset: each stage is one process."})
    accelerate_stages: list[str] = field(default_factory=lambda: list(TRAINING_STAGES), metadata={
        "help": f"The stages accelerate_config launches, of {TRAINING_STAGES}; the others run in one process."})
    in_process: bool = field(default=False, metadata={
        "help": "Run the stages in this process, one after another, instead of a process each: the same models and "
                "figures, without each stage's 7-8 s of imports (the tiny pipeline on 2 CPU cores: 43 s of 390 s "
                "after pretraining). Leave it off for models that fill a GPU: a stage's memory is surely freed only "
                "when its process ends. Stages launched with accelerate_config get their own processes anyway."})
    pretrain_config: str = "configs/tiny/pretrain.yaml"
    sft_config: str = "configs/tiny/sft.yaml"
    compare_config: str = "configs/tiny/compare.yaml"
    reward_config: str = "configs/tiny/reward.yaml"
    judge_config: str = "configs/tiny/judge.yaml"
    ppo_config: str = "configs/tiny/ppo.yaml"
    evaluate_config: str = "configs/tiny/evaluate.yaml"
    pretrain_args: list[str] = field(default_factory=list)
    sft_args: list[str] = field(default_factory=list)
    compare_args: list[str] = field(default_factory=list)
    reward_args: list[str] = field(default_factory=list)
    judge_args: list[str] = field(default_factory=list)
    ppo_args: list[str] = field(default_factory=list)
    evaluate_args: list[str] = field(default_factory=list)

    def __post_init__(self):
        for stage in STAGES:
            extra = getattr(self, f"{stage}_args")
            if isinstance(extra, str):
                raise ConfigError(f"{stage}_args: {extra!r} is one string; write a list, e.g. "
                                  f"[{', '.join(extra.split())}]")
        unknown = sorted(set(self.skip) - set(STAGES))
        if unknown:
            raise ConfigError(f"skip: {unknown} are not stages; choose from {STAGES}")
        if self.accelerate_config is not None and not Path(self.accelerate_config).is_file():
            raise MissingInputError(f"accelerate_config: {self.accelerate_config} does not exist; see "
                                    "configs/accelerate/")
        other = sorted(set(self.accelerate_stages) - set(TRAINING_STAGES))
        if other:
            raise ConfigError(f"accelerate_stages: {other} are not training stages; choose from {TRAINING_STAGES}")
        if self.base_model and "pretrain" not in self.skip:
            self.skip = [*self.skip, "pretrain"]
        for stage in STAGES:
            config = getattr(self, f"{stage}_config")
            if stage not in self.skip and not Path(config).is_file():
                raise MissingInputError(f"{stage}_config: {config} does not exist")


def wiring(args: PipelineArguments, stage: str) -> list[str]:
    """The command-line arguments that point a stage at the outputs of the stages before it (only those that run
    here; a skipped stage's output comes from the next stage's own config)."""
    run = Path(args.run_dir)

    def output(source: str, *parts: str) -> Path | None:
        return run.joinpath(source, *parts) if source not in args.skip else None

    sft = output("sft", "merged")
    inputs = {
        "sft": [("--model_name_or_path", args.base_model or output("pretrain"))],
        "compare": [("--policy", sft)],
        "reward": [("--model_name_or_path", sft), ("--dataset_name", output("compare", "comparisons"))],
        "judge": [("--model_name_or_path", sft), ("--dataset_name", output("compare", "judge_comparisons"))],
        "ppo": [("--sft_model_path", sft), ("--reward_model_path", output("reward", "merged"))],
        "evaluate": [("--base_model", args.base_model or output("pretrain")), ("--sft_model", sft),
                     ("--reward_model", output("reward", "merged")), ("--ppo_model", output("ppo", "merged")),
                     ("--judge_reward_model", output("judge", "merged")),
                     ("--report_dir", run)],
    }.get(stage, [])
    wired = [item for flag, path in inputs if path is not None for item in (flag, str(path))]
    if args.seed is not None:
        wired += ["--seed", str(args.seed)] + (["--world_seed", str(args.seed)] if stage in WORLD_STAGES else [])
    for key in ("world_entities", "world_max_operand"):
        if getattr(args, key) is not None and stage in WORLD_STAGES:
            wired += [f"--{key}", str(getattr(args, key))]
    return [*wired, "--output_dir", str(run / stage)]


def stage_argv(args: PipelineArguments, stage: str) -> list[str]:
    return ["--config", getattr(args, f"{stage}_config"), *wiring(args, stage),
            *map(str, getattr(args, f"{stage}_args"))]  # YAML gives numbers; a command line is strings


def preflight(args: PipelineArguments) -> None:
    """Read every stage's config and command line as the stage will, before the first one runs: a typo in
    `ppo_args` is said now, not after pretraining, SFT and the reward model have trained. (The paths between
    stages are checked by each stage, once the stages before it have written them.)"""
    for stage in STAGES:
        if stage in args.skip:
            continue
        if stage not in CONFIGS:  # only ppo's can be missing: a TRL without PPOTrainer (1.13+)
            raise ConfigError(NO_PPO)
        try:
            parse_config(CONFIGS[stage], stage_argv(args, stage))
        except ConfigError as error:
            raise ConfigError(f"{stage} (from {stage}_config and {stage}_args): {error}") from None


INPUTS = "inputs.json"  # in each stage's directory: what the pipeline built it from


def built_from(args: PipelineArguments, stage: str, argv: list[str]) -> dict:
    """What a stage is built from: its command, its config file's text, and the identity of each stage of this run
    whose output it reads (its stage.json's text and time: a stage redone is a new input even if its figures are
    the same)."""
    run = Path(args.run_dir).resolve()
    upstream = set()
    for value in argv:
        try:
            upstream.add(Path(value).resolve().relative_to(run).parts[0])
        except (ValueError, IndexError):
            continue
    inputs = {}
    for source in sorted(upstream & set(STAGES) - {stage}):
        marker = run / source / run_dir.MARKER
        inputs[source] = (f"{hashlib.sha256(marker.read_bytes()).hexdigest()[:16]}@{marker.stat().st_mtime_ns}"
                          if marker.exists() else None)
    config = Path(argv[1])
    built = {"command": argv, "config": config.read_text() if config.is_file() else None, "inputs": inputs}
    launcher = launch(args, stage)
    if launcher:  # the number of processes sets the global batch: another launch is another stage
        accelerate = Path(args.accelerate_config)
        built["launch"] = {"config": str(accelerate), "text": accelerate.read_text()}
    return built


def launch(args: PipelineArguments, stage: str) -> list[str]:
    """What a stage's `-m recipes.<stage>` runs under: `accelerate launch --config_file ...`, or nothing."""
    if args.accelerate_config is None or stage not in args.accelerate_stages:
        return []
    return ["-m", "accelerate.commands.launch", "--config_file", args.accelerate_config]


def changes(recorded: dict, current: dict) -> list[str]:
    """Why a stage built from `recorded` is stale now."""
    why = [f"{source} was redone" for source in current["inputs"]
           if recorded.get("inputs", {}).get(source) != current["inputs"][source]]
    if recorded.get("config") != current["config"]:
        why.append(f"its config {current['command'][1]} changed")
    if recorded.get("command") != current["command"]:
        why.append("its command line changed")
    if recorded.get("launch") != current.get("launch"):
        why.append("it is launched differently (accelerate_config)")
    return why


def run_stage(args: PipelineArguments, stage: str, *, in_process: bool = False) -> float | str:
    """Run one stage on the outputs of the ones before it, unless it is skipped or already complete and built from
    the same inputs: in its own process, or in this one (`args.in_process`; `in_process=True` for notebooks, whose
    cells show the progress). A stage whose inputs changed (its config, its command, a stage it reads that was
    redone) is removed and redone, and so, in turn, is every stage after it that reads it. Returns its seconds, or
    why it did not run."""
    out = Path(args.run_dir) / stage
    if stage in args.skip:
        return "skipped"
    argv = stage_argv(args, stage)
    current = built_from(args, stage, argv)
    recorded = json.loads((out / INPUTS).read_text()) if (out / INPUTS).exists() else None
    if recorded is not None and changes(recorded, current):
        print(f"== {stage}: redone from scratch, built from other inputs ({'; '.join(changes(recorded, current))})")
        shutil.rmtree(out)  # its checkpoints too: a resume must not pick up a run of other inputs
    elif run_dir.is_complete(out):
        if recorded is None:  # complete before the pipeline kept this record: taken as built from these inputs
            (out / INPUTS).write_text(json.dumps(current, indent=2))
        print(f"== {stage}: already complete in {out}, skipped (delete the directory to redo it)")
        return "complete"
    out.mkdir(parents=True, exist_ok=True)
    (out / INPUTS).write_text(json.dumps(current, indent=2))
    module = f"recipes.{MODULES.get(stage, stage)}"
    launcher = launch(args, stage)
    command = [sys.executable, *launcher, "-m", module, *argv]
    here = (in_process or args.in_process) and not launcher  # several processes cannot run in this one
    print(f"== {stage}: {shlex.join(command)}{' (in this process)' if here else ''}", flush=True)
    start = time.time()
    failed = SystemExit(f"pipeline: stage '{stage}' failed (see above); fix it and rerun the same command: "
                        "completed stages are skipped")
    if here:
        saved, sys.argv = sys.argv, [f"{module.replace('.', '/')}.py", *argv]
        try:
            with warnings.catch_warnings():  # the recipe is imported already (its config class): run as __main__
                warnings.filterwarnings("ignore", "'recipes\\.", RuntimeWarning)
                runpy.run_module(module, run_name="__main__")
        except SystemExit as error:  # a refused input: the stage said why
            if error.code not in (None, 0):
                raise failed from None
        except Exception:  # a crash: its traceback, then the same advice as a stage in its own process
            traceback.print_exc()
            raise failed from None
        finally:
            sys.argv = saved
            gc.collect()  # the stage's models, before the next stage loads its own
    elif subprocess.run(command).returncode != 0:
        raise failed
    seconds = round(time.time() - start, 1)
    print(f"== {stage}: done in {seconds:.0f} s", flush=True)
    return seconds


def main(args: PipelineArguments) -> dict:
    preflight(args)
    if args.base_model:
        run_dir.check_input(args.base_model, "base_model", "causal_lm")
    if (Path(args.run_dir) / run_dir.MARKER).is_file():
        raise ConfigError(f"run_dir: {args.run_dir} is a stage's directory (it holds {run_dir.MARKER}), not a run's; "
                          "choose a directory for the whole run (its stages go in subdirectories)")
    run = run_dir.check_writable(args.run_dir, "run_dir")  # made here, or said why not
    run_dir.save_config(run, args, name="pipeline.yaml")
    path = run / "timings.json"  # each stage's seconds; a stage skipped as complete keeps the time it took to run
    earlier = json.loads(path.read_text()) if path.exists() else {}
    timings = {}
    for stage in STAGES:
        timings[stage] = run_stage(args, stage)
        recorded = {s: earlier[s] if t == "complete" and isinstance(earlier.get(s), (int, float)) else t
                    for s, t in timings.items()}
        path.write_text(json.dumps(earlier | recorded, indent=2))
    if (run / "report.md").exists():
        print(f"report: {run / 'report.md'}")
    return timings


if __name__ == "__main__":
    run_main(main, (PipelineArguments,))
