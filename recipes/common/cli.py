"""Command-line and YAML parsing shared by every recipe: TRL's `TrlParser`, strict about unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
import gc
import os
import re
import sys
import types
import typing
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
        parsed = parse_config(dataclass_types, args)
        # What is alive now (torch, transformers, trl and the rest: ~500,000 objects) lives as long as the process.
        # Set it aside from Python's cycle collector, which would otherwise walk all of it at every full collection:
        # TRL's PPO loop asks for two a step, ~0.35 s each on 2 cores (half of the toy PPO stage's time). The stage's
        # own objects (models, datasets) are still collected as usual.
        gc.collect()
        gc.freeze()
        return main(*parsed)
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
    # argparse takes "-3e-3" for an option (it knows only plain negative numbers): keep it as its flag's value
    args = [f"{a}={args[i + 1]}" if a.startswith("--") and i + 1 < len(args) and _NEGATIVE.fullmatch(args[i + 1])
            else a for i, a in enumerate(args) if not (i and _NEGATIVE.fullmatch(a) and args[i - 1].startswith("--"))]
    if args.count("--config") > 1:
        raise ConfigError("--config is given twice; give one config file and change single keys on the command "
                          "line (--key value)")
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    where = f"{config_path}: " if config_path else ""
    if config_path is not None:
        problems = yaml_types(check_yaml(config_path), dataclass_types)
        if problems:
            raise ConfigError("\n".join(where + p for p in problems))
    parser = TrlParser(dataclass_types, allow_abbrev=False)  # `--num_gen 4` is a typo, not num_generations
    try:
        *parsed, config_rest, cli_rest = parser.parse_args_and_config(
            args, return_remaining_strings=True, separate_remaining_strings=True
        )
    except (ValueError, TypeError) as error:  # a config class's own check, e.g. TrainingArguments' bf16 on a CPU
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


_NEGATIVE = re.compile(r"-\d[\d.]*[eE][-+]?\d+")


def yaml_types(data: dict, dataclass_types: Sequence[type]) -> list[str]:
    """YAML values whose type their field cannot take, said before the config classes' own checks trip on them."""
    return _type_problems(dataclass_types, data.get)


def _type_problems(dataclass_types: Sequence[type], value_of) -> list[str]:
    """Each field of `dataclass_types` whose value (`value_of(name)`, None for unset) has a type it cannot take."""
    problems = []
    for cls in dataclass_types:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # a field annotated with a name this module cannot resolve: nothing to check
            continue
        for f in dataclasses.fields(cls):
            value = value_of(f.name)
            if value is not None:
                problems += _type_problem(f.name, value, _simple(hints.get(f.name)))
    return list(dict.fromkeys(problems))


