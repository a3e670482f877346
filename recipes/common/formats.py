"""Every supported dataset layout, converted to TRL's conversational format and checked row by row.

Layouts (detected from the columns):

| layout | columns | example source |
|---|---|---|
| messages | `messages`: [{role, content}, ...] | HuggingFaceH4/ultrachat_200k |
| prompt/completion | `prompt`, `completion` (strings or message lists) | trl-lib prompt-completion sets |
| alpaca | `instruction`, `input` (optional), `output` | tatsu-lab/alpaca |
| self-instruct seed tasks | `instruction`, `instances`: [{input, output}, ...] | Alpaca's seed_tasks.jsonl |
| hh-rlhf | `chosen`, `rejected`: "\\n\\nHuman: ... \\n\\nAssistant: ..." | Anthropic/hh-rlhf |
| preference | `prompt`?, `chosen`, `rejected` (strings or message lists) | trl-lib/ultrafeedback_binarized |

`to_sft` gives rows `{"messages": [...]}` ending in an assistant turn (preference rows contribute prompt + chosen);
`to_preference` gives `{"prompt": [...], "chosen": [assistant turn], "rejected": [assistant turn]}`.
A malformed row raises `FormatError` naming the source, the row (1-based, the line in a JSONL file) and the field;
with `invalid_rows="skip"` such rows are dropped and counted instead.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from datasets import Dataset

from recipes.common.errors import ConfigError, InputError

ROLES = ("system", "user", "assistant")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


class FormatError(InputError):
    """A row that cannot be converted; the message names source, row and field and says what to do."""


@dataclass
class Conversion:
    """What a conversion did, for the log and the stage's metrics."""

    layout: str
    rows_in: int
    rows_out: int = 0
    skipped: Counter = field(default_factory=Counter)

    def __str__(self):
        skipped = f", skipped {sum(self.skipped.values())} ({dict(self.skipped)})" if self.skipped else ""
        return f"{self.layout}: {self.rows_in} rows in, {self.rows_out} out{skipped}"


def detect_layout(columns: list[str], source: str) -> str:
    cols = set(columns)
    if "messages" in cols:
        return "messages"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    if {"instruction", "instances"} <= cols:
        return "seed_tasks"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"chosen", "rejected"} <= cols:
        return "preference"
    raise FormatError(f"{source}: unrecognized columns {sorted(cols)}. Expected one of: messages; prompt+completion; "
                      "instruction+input+output (Alpaca); instruction+instances; chosen+rejected (+prompt).")


