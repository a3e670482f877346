"""Command-line and YAML parsing shared by every recipe: TRL's `TrlParser`, strict about unknown keys."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence

import yaml
from trl import TrlParser

from recipes.common.errors import ConfigError, MissingInputError, UserError

DEBUG_FLAG, DEBUG_ENV = "--debug", "RECIPES_DEBUG"


def run_main(main: Callable, dataclass_types: Sequence[type], args: Sequence[str] | None = None):
    """A recipe's `__main__`: parse the config, call `main`, and show a user error as its message alone.

    `--debug` anywhere on the command line (or RECIPES_DEBUG=1 in the environment, which the pipeline's stages
    inherit) shows the traceback too. Exit status 2 means the input was refused, before any training.
    """
    args = list(sys.argv[1:] if args is None else args)
    if DEBUG_FLAG in args:
        args.remove(DEBUG_FLAG)
        os.environ[DEBUG_ENV] = "1"
    try:
        return main(*parse_config(dataclass_types, args))
    except UserError as error:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"error: {error}\n(the input was refused before training; {DEBUG_FLAG} shows the traceback)",
              file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def parse_config(dataclass_types: Sequence[type], args: Sequence[str] | None = None) -> tuple:
    """Parse `--config file.yaml` plus command-line overrides into `dataclass_types`.

    TRL's parser already rejects unknown YAML keys; this names the file, the key and the nearest known key, and
    rejects unknown command-line flags the same way, before anything is loaded or trained.
    """
    args = list(sys.argv[1:] if args is None else args)
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    if config_path is not None:
        check_yaml(config_path)
    where = f"{config_path}: " if config_path else ""
    parser = TrlParser(dataclass_types, allow_abbrev=False)  # `--num_gen 4` is a typo, not num_generations
    try:
        *parsed, config_rest, cli_rest = parser.parse_args_and_config(
            args, return_remaining_strings=True, separate_remaining_strings=True
        )
    except ValueError as error:  # a config class's own check, e.g. TrainingArguments' bf16 on a machine without it
        raise ConfigError(f"{where}{error}") from error
    known = sorted(action.dest for action in parser._actions)
    problems = [_unknown(key[2:], known, f"{config_path}: unknown key") for key in config_rest[::2]]
    problems += [_unknown(flag.lstrip("-"), known, "unknown command-line argument")
                 for flag in cli_rest if flag.startswith("--")]
    if cli_rest and not problems:
        problems.append(f"unexpected command-line arguments {cli_rest}")
    if problems:
        raise ConfigError("\n".join(problems) + "\nFix the spelling or remove it; `--help` lists every key.")
    problems = [p for config in parsed for p in out_of_range(config)]
    if problems:
        raise ConfigError("\n".join(where + p for p in problems))
    return tuple(parsed)


class _StrictLoader(yaml.SafeLoader):
    """YAML's loader, except that a key given twice is an error: PyYAML would keep the last one without a word."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice (the second would silently win)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def check_yaml(path: str) -> None:
    """A config file that exists, parses, and is a mapping of keys to values, each given once."""
    if not os.path.isfile(path):
        raise MissingInputError(f"--config: {path} does not exist; give the path of a YAML config (configs/ has "
                                "one per stage)")
    try:
        with open(path, encoding="utf-8") as file:
            data = yaml.load(file, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: cannot be read as YAML: {error}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values (key: value lines), not "
                          f"{'an empty file' if data is None else 'a ' + type(data).__name__}")


# Values that would train nothing, or train backwards, and still give a stage marked complete: (key, test, what to do)
RANGES = (
    ("learning_rate", lambda v: v > 0, "must be above 0 (e.g. 2.0e-4)"),
    ("num_train_epochs", lambda v: v > 0, "must be above 0, or set max_steps"),
    ("per_device_train_batch_size", lambda v: v >= 1, "must be 1 or more"),
    ("per_device_eval_batch_size", lambda v: v >= 1, "must be 1 or more"),
    ("gradient_accumulation_steps", lambda v: v >= 1, "must be 1 or more"),
    ("num_mini_batches", lambda v: v >= 1, "must be 1 or more"),
    ("num_ppo_epochs", lambda v: v >= 1, "must be 1 or more"),
    ("total_episodes", lambda v: v >= 1, "must be 1 or more"),
    ("local_rollout_forward_batch_size", lambda v: v >= 1, "must be 1 or more"),
    ("num_generations", lambda v: v >= 2, "must be 2 or more: RLOO and GRPO compare a prompt's completions"),
    ("kl_coef", lambda v: v >= 0, "must be 0 or more: a negative KL penalty pushes the policy away from SFT"),
    ("beta", lambda v: v >= 0, "must be 0 or more: a negative KL weight pushes the policy away from SFT"),
    ("batch_size", lambda v: v >= 1, "must be 1 or more"),
    ("num_prompts", lambda v: v >= 1, "must be 1 or more"),
    ("max_new_tokens", lambda v: v >= 1, "must be 1 or more"),
    ("test_fraction", lambda v: 0 < v < 1, "must be between 0 and 1 (e.g. 0.1): the reward model needs train and "
                                           "test pairs"),
)


CHOICES = {"invalid_rows": ("error", "skip")}  # keys whose value is one of a few words, checked even where unused


def out_of_range(config) -> list[str]:
    """Each key of `config` (a parsed dataclass) whose value cannot give a meaningful run, with what to do; the
    training length counts as set when `max_steps` is (it overrides `num_train_epochs`)."""
    problems = []
    for key, ok, fix in RANGES:
        value = getattr(config, key, None)
        if key == "num_train_epochs" and (getattr(config, "max_steps", -1) or -1) > 0:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
            problems.append(f"{key}: {value} {fix}")
    for key, allowed in CHOICES.items():
        if hasattr(config, key) and getattr(config, key) not in allowed:
            problems.append(f"{key}: {getattr(config, key)!r} is not one of {list(allowed)}")
    return problems


def _unknown(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key.split("=")[0], known, n=1)
    return f"{what} '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
