"""Every supported dataset layout converts to TRL's conversational format; malformed rows are named."""

import json
import re

import pytest
from datasets import Dataset, DatasetDict

from recipes.common.data import load_any
from recipes.common.formats import FormatError, to_preference, to_prompt_completion, to_sft
from tests.conftest import SHARED_DATA

HH = SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"
SEED_TASKS = SHARED_DATA / "alpaca-seed" / "seed_tasks.jsonl"
needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")

USER, ASSISTANT = {"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}


@pytest.mark.parametrize("row", [
    {"messages": [USER, ASSISTANT]},
    {"prompt": "Hi?", "completion": "Hello."},
    {"prompt": [USER], "completion": [ASSISTANT]},
    {"instruction": "Hi?", "input": "", "output": "Hello."},
    {"instruction": "Hi?", "instances": [{"input": "", "output": "Hello."}]},
    {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."},
    {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
    {"chosen": [USER, ASSISTANT], "rejected": [USER, {"role": "assistant", "content": "Go away."}]},
], ids=["messages", "prompt-completion", "prompt-completion-chat", "alpaca", "seed-tasks", "hh-rlhf",
        "explicit-preference", "implicit-preference"])
def test_every_layout_converts_to_messages(row):
    dataset, report = to_sft(Dataset.from_list([row]), "mem")
    assert dataset[0]["messages"] == [USER, ASSISTANT], report
    pc = to_prompt_completion(dataset)[0]
    assert pc["prompt"] == [USER] and pc["completion"] == [ASSISTANT]


def test_alpaca_input_joins_the_instruction():
    row = {"instruction": "Translate.", "input": "bonjour", "output": "hello"}
    assert to_sft(Dataset.from_list([row]), "mem")[0][0]["messages"][0]["content"] == "Translate.\n\nbonjour"


def test_multi_turn_hh_rlhf_keeps_the_conversation():
    text = "\n\nHuman: a?\n\nAssistant: b.\n\nHuman: c?\n\nAssistant: "
    row = {"chosen": text + "good.", "rejected": text + "bad."}
    pref = to_preference(Dataset.from_list([row]), "mem")[0][0]
    assert [m["role"] for m in pref["prompt"]] == ["user", "assistant", "user"]
    assert pref["chosen"] == [{"role": "assistant", "content": "good."}]
    assert pref["rejected"] == [{"role": "assistant", "content": "bad."}]


@pytest.mark.parametrize(("rows", "field", "row"), [
    ([{"messages": [USER, ASSISTANT]}, {"messages": [USER]}], "messages", 2),
    ([{"messages": [USER, ASSISTANT]}, {"messages": [{"role": "bot", "content": "x"}]}], "messages", 2),
    ([{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": ""}], "completion", 2),
    ([{"instruction": "a", "input": "", "output": None}], "output", 1),
    ([{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "no speakers here"}], "rejected", 1),
    ([{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"}], "rejected", 1),
    ([{"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: a\n\nAssistant: c"}], "chosen", 1),
])
def test_malformed_rows_name_source_row_and_field(tmp_path, rows, field, row):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    convert = to_preference if "chosen" in rows[0] else to_sft
    with pytest.raises(FormatError) as error:
        convert(load_any(str(path)), str(path))
    assert f"{path}: row {row}: field '{field}'" in str(error.value)
    assert "invalid_rows: skip" in str(error.value)


def test_skipping_malformed_rows_counts_them():
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": ""}]
    dataset, report = to_sft(Dataset.from_list(rows), "mem", invalid_rows="skip")
    assert len(dataset) == 1 and report.rows_in == 2 and report.rows_out == 1 and sum(report.skipped.values()) == 1


def test_unknown_columns_are_explained():
    with pytest.raises(FormatError, match=r"mem: unrecognized columns \['question'\]"):
        to_sft(Dataset.from_list([{"question": "a"}]), "mem")
    with pytest.raises(FormatError, match="needs the preference layout"):
        to_preference(Dataset.from_list([{"messages": [USER, ASSISTANT]}]), "mem")


@needs_shared
def test_hh_rlhf_sample_converts():
    raw = load_any(str(HH))
    with pytest.raises(FormatError, match=r"harmless-base-test.jsonl.gz: row \d+: field '(chosen|rejected)'"):
        to_preference(raw, str(HH))
    pairs, report = to_preference(raw, str(HH), invalid_rows="skip")
    print(f"hh-rlhf harmless-base test: {report}")
    assert report.rows_in == len(raw) == 2312
    assert 2290 <= report.rows_out < 2312  # a handful of rows have an empty last reply or differing prompts
    assert all(p["chosen"][0]["role"] == "assistant" and p["prompt"][-1]["role"] == "user" for p in pairs)
    sft, sft_report = to_sft(raw, str(HH), invalid_rows="skip")
    assert len(sft) == report.rows_out


@needs_shared
def test_alpaca_seed_tasks_convert():
    raw = load_any(str(SEED_TASKS))
    dataset, report = to_sft(raw, str(SEED_TASKS))
    print(f"alpaca seed tasks: {report}")
    assert report.rows_in == len(raw) and report.rows_out >= len(raw)
    assert all(m["messages"][-1]["role"] == "assistant" for m in dataset)


@pytest.mark.parametrize("suffix", [".json", ".parquet", ".csv"])
def test_local_files_of_every_type_load(tmp_path, suffix):
    rows = Dataset.from_list([{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(3)])
    path = tmp_path / f"data{suffix}"
    {".json": rows.to_json, ".parquet": rows.to_parquet, ".csv": rows.to_csv}[suffix](str(path))
    dataset, report = to_sft(load_any(str(path)), str(path))
    assert report.rows_out == 3 and dataset[2]["messages"][1]["content"] == "a2"


def test_a_slice_of_a_split_loads_from_a_file_and_from_a_saved_dataset(tmp_path):
    """`train[:50%]` and `train[50%:]` split one file (or one saved split) into disjoint halves, as load_dataset does
    for a Hub dataset: the reward model and the held-out judge train on them."""
    rows = Dataset.from_list([{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(10)])
    rows.to_json(str(tmp_path / "data.jsonl"))
    DatasetDict({"train": rows, "test": rows.select(range(2))}).save_to_disk(str(tmp_path / "saved"))
    for source in (str(tmp_path / "data.jsonl"), str(tmp_path / "saved")):
        first, second = load_any(source, None, "train[:50%]"), load_any(source, None, "train[50%:]")
        assert first["prompt"] == [f"q{i}" for i in range(5)] and second["prompt"] == [f"q{i}" for i in range(5, 10)]
    assert len(load_any(str(tmp_path / "saved"), None, "test")) == 2


@pytest.mark.parametrize("layout", ["prompt_completion", "messages"])
def test_one_odd_value_in_a_jsonl_column_is_named_by_line_and_field_and_skipped_alone(tmp_path, layout):
    """datasets' JSON builder retyped a column holding one number among strings: every "3." read back as 3.0, the
    error named row 1, and invalid_rows: skip dropped every row for one bad one."""
    def row(i, answer):
        if layout == "messages":
            return {"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                                 {"role": "assistant", "content": answer}]}
        return {"prompt": f"What is {i} + 1?", "completion": answer}

    rows = [row(i, f"{i + 1}.") for i in range(22)]
    rows[7] = row(7, 8)  # a number where every other row has text
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    field = "completion" if layout == "prompt_completion" else "messages[].content"
    with pytest.raises(ValueError, match=rf"data.jsonl: line 8: field '{re.escape(field)}' is a number where the "
                                         r"other rows have text; fix the row .*invalid_rows: skip"):
        load_any(str(path))
    dataset, report = to_sft(load_any(str(path), invalid_rows="skip"), str(path), "skip")
    assert report.rows_in == 22 and report.rows_out == 21 and sum(report.skipped.values()) == 1
    assert [r["messages"][-1]["content"] for r in dataset][:8] == ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "9."]
    rows[7] = row(7, "8.")
    path.write_text("\n".join(json.dumps(r) for r in rows[:10]) + "\n{not json\n")
    with pytest.raises(ValueError, match="data.jsonl: line 11: not valid JSON"):
        load_any(str(path))