def _messages(value, source: str, row: int, name: str, last_role: str | None = None,
              empty_last: bool = False) -> list[dict]:
    """Checked messages. `empty_last` accepts an empty final reply: a policy's sample can be empty, and a
    comparison must be able to say that it is worse."""
    def bad(why: str) -> FormatError:
        return FormatError(f"{source}: row {row}: field '{name}': {why}")

    if isinstance(value, str):
        if not value.strip():
            raise bad("is empty")
        return [{"role": last_role or "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad(f"expected a string or a non-empty list of {{role, content}} messages, got {type(value).__name__}")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise bad(f"message {i} needs 'role' and 'content'")
        if message["role"] not in ROLES:
            raise bad(f"message {i} has role {message['role']!r}; use one of {ROLES}")
        if not isinstance(message["content"], str):
            raise bad(f"message {i} has non-string content")
        if not message["content"].strip() and not (empty_last and i == len(value) - 1):
            raise bad(f"message {i} has empty content")
        out.append({"role": message["role"], "content": message["content"]})
    if last_role and out[-1]["role"] != last_role:
        raise bad(f"the last message must be from the {last_role}, not the {out[-1]['role']}")
    return out


def _hh_turns(text, source: str, row: int, name: str) -> list[dict]:
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> messages; consecutive turns of one speaker are joined."""
    if not isinstance(text, str) or not text.startswith("\n\nHuman:"):
        raise FormatError(f"{source}: row {row}: field '{name}': expected hh-rlhf text starting with "
                          "'\\n\\nHuman:'")
    parts = _HH_TURN.split(text)[1:]
    messages: list[dict] = []
    for speaker, content in zip(parts[0::2], parts[1::2]):
        role = "user" if speaker == "Human" else "assistant"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise FormatError(f"{source}: row {row}: field '{name}': the last turn must be a non-empty 'Assistant:' turn")
    for m in messages:
        m["content"] = m["content"].strip()
    return messages


def _preference(example: dict, source: str, row: int) -> dict:
    chosen, rejected = example["chosen"], example["rejected"]
    if "prompt" in example and example["prompt"] is not None:
        prompt = _messages(example["prompt"], source, row, "prompt", last_role="user")
        chosen = _messages(chosen, source, row, "chosen", last_role="assistant", empty_last=True)
        rejected = _messages(rejected, source, row, "rejected", last_role="assistant", empty_last=True)
        return {"prompt": prompt, "chosen": chosen[-1:], "rejected": rejected[-1:]}
    if isinstance(chosen, str) and chosen.startswith("\n\nHuman:"):
        chosen, rejected = _hh_turns(chosen, source, row, "chosen"), _hh_turns(rejected, source, row, "rejected")
    else:
        chosen = _messages(chosen, source, row, "chosen", last_role="assistant", empty_last=True)
        rejected = _messages(rejected, source, row, "rejected", last_role="assistant", empty_last=True)
    if chosen[:-1] != rejected[:-1]:
        raise FormatError(f"{source}: row {row}: field 'rejected': its conversation before the last reply differs "
                          "from 'chosen'; both must answer the same prompt")
    if len(chosen) < 2:
        raise FormatError(f"{source}: row {row}: field 'chosen': no prompt before the reply")
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}


def _sft_rows(example: dict, layout: str, source: str, row: int) -> list[dict]:
    if layout == "messages":
        messages = example["messages"]
        if not isinstance(messages, list) or len(messages) < 2:
            what = "text" if isinstance(messages, str) else f"{len(messages)} message" if isinstance(messages, list) \
                else type(messages).__name__
            raise FormatError(f"{source}: row {row}: field 'messages': expected a conversation, a list of at least two "
                              f"{{role, content}} messages ending with the assistant's, got {what}")
        return [{"messages": _messages(messages, source, row, "messages", last_role="assistant")}]
    if layout == "prompt_completion":
        prompt = _messages(example["prompt"], source, row, "prompt", last_role="user")
        completion = _messages(example["completion"], source, row, "completion", last_role="assistant")
        return [{"messages": prompt + completion}]
    if layout in ("alpaca", "seed_tasks"):
        instances = example["instances"] if layout == "seed_tasks" else [example]
        if not isinstance(instances, list) or not instances:
            raise FormatError(f"{source}: row {row}: field 'instances': expected a non-empty list")
        rows = []
        for instance in instances:
            instruction, extra = example.get("instruction"), instance.get("input") or ""
            output = instance.get("output")
            for name, value in (("instruction", instruction), ("output", output)):
                if not isinstance(value, str) or not value.strip():
                    raise FormatError(f"{source}: row {row}: field '{name}': missing or empty")
            user = f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction.strip()
            rows.append({"messages": [{"role": "user", "content": user},
                                      {"role": "assistant", "content": output.strip()}]})
        return rows
    pref = _preference(example, source, row)
    return [{"messages": pref["prompt"] + pref["chosen"]}]


def _convert(dataset: Dataset, source: str, invalid_rows: str, convert, only: str | None = None):
    if invalid_rows not in ("error", "skip"):
        raise ConfigError(f"invalid_rows must be 'error' or 'skip', not {invalid_rows!r}")
    layout = detect_layout(dataset.column_names, source)
    if only and layout != only:
        raise FormatError(f"{source}: needs the {only} layout (columns chosen, rejected and optionally prompt); "
                          f"this dataset is {layout} (columns {dataset.column_names})")
    report = Conversion(layout, len(dataset))
    rows: list[dict] = []
    for i, example in enumerate(dataset, start=1):
        try:
            rows.extend(convert(example, layout, source, i))
        except FormatError as error:
            if invalid_rows == "error":
                raise FormatError(f"{error}\nFix or remove the row, or set invalid_rows: skip to drop such rows.") \
                    from None
            report.skipped[str(error).split(": ", 3)[-1][:60]] += 1
    if not rows:
        raise FormatError(f"{source}: no usable rows ({report})")
    report.rows_out = len(rows)
    return Dataset.from_list(rows), report


def to_sft(dataset: Dataset, source: str, invalid_rows: str = "error") -> tuple[Dataset, Conversion]:
    return _convert(dataset, source, invalid_rows, _sft_rows)


def to_preference(dataset: Dataset, source: str, invalid_rows: str = "error") -> tuple[Dataset, Conversion]:
    """Pairs; one whose chosen and rejected replies are the same teaches nothing and is left out, counted."""
    pairs, report = _convert(dataset, source, invalid_rows, lambda ex, _, src, row: [_preference(ex, src, row)],
                             only="preference")
    keep = [i for i, (c, r) in enumerate(zip(pairs["chosen"], pairs["rejected"])) if c != r]
    if len(keep) < len(pairs):
        if not keep:
            raise FormatError(f"{source}: in every pair the chosen and rejected replies are the same; a preference "
                              "dataset needs pairs that differ")
        report.skipped["chosen and rejected the same (nothing to learn)"] += len(pairs) - len(keep)
        pairs = pairs.select(keep)
        report.rows_out = len(pairs)
    return pairs, report


def to_prompt_completion(messages_rows: Dataset) -> Dataset:
    """{"messages"} -> {"prompt", "completion"}: TRL then trains on the last assistant turn alone, with any chat
    template (no `{% generation %}` markers needed)."""
    return messages_rows.map(lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
                             remove_columns=["messages"])
