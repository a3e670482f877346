"""Labeling files for people: export K responses per prompt as JSONL or CSV, import the filled-in rankings.

A ranking lists the responses best first by their 1-based number, e.g. `3>1>4>2` in CSV or `[3, 1, 4, 2]` in
JSONL. Every response is ranked once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from recipes.common.errors import ConfigError, InputError, NotWritableError


class LabelingError(InputError):
    """A row of a filled-in labeling file that cannot be read; names file, row and field."""


def check_path(path: str | Path | None, key: str) -> None:
    """A labeling file to write: set, .jsonl or .csv, in a directory that can be made (said before sampling)."""
    if not path:
        raise ConfigError(f"{key} is not set; name the .jsonl or .csv file to write for the labelers")
    if Path(path).suffix not in (".csv", ".jsonl"):
        raise ConfigError(f"{key} {path}: use a .jsonl or .csv file")
    blocked = next((d for d in Path(path).resolve().parents if d.exists() and not d.is_dir()), None)
    if blocked is not None:
        raise NotWritableError(f"{key}: cannot write {path}: {blocked} is a file; choose another path")


def export(path: str | Path, prompts: list[str], responses: list[list[str]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": i, "prompt": p, **{f"response_{k + 1}": r for k, r in enumerate(rs)}, "ranking": ""}
            for i, (p, rs) in enumerate(zip(prompts, responses))]
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({**r, "ranking": None}) + "\n" for r in rows))
    else:
        raise ConfigError(f"labeling_file {path}: use a .jsonl or .csv file")
    return path


def load(path: str | Path) -> tuple[list[str], list[list[str]], list[list[int]]]:
    """(prompts, responses, rankings as 0-based indices best first) from a filled-in labeling file."""
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise LabelingError(f"{path}: line {number}: not valid JSON ({error.msg}); fix the line") from None
    else:
        raise ConfigError(f"rankings_file {path}: use a .jsonl or .csv file")
    prompts, responses, rankings = [], [], []
    for n, row in enumerate(rows, start=1):
        keys = sorted((k for k in row if k.startswith("response_")), key=lambda k: int(k.split("_")[1]))
        if "prompt" not in row or len(keys) < 2:
            raise LabelingError(f"{path}: row {n}: needs 'prompt' and at least two 'response_N' fields")
        ranking = row.get("ranking")
        if isinstance(ranking, str):
            parts = ranking.replace(" ", "").split(">")
            ranking = [int(x) for x in parts] if all(x.isdigit() for x in parts) else None
        if not isinstance(ranking, list) or not ranking or sorted(ranking) != list(range(1, len(keys) + 1)):
            raise LabelingError(f"{path}: row {n}: field 'ranking': {row.get('ranking')!r} must order all of "
                                f"1..{len(keys)} once, best first (e.g. {'>'.join(map(str, range(len(keys), 0, -1)))})")
        if row["prompt"] in prompts:
            raise LabelingError(f"{path}: row {n}: its prompt is row {prompts.index(row['prompt']) + 1}'s again; "
                                "rank each prompt's responses in one row (a prompt twice could land in both the "
                                "train and the test pairs)")
        prompts.append(row["prompt"])
        responses.append([row[k] for k in keys])
        rankings.append([r - 1 for r in ranking])
    return prompts, responses, rankings
