"""Loading datasets from wherever users keep them: a Hub id, local JSON/JSONL/CSV/Parquet/text files, or a
directory written by `Dataset.save_to_disk`."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, DatasetDict, ReadInstruction, concatenate_datasets, load_dataset, load_from_disk

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_any(name: str, config: str | None = None, split: str = "train") -> Dataset:
    path = Path(name)
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        loaded = load_from_disk(str(path))
        if not isinstance(loaded, DatasetDict):
            return loaded
        if "[" not in split:
            return loaded[split]
        # a slice of a split, "train[:60%]", as load_dataset reads it
        sizes = {name: len(d) for name, d in loaded.items()}
        parts = ReadInstruction.from_spec(split).to_absolute(sizes)
        return concatenate_datasets([loaded[p.splitname].select(range(p.from_, p.to)) for p in parts])
    suffix = "".join(s for s in path.suffixes if s in _BUILDERS) or path.suffix
    if path.is_file() or (suffix in _BUILDERS and "*" in name):
        if suffix not in _BUILDERS:
            raise ValueError(f"{name}: unknown file type; use one of {sorted(_BUILDERS)} or a Hub dataset id")
        # A file is one split, "train"; a slice of it ("train[:90%]", "train[90%:]") keeps the split's own slice
        base, part = (split[:split.index("[")], split[split.index("["):]) if "[" in split else (split, "")
        if base != "train":
            raise ValueError(f"{name} is one file, so its only split is 'train', not {split!r}: to hold rows out, "
                             "split it by slices (e.g. train[:90%] to train on and train[90%:] to test on), or give "
                             "a directory written by save_to_disk with a test split")
        return load_dataset(_BUILDERS[suffix], data_files=name, split=f"train{part}")
    if path.suffix in _BUILDERS or name.startswith((".", "/")):
        raise FileNotFoundError(f"{name}: no such file or directory")
    return load_dataset(name, config, split=split)  # a Hub dataset id


def load_prompts(name: str, config: str | None, split: str, column: str = "prompt",
                 limit: int | None = None) -> list[str]:
    """Distinct user prompts of a dataset: its `column` of strings, or the last user turn of any conversational
    layout `recipes/common/formats.py` reads (messages, hh-rlhf, preference pairs...)."""
    from recipes.common.formats import to_sft

    raw = load_any(name, config, split)
    if column in raw.column_names and not {"chosen", "rejected"} <= set(raw.column_names):
        prompts = [p for p in raw[column] if isinstance(p, str) and p.strip()]
    else:
        prompts = [row["messages"][-2]["content"] for row in to_sft(raw, name, "skip")[0]]
    return list(dict.fromkeys(prompts))[:limit]