def _type_problem(key: str, value, wanted) -> list[str]:
    if wanted is None:
        return []
    name, ok = {bool: ("true or false", lambda v: isinstance(v, bool)),
                int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
                float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                        or isinstance(v, str) and _is_number(v)),  # YAML reads 1e-3 as text; the parser converts
                str: ("text", lambda v: isinstance(v, str)),
                list: ("a list", lambda v: isinstance(v, (list, str)))}[wanted]  # "all-linear" is a value
    return [] if ok(value) else [f"{key}: {value!r} is not {name}"]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def check_yaml(path: str) -> dict:
    """A config file that exists, parses, and is a mapping of keys to values, each given once."""
    if os.path.isdir(path):
        raise ConfigError(f"--config: {path} is a directory; give one YAML file in it (configs/ has one per stage)")
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
    return data


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
    ("response_length", lambda v: v >= 1, "must be 1 or more: the longest response PPO samples"),
    ("max_completion_length", lambda v: v >= 1, "must be 1 or more: the longest completion sampled"),
    ("missing_eos_penalty", lambda v: v >= 0, "must be 0 or more: it is taken off the reward of a response that "
                                              "never ends, so a negative one rewards rambling"),
    ("temperature", lambda v: v > 0, "must be above 0 (1.0 samples from the model as it is)"),
    ("labeler_temperature", lambda v: v >= 0, "must be 0 or more (0: the labeler never errs)"),
    ("cliprange", lambda v: v > 0, "must be above 0 (0.2 is usual)"),
    ("cliprange_value", lambda v: v > 0, "must be above 0 (0.2 is usual)"),
    ("gamma", lambda v: 0 < v <= 1, "must be in (0, 1] (a discount factor; 1.0 is usual)"),
    ("lam", lambda v: 0 < v <= 1, "must be in (0, 1] (GAE's lambda; 0.95 is usual)"),
    ("vf_coef", lambda v: v >= 0, "must be 0 or more"),
    ("save_steps", lambda v: v > 0, "must be above 0: the steps between checkpoints a killed run resumes from"),
    ("save_total_limit", lambda v: v >= 1, "must be 1 or more (or unset: keep every checkpoint)"),
    ("logging_steps", lambda v: v > 0, "must be above 0"),
    ("weight_decay", lambda v: v >= 0, "must be 0 or more"),
    ("lora_r", lambda v: v >= 1, "must be 1 or more (the adapter's rank, e.g. 16)"),
    ("lora_alpha", lambda v: v > 0, "must be above 0 (often twice lora_r)"),
    ("lora_dropout", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("gold_eval_steps", lambda v: v >= 0, "must be 0 (no checks) or more"),
    ("gold_eval_prompts", lambda v: v >= 0, "must be 0 (no checks) or more"),
    ("num_eval_prompts", lambda v: v >= 0, "must be 0 (no evaluation) or more"),
    ("num_demonstrations", lambda v: v >= 1, "must be 1 or more"),
    ("num_documents", lambda v: v >= 1, "must be 1 or more"),
    ("num_eval_documents", lambda v: v >= 1, "must be 1 or more: the held-out loss needs documents"),
    ("num_probe_documents", lambda v: v >= 0, "must be 0 (no probes) or more"),
    ("num_samples", lambda v: v >= 0, "must be 0 or more"),
    ("sample_max_new_tokens", lambda v: v >= 1, "must be 1 or more"),
    ("vocab_size", lambda v: v > 260, "must be above 260: the 256 byte tokens and 4 special tokens come first"),
    ("block_size", lambda v: v >= 2, "must be 2 or more"),
    ("hidden_size", lambda v: v >= 1, "must be 1 or more"),
    ("intermediate_size", lambda v: v >= 1, "must be 1 or more"),
    ("num_hidden_layers", lambda v: v >= 1, "must be 1 or more"),
    ("num_attention_heads", lambda v: v >= 1, "must be 1 or more"),
    ("max_prompt_tokens", lambda v: v >= 1, "must be 1 or more"),
    ("max_eval_pairs", lambda v: v >= 1, "must be 1 or more: the reward model's accuracy is measured on them"),
    ("max_dropped_fraction", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    ("min_reward_accuracy", lambda v: 0 <= v <= 1, "must be between 0 and 1 (0 turns the check off)"),
    ("best_of_n", lambda v: v >= 0, "must be 0 (left out) or more"),
    ("fewshot_shots", lambda v: v >= 0, "must be 0 or more"),
    ("llm_judge_batch_size", lambda v: v >= 1, "must be 1 or more"),
    ("limit", lambda v: v >= 1, "must be 1 or more (examples per task)"),
    ("num_fewshot", lambda v: v >= 0, "must be 0 or more"),
    ("seed", lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    ("world_seed", lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    ("world_entities", lambda v: v >= 2, "must be 2 or more (the toy world's animals)"),
    ("world_max_operand", lambda v: v >= 1, "must be 1 or more"),
    ("eval_steps", lambda v: v > 0, "must be above 0 (or unset: logging_steps)"),
    ("warmup_steps", lambda v: v >= 0, "must be 0 or more"),
    *((rate, lambda v: 0 <= v <= 1, "must be between 0 and 1 (a share of the demonstrations)")
      for rate in ("wrong_rate", "verbose_rate", "rude_rate", "missed_refusal_rate", "over_refusal_rate")),
)


def relations(config) -> list[str]:
    """Values fine alone and impossible together."""
    get = lambda key: getattr(config, key, None)  # noqa: E731
    problems = []
    if isinstance(get("hidden_size"), int) and isinstance(get("num_attention_heads"), int) \
            and get("num_attention_heads") >= 1 and get("hidden_size") % get("num_attention_heads"):
        problems.append(f"hidden_size: {get('hidden_size')} is not a multiple of num_attention_heads "
                        f"({get('num_attention_heads')}): each head takes an equal share; change either")
    if all(isinstance(get(k), int) and get(k) >= 1 for k in ("total_episodes", "num_mini_batches",
                                                             "per_device_train_batch_size",
                                                             "gradient_accumulation_steps")):
        batch = get("per_device_train_batch_size") * get("gradient_accumulation_steps")  # episodes per PPO update
        if get("total_episodes") < batch:
            problems.append(f"total_episodes: {get('total_episodes')} is less than one PPO batch "
                            f"(per_device_train_batch_size {get('per_device_train_batch_size')} x "
                            f"gradient_accumulation_steps {get('gradient_accumulation_steps')} = {batch}); raise "
                            "total_episodes or lower the batch")
        if batch % get("num_mini_batches"):
            problems.append(f"num_mini_batches: {get('num_mini_batches')} does not divide the PPO batch of {batch} "
                            "episodes (per_device_train_batch_size x gradient_accumulation_steps); choose a divisor")
    wanted = get("report_to") if isinstance(get("report_to"), list) else []
    missing = [r for r in wanted if r not in ("none", "all") and r not in _available_trackers()]
    if missing:
        problems.append(f"report_to: {missing} not installed here (installed: {_available_trackers() or 'none'}); "
                        "pip install it, or choose report_to: none or tensorboard")
    modules = get("lora_target_modules")
    if isinstance(modules, str) and modules != "all-linear" and re.search(r"[,\s]", modules):
        names = ", ".join(m for m in re.split(r"[,\s]+", modules) if m)
        problems.append(f"lora_target_modules: {modules!r} is one string (peft reads it as one pattern); write a "
                        f"list, e.g. [{names}], or all-linear")
    return problems


def _available_trackers() -> list[str]:
    from transformers.integrations import get_available_reporting_integrations

    return get_available_reporting_integrations()


def wrong_types(config) -> list[str]:
    """Keys whose value has a type its field cannot take (`max_steps: 2.5`, `lora_r: [8]`), in a parsed config: the
    parser keeps YAML values as they are, and they would fail later with a library's error, or not at all."""
    return _type_problems([type(config)], lambda name: getattr(config, name, None))


def _simple(hint):
    """bool, int, float, str or list where `hint` is one of them (or it or None); None for anything else."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _simple(options[0]) if len(options) == 1 else None
    if typing.get_origin(hint) is list or hint is list:
        return list
    return hint if hint in (bool, int, float, str) else None


CHOICES = {"invalid_rows": ("error", "skip")}  # keys whose value is one of a few words, checked even where unused


def out_of_range(config) -> list[str]:
    """Each key of `config` (a parsed dataclass) whose value cannot give a meaningful run, with what to do; the
    training length counts as set when `max_steps` is (it overrides `num_train_epochs`)."""
    problems = wrong_types(config)
    wrong = {p.split(":")[0] for p in problems}
    for key, ok, fix in RANGES:
        value = getattr(config, key, None)
        if key in wrong:
            continue
        if key == "num_train_epochs" and (getattr(config, "max_steps", -1) or -1) > 0:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
            problems.append(f"{key}: {value} {fix}")
    for key, allowed in CHOICES.items():
        if hasattr(config, key) and getattr(config, key) not in allowed:
            problems.append(f"{key}: {getattr(config, key)!r} is not one of {list(allowed)}")
    return problems + (relations(config) if not problems else [])


def _unknown(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key.split("=")[0], known, n=1)
    return f"{what} '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
