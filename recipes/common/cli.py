"""Command-line and YAML parsing shared by every recipe: TRL's `TrlParser`, strict about unknown keys."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

from trl import TrlParser


class ConfigError(ValueError):
    """A config file or command line names something the recipe does not know."""


def parse_config(dataclass_types: Sequence[type], args: Sequence[str] | None = None) -> tuple:
    """Parse `--config file.yaml` plus command-line overrides into `dataclass_types`.

    TRL's parser already rejects unknown YAML keys; this names the file, the key and the nearest known key, and
    rejects unknown command-line flags the same way, before anything is loaded or trained.
    """
    args = list(sys.argv[1:] if args is None else args)
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    parser = TrlParser(dataclass_types)
    *parsed, config_rest, cli_rest = parser.parse_args_and_config(
        args, return_remaining_strings=True, separate_remaining_strings=True
    )
    known = sorted(action.dest for action in parser._actions)
    problems = [_unknown(key[2:], known, f"{config_path}: unknown key") for key in config_rest[::2]]
    problems += [_unknown(flag.lstrip("-"), known, "unknown command-line argument")
                 for flag in cli_rest if flag.startswith("--")]
    if cli_rest and not problems:
        problems.append(f"unexpected command-line arguments {cli_rest}")
    if problems:
        raise ConfigError("\n".join(problems) + "\nFix the spelling or remove it; `--help` lists every key.")
    return tuple(parsed)


def _unknown(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key.split("=")[0], known, n=1)
    return f"{what} '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
