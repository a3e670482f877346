"""Loading datasets from wherever users keep them: a Hub id, local JSON/JSONL/CSV/Parquet/text files, or a
directory written by `Dataset.save_to_disk`.

Local JSON and JSONL files are read row by row with Python's own `json`, not by `datasets`' JSON builder: given one
number among a column of strings, that builder retypes the whole column (every "2." then reads back as 2.0, and
every row is reported wrong). Here each value keeps its type, and a value whose type differs from the rest of its
column is named by line and field; with `invalid_rows: skip` it is blanked, so that its row alone is dropped.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
from collections import Counter
from pathlib import Path

from datasets import (
    Dataset,
    DatasetDict,
    Features,
    ReadInstruction,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)

from recipes.common.errors import ConfigError, InputError, MissingInputError

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_any(name: str, config: str | None = None, split: str = "train", invalid_rows: str = "error") -> Dataset:
    path = Path(name)
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        try:
            loaded = load_from_disk(str(path))
        except IndexError:  # datasets writes an empty split with no data shard, and then cannot read it back
            raise InputError(f"{name}: one of its splits has no rows (datasets cannot load such a directory); save "
                             "only splits that have rows") from None
        if not isinstance(loaded, DatasetDict):
            return loaded
        base = split.split("[")[0]
        if base not in loaded:
            raise ConfigError(f"{name} has no split {base!r} (it has {list(loaded)}); set the stage's split key "
                              "(dataset_train_split, dataset_test_split...) to one of them")
        rows = loaded[split] if "[" not in split or len(loaded[base]) == 0 else _slice(loaded, split)
        if len(rows) == 0:
            raise InputError(f"{name}: split {split!r} has no rows; give it rows or choose another split")
        return rows
    suffix = "".join(s for s in path.suffixes if s in _BUILDERS) or path.suffix
    if path.is_file() or (suffix in _BUILDERS and "*" in name):
        if suffix not in _BUILDERS:
            raise InputError(f"{name}: unknown file type; use one of {sorted(_BUILDERS)} or a Hub dataset id")
        # A file is one split, "train"; a slice of it ("train[:90%]", "train[90%:]") keeps the split's own slice
        base, part = (split[:split.index("[")], split[split.index("["):]) if "[" in split else (split, "")
        if base != "train":
            raise ConfigError(f"{name} is one file, so its only split is 'train', not {split!r}: to hold rows out, "
                             "split it by slices (e.g. train[:90%] to train on and train[90%:] to test on), or give "
                             "a directory written by save_to_disk with a test split")
        if "*" in name and not glob.glob(name):
            raise MissingInputError(f"{name}: matches no file")
        try:
            if _BUILDERS[suffix] == "json" and path.is_file() and path.suffix in (".json", ".jsonl", ".gz"):
                rows = _slice(DatasetDict(train=_read_json(path, invalid_rows)), f"train{part}")
            elif _BUILDERS[suffix] == "csv" and path.is_file():  # every cell as text, an empty one as "" (pandas
                # would make a column of answers like "4" numbers, and an empty cell a NaN in every row's type)
                with open(path, newline="", encoding="utf-8") as f:
                    header = next(csv.reader(f), [])
                rows = load_dataset("csv", data_files=name, split=f"train{part}", keep_default_na=False,
                                    features=Features({column: Value("string") for column in header}))
            else:
                rows = load_dataset(_BUILDERS[suffix], data_files=name, split=f"train{part}")
        except UnicodeDecodeError as error:
            raise InputError(f"{name}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
        except (InputError, ConfigError):
            raise
        except Exception as error:  # pyarrow's and datasets' own: a file that is not what its name says, or empty
            raise InputError(f"{name}: cannot be read as {_BUILDERS[suffix]} ({type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else 'no rows'}); check that the file "
                             "holds what its extension says, with at least one row") from None
        if len(rows) == 0:
            raise InputError(f"{name}: has no rows; give a file with data")
        return rows
    if path.is_dir():
        if not any(f.suffix in _BUILDERS for f in path.rglob("*") if f.is_file()):
            raise InputError(f"{name} is a directory, but neither one save_to_disk wrote (no dataset_info.json or "
                             f"dataset_dict.json) nor one holding data files ({sorted(_BUILDERS)}); point at a file "
                             "or such a directory")
        return load_dataset(str(path), split=split)  # a directory of data files, read as the Hub would
    if path.suffix in _BUILDERS or name.startswith((".", "/")):
        raise MissingInputError(f"{name}: no such file or directory")
    try:
        return load_dataset(name, config, split=split)  # a Hub dataset id
    except (ConnectionError, OSError, FileNotFoundError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise InputError(f"{name}: not a local path, and not loadable as a Hub dataset id here "
                         f"({type(error).__name__}: {first}); fix the path, or download the dataset first "
                         "(offline: HF_DATASETS_OFFLINE=1 needs it in the cache)") from None


def check_fit(what: str, lengths: list[int], max_length: int | None, max_dropped_fraction: float,
              dropped_from: list[int] | None = None, say: bool = True) -> dict:
    """Say, before training, what `max_length` does to the data: rows whose `lengths` (tokens) exceed it are cut
    short, or dropped by the trainer; with `dropped_from` (SFT: the prompt's length), a row is dropped when that
    alone fills max_length (truncation leaves no reply to learn). More than `max_dropped_fraction` of the rows
    dropped (or all of them) is refused, naming the key to change. Returns the counts for stage.json."""
    if max_length is None or not lengths:
        return {"rows": len(lengths), "dropped_by_max_length": 0, "cut_by_max_length": 0}
    if dropped_from is None:  # the trainer drops what is longer
        dropped, cut = sum(n > max_length for n in lengths), 0
    else:  # the trainer cuts what is longer; what is cut before its reply is as good as dropped
        dropped = sum(p >= max_length for p in dropped_from)
        cut = sum(n > max_length > p for n, p in zip(lengths, dropped_from))
    counts = {"rows": len(lengths), "dropped_by_max_length": dropped, "cut_by_max_length": cut}
    if say:
        print(f"max_length={max_length}: of {len(lengths)} {what}, {dropped} dropped (too long to train on), {cut} "
              f"cut short; the longest has {max(lengths)} tokens")
    if dropped == len(lengths) or dropped > max_dropped_fraction * len(lengths):
        raise InputError(f"max_length: {max_length} drops {dropped} of {len(lengths)} {what} "
                         f"({dropped / len(lengths):.0%}), more than max_dropped_fraction={max_dropped_fraction}: "
                         f"raise max_length (the longest has {max(lengths)} tokens), filter out the long rows, or "
                         "raise max_dropped_fraction")
    return counts


def _slice(splits: DatasetDict, split: str) -> Dataset:
    """A split, or a slice of splits ("train[:60%]"), as load_dataset reads it."""
    if "[" not in split:
        return splits[split]
    parts = ReadInstruction.from_spec(split).to_absolute({name: len(d) for name, d in splits.items()})
    return concatenate_datasets([splits[p.splitname].select(range(p.from_, p.to)) for p in parts])


def _kind(value) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _leaves(value, path: str):
    """(path, kind) of every value inside `value`; list items share their list's path ("messages[].content")."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        yield path, "a list"
        for item in value:
            yield from _leaves(item, f"{path}[]")
    elif value is not None:
        yield path, _kind(value)


def _read_json(path: Path, invalid_rows: str) -> Dataset:
    """A JSON (a list of objects) or JSONL file as a Dataset whose values keep their types; see the docstring."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        rows, lines = json.loads(text), None
    else:
        rows, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}: line {number}: not valid JSON ({error.msg}); fix the line") from None
                lines.append(number)
    where = [f"line {n}" for n in lines] if lines else [f"row {i}" for i in range(1, len(rows) + 1)]
    for row, place in zip(rows, where):
        if not isinstance(row, dict):
            raise InputError(f"{path}: {place}: expected an object of fields, got {_kind(row)}")
    kinds: dict[str, Counter] = {}
    for row in rows:
        for key, value in row.items():
            for leaf, kind in set(_leaves(value, key)):
                kinds.setdefault(leaf, Counter())[kind] += 1
    usual = {leaf: counts.most_common(1)[0][0] for leaf, counts in kinds.items()}  # each field's kind in most rows
    for row, place in zip(rows, where):
        for key in list(row):
            odd = next(((leaf, kind) for leaf, kind in _leaves(row[key], key) if usual[leaf] != kind), None)
            if odd is None:
                continue
            if invalid_rows != "skip":
                raise InputError(f"{path}: {place}: field '{odd[0]}' is {odd[1]} where the other rows have "
                                 f"{usual[odd[0]]}; fix the row (quote text as a JSON string), or set "
                                 "invalid_rows: skip to drop such rows")
            row[key] = None  # the row fails its format check and is dropped and counted there
    return Dataset.from_list(rows)


def load_prompts(name: str, config: str | None, split: str, column: str = "prompt",
                 limit: int | None = None) -> list[str]:
    """Distinct user prompts of a dataset: its `column` of strings, or the last user turn of any conversational
    layout `recipes/common/formats.py` reads (messages, hh-rlhf, preference pairs...)."""
    from recipes.common.formats import to_sft

    raw = load_any(name, config, split)
    if column in raw.column_names and not {"chosen", "rejected"} <= set(raw.column_names):
        bad = next(((i, p) for i, p in enumerate(raw[column], start=1) if not isinstance(p, str)), None)
        if bad is not None:
            raise InputError(f"{name}: row {bad[0]}: field '{column}' is {_kind(bad[1])}, not a prompt's text; fix "
                             "or remove the row")
        prompts = [p for p in raw[column] if p.strip()]
        if len(prompts) < len(raw):
            print(f"{name}: {len(raw) - len(prompts)} empty prompts left out")
        if not prompts:
            raise InputError(f"{name}: every row's '{column}' is empty; give prompts")
    else:
        prompts = [row["messages"][-2]["content"] for row in to_sft(raw, name, "skip")[0]]
    return list(dict.fromkeys(prompts))[:limit]
