#!/usr/bin/env python
"""Bad-input campaign against the rlhf-recipes command lines.

    python scripts/bad_input_campaign.py --repo . --inputs runs/tiny --out runs/bad_input_campaign \
        [--only id,id] [--python .venv/bin/python] [--scratch /tmp/camp_out] [--controls]

--inputs is a finished main job's run directory (python -m recipes.pipeline --config configs/tiny/pipeline.yaml).
About 30 minutes on 2 cores; not part of the test suite (tests/test_bad_inputs.py is, with other cases).

Every case is one command of one recipe that should fail (one thing wrong, everything else pointing at a finished
run's copies). Each case runs alone, `nice -n 19 timeout 300`, offline, cwd = --repo. Recorded: exit code, seconds,
the output's tail, the error message, whether a traceback was printed, whether the output dir holds stage.json /
checkpoints / model files / training logs, and whether any input (the copy of --inputs, and the case's own files)
changed. The class (A, A-, B, B-OK, C, D, E) is computed from those; see classify().

--inputs is never written to: the cases read a copy of it (<scratch>/_inputs), restored whenever a case changes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

PY_DEFAULT = sys.executable
MODULES = {"judge": "reward"}

# ---------------------------------------------------------------------------------------------------------------
# Fast settings: what each stage gets so that a wrongly accepted case finishes in seconds.
# {I}: the inputs copy; {W}: the case's work dir; {O}: the case's output dir.
FAST = {
    "pretrain": {"output_dir": "{O}", "max_steps": 2, "num_documents": 100, "num_eval_documents": 8,
                 "num_probe_documents": 0, "num_samples": 1, "sample_max_new_tokens": 4, "save_steps": 1000,
                 "logging_steps": 1},
    "sft": {"model_name_or_path": "{I}/pretrain", "output_dir": "{O}", "max_steps": 2, "num_demonstrations": 32,
            "num_eval_prompts": 4, "max_new_tokens": 8, "save_steps": 1000, "logging_steps": 1},
    "compare": {"policy": "{I}/sft/merged", "output_dir": "{O}", "num_prompts": 16, "judge_prompts": 0,
                "max_new_tokens": 8, "test_fraction": 0.25},
    "reward": {"model_name_or_path": "{I}/sft/merged", "dataset_name": "{I}/compare/comparisons",
               "dataset_train_split": "train[:128]", "dataset_test_split": "test[:32]", "output_dir": "{O}",
               "max_steps": 2, "max_eval_pairs": 32, "save_steps": 1000, "logging_steps": 1},
    "judge": {"model_name_or_path": "{I}/sft/merged", "dataset_name": "{I}/compare/judge_comparisons",
              "dataset_train_split": "train[:128]", "dataset_test_split": "test[:32]", "output_dir": "{O}",
              "max_steps": 2, "max_eval_pairs": 32, "save_steps": 1000, "logging_steps": 1},
    "ppo": {"sft_model_path": "{I}/sft/merged", "reward_model_path": "{I}/reward/merged", "output_dir": "{O}",
            "total_episodes": 16, "per_device_train_batch_size": 8, "local_rollout_forward_batch_size": 8,
            "num_prompts": 32, "gold_eval_steps": 0, "num_eval_prompts": 4, "response_length": 8,
            "save_steps": 1000},
    "rloo": {"sft_model_path": "{I}/sft/merged", "reward_model_path": "{I}/reward/merged", "output_dir": "{O}",
             "max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4, "num_prompts": 16,
             "gold_eval_steps": 0, "num_eval_prompts": 4, "max_completion_length": 8, "save_steps": 1000},
    "grpo": {"sft_model_path": "{I}/sft/merged", "reward_model_path": "{I}/reward/merged", "output_dir": "{O}",
             "max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4, "num_prompts": 16,
             "gold_eval_steps": 0, "num_eval_prompts": 4, "max_completion_length": 8, "save_steps": 1000},
    "dpo": {"sft_model_path": "{I}/sft/merged", "reward_model_path": "{I}/reward/merged",
            "dataset_name": "{I}/compare/comparisons", "dataset_train_split": "train[:32]", "output_dir": "{O}",
            "max_steps": 1, "per_device_train_batch_size": 4, "gold_eval_steps": 0, "num_eval_prompts": 4,
            "max_new_tokens": 8, "save_steps": 1000},
    "evaluate": {"sft_model": "{I}/sft/merged", "base_model": "{I}/pretrain", "reward_model": "{I}/reward/merged",
                 "ppo_model": "{I}/ppo/merged", "judge_reward_model": "{I}/judge/merged", "output_dir": "{O}/evaluate",
                 "report_dir": "{O}", "num_prompts": 8, "max_new_tokens": 8, "best_of_n": 2},
    "benchmarks": {"models": ["{I}/sft/merged"], "tasks": ["toy_facts"], "output_dir": "{O}", "report_dir": "{O}",
                   "limit": 4, "num_probe_documents": 10, "batch_size": 8},
    "push": {"stage_dir": "{I}/sft", "repo_id": "someone/tiny-sft"},
}
CONFIG = {s: f"configs/tiny/fast/{s}.yaml" for s in
          ("pretrain", "sft", "compare", "reward", "judge", "ppo", "rloo", "grpo", "dpo", "evaluate", "benchmarks")}

# A pipeline that starts from the finished base model, every stage a few steps (configs/tiny/fast/ otherwise)
PIPELINE = {
    "run_dir": "{W}/run", "base_model": "{I}/pretrain", "skip": [],
    **{f"{s}_config": f"configs/tiny/fast/{s}.yaml" for s in
       ("pretrain", "sft", "compare", "reward", "judge", "ppo", "evaluate")},
    "sft_args": ["--max_steps", 2, "--num_demonstrations", 32, "--num_eval_prompts", 4, "--max_new_tokens", 8],
    "compare_args": ["--num_prompts", 16, "--judge_prompts", 12, "--max_new_tokens", 8, "--test_fraction", 0.25],
    "reward_args": ["--max_steps", 2, "--max_eval_pairs", 16],
    "judge_args": ["--max_steps", 2, "--max_eval_pairs", 16],
    "ppo_args": ["--total_episodes", 16, "--per_device_train_batch_size", 8, "--local_rollout_forward_batch_size", 8,
                 "--num_prompts", 16, "--gold_eval_steps", 0, "--num_eval_prompts", 4, "--response_length", 8],
    "evaluate_args": ["--num_prompts", 8, "--max_new_tokens", 8, "--best_of_n", 2],
}
ARENA = {"run_dir": "{W}/run", "output_dir": "{O}", "methods": ["dpo"],
         "ppo_config": "configs/tiny/fast/ppo.yaml", "rloo_config": "configs/tiny/fast/rloo.yaml",
         "grpo_config": "configs/tiny/fast/grpo.yaml", "dpo_config": "configs/tiny/fast/dpo.yaml",
         "method_args": ["--max_steps", "1", "--gold_eval_steps", "0", "--num_eval_prompts", "4",
                         "--dataset_train_split", "train[:16]", "--per_device_train_batch_size", "4"],
         "world_seed": 0, "num_prompts": 4, "best_of_n": 0, "max_new_tokens": 8}


def cli(over: dict) -> list[str]:
    out = []
    for key, value in over.items():
        if isinstance(value, list):
            out += [f"--{key}", *map(str, value)]
        else:
            out += [f"--{key}", str(value)]
    return out


def run_argv(stage: str, *extra: str, config: str | None = None, fast: bool = True) -> list[str]:
    """`--config <fast config> <fast overrides> <extra>` (later flags win)."""
    argv = ["--config", config or CONFIG[stage]] if (config or stage in CONFIG) else []
    return argv + (cli(FAST[stage]) if fast else []) + list(extra)


def base_yaml(stage: str, **over) -> dict:
    """The fast config of `stage` with the fast overrides, as a dict (for cases that write a YAML file)."""
    return {**yaml.safe_load(Path(CONFIG[stage]).read_text()), **FAST[stage], **over}


# ---------------------------------------------------------------------------------------------------------------
# Setup helpers: each gets `c` (c.I, c.W, c.O, c.R as Paths) and writes the case's files.
def sub(text: str, c) -> str:
    return text.replace("{I}", str(c.I)).replace("{W}", str(c.W)).replace("{O}", str(c.O)).replace("{R}", str(c.R))


def deep_sub(value, c):
    if isinstance(value, str):
        return sub(value, c)
    if isinstance(value, list):
        return [deep_sub(v, c) for v in value]
    if isinstance(value, dict):
        return {k: deep_sub(v, c) for k, v in value.items()}
    return value


def write(name: str, content: str | bytes | list | dict, kind: str = "auto"):
    """A setup step writing {W}/name: bytes as is; str (placeholders substituted); a list of rows as JSONL (or JSON
    with kind='json'); a dict as YAML."""
    def step(c):
        path = c.W / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(sub(content, c))
        elif kind == "json" or (isinstance(content, list) and name.endswith(".json")):
            path.write_text(json.dumps(deep_sub(content, c), indent=1))
        elif isinstance(content, list):
            path.write_text("".join(json.dumps(deep_sub(r, c)) + "\n" for r in content))
        else:
            path.write_text(yaml.safe_dump(deep_sub(content, c), sort_keys=False))
    return step


def yaml_cfg(name: str, stage: str, drop=(), text_after: str = "", **over):
    """{W}/name: the stage's fast config with `over` applied, `drop` keys removed, `text_after` appended raw."""
    def step(c):
        values = base_yaml(stage, **over) if stage in FAST else dict(over)
        for key in drop:
            values.pop(key, None)
        (c.W / name).write_text(yaml.safe_dump(deep_sub(values, c), sort_keys=False) + sub(text_after, c))
    return step


def pipeline_cfg(name: str = "pipeline.yaml", drop=(), **over):
    def step(c):
        values = {**PIPELINE, **over}
        for key in drop:
            values.pop(key, None)
        (c.W / name).write_text(yaml.safe_dump(deep_sub(values, c), sort_keys=False))
    return step


def arena_cfg(name: str = "arena.yaml", **over):
    def step(c):
        (c.W / name).write_text(yaml.safe_dump(deep_sub({**ARENA, **over}, c), sort_keys=False))
    return step


def copy(src: str, dst: str, drop=(), keep_checkpoints: bool = False):
    """Copy {I}/src to {W}/dst (no checkpoints), then delete `drop` (relative to dst)."""
    def step(c):
        target = c.W / dst
        ignore = None if keep_checkpoints else shutil.ignore_patterns("checkpoint-*")
        shutil.copytree(c.I / src, target, ignore=ignore, dirs_exist_ok=True)
        for d in drop:
            p = target / d
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return step


def edit_json(path: str, fn):
    """Apply fn(dict) -> dict to the JSON file {W}/path."""
    def step(c):
        p = c.W / path
        p.write_text(json.dumps(fn(json.loads(p.read_text())), indent=2))
    return step


def mkdir(name: str):
    return lambda c: (c.W / name).mkdir(parents=True, exist_ok=True)


def run_copy(*stages: str):
    """{W}/run: copies of the given stages of the finished run (for the arena and the pipeline)."""
    def step(c):
        for s in stages:
            copy(s, f"run/{s}")(c)
    return step


def prefs(n: int = 24, **row_over):
    """n prompt/chosen/rejected rows as conversational lists."""
    rows = []
    for i in range(n):
        rows.append({"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
                     "chosen": [{"role": "assistant", "content": f"{2 * i}."}],
                     "rejected": [{"role": "assistant", "content": f"I think it is {2 * i + 1}, maybe."}]})
    return rows


def pc_rows(n: int = 24):
    return [{"prompt": f"What is {i} plus {i}?", "completion": f"{2 * i}."} for i in range(n)]


TOY_PROMPTS: list[str] = []  # filled from the inputs' compare/rankings.jsonl (toy-world prompts) by toy_prompts()


def toy_prompts(c, n: int = 8) -> list[str]:
    lines = (c.I / "compare" / "rankings.jsonl").read_text().splitlines()[:n]
    return [json.loads(line)["prompt"] for line in lines]


def rankings_rows(prompts: list[str], k: int = 4):
    """A filled-in labeling file (JSONL rows) for these prompts: k distinct responses, ranked 1>2>...>k."""
    return [{"id": i, "prompt": p, **{f"response_{j + 1}": f"answer {j} to {i}" for j in range(k)},
             "ranking": list(range(1, k + 1))} for i, p in enumerate(prompts)]


def rankings(name: str, edit=lambda rows: rows, csv: bool = False):
    """{W}/name: a labeling file of 8 toy-world prompts, `edit`ed (rows -> rows); CSV rankings as '1>2>3>4'."""
    def step(c):
        rows = edit(rankings_rows(toy_prompts(c)))
        path = c.W / name
        if csv:
            import csv as _csv
            keys = list(dict.fromkeys(k for r in rows for k in r))
            with path.open("w", newline="") as f:
                w = _csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                for r in rows:
                    w.writerow({k: (">".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return step


# ---------------------------------------------------------------------------------------------------------------
TAB_YAML = "model_name_or_path: {I}/sft/merged\noutput_dir: {O}\nmax_steps: 2\ndataset_name: {I}/compare/comparisons\n" \
           "lora_target_modules:\n\t- q_proj\n"
NO_GEN_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                   "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

C = []  # the cases


def case(id, stage, wrong, argv, setup=(), place=(), inputs=(), ok_when=None, module=None, env=None, note=""):
    """One bad-input case. `place`: strings of which one names the right place (a key, a file, a row); `inputs`:
    extra input paths (besides the inputs copy and the case's work dir) to hash; `ok_when`: a regex that, matched
    in the output of a run that exits 0, makes it B-OK (a legitimate handling, e.g. a row skipped with a message)."""
    C.append({"id": id, "stage": stage, "wrong": wrong, "argv": list(argv), "setup": list(setup), "place": list(place),
              "inputs": list(inputs), "ok_when": ok_when, "module": module or MODULES.get(stage, stage),
              "env": env or {}, "note": note, "expect": "should fail"})


def _lr_read_as_number(output: str, out_dir: Path) -> bool:
    """the string '1e-3' reached the trainer as the number 0.001 (config.yaml says so)"""
    path = out_dir / "config.yaml"
    return path.is_file() and yaml.safe_load(path.read_text()).get("learning_rate") == 0.001


# ============================== generic config errors (YAML and command line) ===================================
case("cfg-empty-yaml", "sft", "empty YAML config file",
     ["--config", "{W}/empty.yaml", "--output_dir", "{O}"], [write("empty.yaml", "")], ["empty.yaml"])
case("cfg-yaml-list", "reward", "YAML config is a list of key: value items instead of a mapping",
     ["--config", "{W}/list.yaml"],
     [write("list.yaml", "- model_name_or_path: {I}/sft/merged\n- dataset_name: {I}/compare/comparisons\n"
                         "- output_dir: {O}\n- max_steps: 2\n")], ["list.yaml"])
case("cfg-yaml-tab", "reward", "YAML with a tab used for indentation (syntax error)",
     ["--config", "{W}/tab.yaml"], [write("tab.yaml", TAB_YAML)], ["tab.yaml", "line"])
case("cfg-yaml-unclosed-quote", "ppo", "YAML with an unclosed quote (syntax error)",
     ["--config", "{W}/q.yaml"],
     [yaml_cfg("q.yaml", "ppo", text_after='run_name: "ppo-run\nseed: 0\n')], ["q.yaml", "line"])
case("cfg-yaml-dup-key", "sft", "YAML with the same key twice (learning_rate 5e-3 then 5e-6)",
     ["--config", "{W}/dup.yaml"], [yaml_cfg("dup.yaml", "sft", text_after="learning_rate: 5.0e-6\n")],
     ["dup.yaml", "learning_rate"])
case("cfg-yaml-scalar", "compare", "YAML file holding one string instead of a mapping",
     ["--config", "{W}/s.yaml"], [write("s.yaml", "policy={I}/sft/merged num_prompts=16\n")], ["s.yaml"])
case("cfg-config-missing", "dpo", "--config names a file that does not exist",
     ["--config", "configs/tiny/fast/dpo_fast.yaml"], [], ["dpo_fast.yaml"])
case("cfg-config-is-dir", "rloo", "--config names a directory",
     ["--config", "configs/tiny/fast"], [], ["configs/tiny/fast"])
case("cfg-config-other-stage", "reward", "--config is the SFT config given to the reward recipe",
     ["--config", "configs/tiny/fast/sft.yaml", "--output_dir", "{O}"], [], ["sft.yaml", "num_demonstrations"])
case("cfg-config-flag-twice", "sft", "--config given twice (the second silently ignored?)",
     run_argv("sft", "--config", "configs/tiny/fast/reward.yaml"), [], ["--config", "reward.yaml"])
case("cfg-misspelled-yaml-key", "grpo", "misspelled key in YAML: num_generation (for num_generations)",
     ["--config", "{W}/g.yaml"], [yaml_cfg("g.yaml", "grpo", text_after="num_generation: 4\n")],
     ["num_generation"])
case("cfg-misspelled-cli-flag", "evaluate", "misspelled command-line flag --num_promts",
     run_argv("evaluate", "--num_promts", "8"), [], ["num_promts"])
case("cfg-cli-single-dash", "ppo", "flag with one dash: -kl_coef 0.1",
     run_argv("ppo", "-kl_coef", "0.1"), [], ["kl_coef"])
case("cfg-cli-flag-without-value", "sft", "last flag --max_steps given no value",
     run_argv("sft", "--max_steps"), [], ["max_steps"])
case("cfg-cli-stray-positional", "reward", "a stray positional argument on the command line",
     run_argv("reward", "extra_word"), [], ["extra_word"])
case("cfg-cli-equals-syntax-typo", "dpo", "--beta=0.1,0.2 (a list where a float is expected)",
     run_argv("dpo", "--beta=0.1,0.2"), [], ["beta"])
case("cfg-yaml-unknown-key-nested", "sft", "YAML holds a nested section (trainer: {max_steps: 2}) as in other tools",
     ["--config", "{W}/n.yaml"], [yaml_cfg("n.yaml", "sft", text_after="trainer:\n  max_steps: 2\n")], ["trainer"])
case("cfg-yaml-env-list", "sft", "YAML 'env' given as a list instead of a mapping",
     ["--config", "{W}/e.yaml"], [yaml_cfg("e.yaml", "sft", text_after="env:\n  - TOKENIZERS_PARALLELISM=false\n")],
     ["env"])

# ============================== value types ======================================================================
case("type-str-for-int-cli", "pretrain", "--max_steps abc (text where an int is expected)",
     run_argv("pretrain", "--max_steps", "abc"), [], ["max_steps"])
case("type-float-for-int-cli", "ppo", "--total_episodes 16.5 (float where an int is expected)",
     run_argv("ppo", "--total_episodes", "16.5"), [], ["total_episodes"])
case("type-float-for-int-yaml", "compare", "num_prompts: 16.5 in YAML (float where an int is expected)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "compare", num_prompts=16.5)], ["num_prompts"])
case("type-str-for-float-yaml", "sft", "learning_rate: fast in YAML (text where a float is expected)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "sft", learning_rate="fast")], ["learning_rate"])
case("type-yaml-1e-3-is-string", "reward", "learning_rate: 1e-3 in YAML (YAML 1.1 reads it as the string '1e-3')",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "reward", text_after="")],
     ["learning_rate"], note="written as raw text below", ok_when=_lr_read_as_number)
C[-1]["setup"] = [lambda c: (c.W / "c.yaml").write_text(
    yaml.safe_dump(deep_sub({k: v for k, v in base_yaml("reward").items() if k != "learning_rate"}, c),
                   sort_keys=False) + "learning_rate: 1e-3\n")]
case("type-bool-as-word", "reward", "use_peft: maybe (a word where true/false is expected), command line",
     run_argv("reward", "--use_peft", "maybe"), [], ["use_peft"])
case("type-yaml-bool-for-str", "compare", "labeler: yes in YAML (YAML reads a bool)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "compare", labeler=True)], ["labeler"])
case("type-yaml-list-for-int", "dpo", "max_steps: [1, 2] in YAML (a list where an int is expected)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "dpo", max_steps=[1, 2])], ["max_steps"])
case("type-yaml-str-for-list", "sft", "lora_target_modules: 'q_proj, v_proj' (one comma string for a list)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "sft", lora_target_modules="q_proj, v_proj")],
     ["lora_target_modules"])
case("type-yaml-null-required", "compare", "policy: null (the model to sample from is unset)",
     ["--config", "{W}/c.yaml"], [yaml_cfg("c.yaml", "compare", policy=None)], ["policy"])
case("type-seed-float", "sft", "--seed 0.5 (float seed)", run_argv("sft", "--seed", "0.5"), [], ["seed"])
case("type-seed-text-yaml", "ppo", "seed: abc in YAML", ["--config", "{W}/c.yaml"],
     [yaml_cfg("c.yaml", "ppo", seed="abc")], ["seed"])

# ============================== values out of range / wrong relations ===========================================
case("range-negative-lr-grpo", "grpo", "learning_rate -3e-3", run_argv("grpo", "--learning_rate", "-3e-3"), [],
     ["learning_rate"])
case("range-negative-lr-grpo-decimal", "grpo", "learning_rate -0.003 (decimal notation)",
     run_argv("grpo", "--learning_rate=-0.003"), [], ["learning_rate"])
case("range-negative-epochs-dpo", "dpo", "num_train_epochs -1 with max_steps unset",
     run_argv("dpo", "--max_steps", "-1", "--num_train_epochs", "-1"), [], ["num_train_epochs"])
case("range-max-steps-zero-no-epochs", "reward", "max_steps 0 and num_train_epochs 0",
     run_argv("reward", "--max_steps", "0", "--num_train_epochs", "0"), [], ["num_train_epochs", "max_steps"])
case("range-grad-accum-zero", "sft", "gradient_accumulation_steps 0",
     run_argv("sft", "--gradient_accumulation_steps", "0"), [], ["gradient_accumulation_steps"])
case("range-eval-batch-zero", "reward", "per_device_eval_batch_size 0",
     run_argv("reward", "--per_device_eval_batch_size", "0"), [], ["per_device_eval_batch_size"])
case("range-ppo-minibatch-not-divisor", "ppo", "num_mini_batches 3 does not divide the batch of 8",
     run_argv("ppo", "--num_mini_batches", "3"), [], ["num_mini_batches", "mini_batch"])
case("range-ppo-episodes-below-batch", "ppo", "total_episodes 4 < per_device_train_batch_size 8 (no whole batch)",
     run_argv("ppo", "--total_episodes", "4"), [], ["total_episodes"])
case("range-ppo-response-length-zero", "ppo", "response_length 0", run_argv("ppo", "--response_length", "0"), [],
     ["response_length"])
case("range-ppo-negative-eos-penalty", "ppo", "missing_eos_penalty -1 (rewards never ending)",
     run_argv("ppo", "--missing_eos_penalty", "-1"), [], ["missing_eos_penalty"])
case("range-ppo-kl-estimator", "ppo", "kl_estimator k5 (not k1/k3)", run_argv("ppo", "--kl_estimator", "k5"), [],
     ["kl_estimator"])
case("range-ppo-stop-token", "ppo", "stop_token period (only eos allowed)", run_argv("ppo", "--stop_token", "period"),
     [], ["stop_token"])
case("range-ppo-temperature-zero", "ppo", "temperature 0 (PPO samples: division by zero)",
     run_argv("ppo", "--temperature", "0"), [], ["temperature"])
case("range-ppo-temperature-negative", "ppo", "temperature -0.7", run_argv("ppo", "--temperature", "-0.7"), [],
     ["temperature"])
case("range-ppo-cliprange-negative", "ppo", "cliprange -0.2", run_argv("ppo", "--cliprange", "-0.2"), [],
     ["cliprange"])
case("range-ppo-gamma-above-1", "ppo", "gamma 1.5 (discount above 1)", run_argv("ppo", "--gamma", "1.5"), [],
     ["gamma"])
case("range-ppo-min-acc-percent", "ppo", "min_reward_accuracy 60 (a percentage where a fraction is meant)",
     run_argv("ppo", "--min_reward_accuracy", "60"), [], ["min_reward_accuracy"])
case("range-ppo-max-prompt-tokens-tiny", "ppo", "max_prompt_tokens 2 (no prompt fits)",
     run_argv("ppo", "--max_prompt_tokens", "2"), [], ["max_prompt_tokens"])
case("range-ppo-num-prompts-zero", "ppo", "num_prompts 0", run_argv("ppo", "--num_prompts", "0"), [], ["num_prompts"])
case("range-ppo-save-steps-zero", "ppo", "save_steps 0 with save_strategy steps",
     run_argv("ppo", "--save_steps", "0"), [], ["save_steps"])
case("range-ppo-logging-steps-zero", "ppo", "logging_steps 0 with logging_strategy steps",
     run_argv("ppo", "--logging_steps", "0"), [], ["logging_steps"])
case("range-ppo-world-entities-zero", "ppo", "world_entities 0 (a toy world without animals)",
     run_argv("ppo", "--world_entities", "0"), [], ["world_entities"])
case("range-ppo-seed-negative", "ppo", "seed -1", run_argv("ppo", "--seed", "-1"), [], ["seed"])
case("range-ppo-gold-eval-negative", "ppo", "gold_eval_steps -2", run_argv("ppo", "--gold_eval_steps", "-2"), [],
     ["gold_eval_steps"])
case("range-sft-max-length-zero", "sft", "max_length 0", run_argv("sft", "--max_length", "0"), [], ["max_length"])
case("range-sft-max-length-tiny", "sft", "max_length 4 (shorter than the chat template's own tokens)",
     run_argv("sft", "--max_length", "4"), [], ["max_length"])
case("range-sft-lora-r-zero", "sft", "lora_r 0", run_argv("sft", "--lora_r", "0"), [], ["lora_r"])
case("range-sft-lora-dropout-above-1", "sft", "lora_dropout 1.5", run_argv("sft", "--lora_dropout", "1.5"), [],
     ["lora_dropout"])
case("range-sft-wrong-rate-above-1", "sft", "wrong_rate 1.5 (a probability above 1)",
     run_argv("sft", "--wrong_rate", "1.5"), [], ["wrong_rate"])
case("range-sft-verbose-rate-negative", "sft", "verbose_rate -0.2", run_argv("sft", "--verbose_rate", "-0.2"), [],
     ["verbose_rate"])
case("range-sft-num-demos-zero", "sft", "num_demonstrations 0 (no data)", run_argv("sft", "--num_demonstrations", "0"),
     [], ["num_demonstrations"])
case("range-sft-num-eval-negative", "sft", "num_eval_prompts -4", run_argv("sft", "--num_eval_prompts", "-4"), [],
     ["num_eval_prompts"])
case("range-sft-max-dropped-negative", "sft", "max_dropped_fraction -0.1",
     run_argv("sft", "--max_dropped_fraction", "-0.1"), [], ["max_dropped_fraction"])
case("range-sft-eval-steps-zero", "sft", "eval_strategy steps with eval_steps 0 (and no eval dataset)",
     run_argv("sft", "--eval_strategy", "steps", "--eval_steps", "0"), [], ["eval_steps", "eval_strategy"])
case("range-sft-dtype-bad", "sft", "dtype float8 (not a dtype)", run_argv("sft", "--dtype", "float8"), [], ["dtype"])
case("range-sft-scheduler-typo", "sft", "lr_scheduler_type cosinus", run_argv("sft", "--lr_scheduler_type", "cosinus"),
     [], ["lr_scheduler_type"])
case("range-sft-report-to-wandb", "sft", "report_to wandb (not installed / offline)",
     run_argv("sft", "--report_to", "wandb"), [], ["report_to", "wandb"])
case("range-sft-fp16-and-bf16", "sft", "fp16 true and bf16 true together on CPU",
     run_argv("sft", "--fp16", "true", "--bf16", "true"), [], ["fp16", "bf16"])
case("range-sft-save-limit-zero", "sft", "save_total_limit 0", run_argv("sft", "--save_total_limit", "0"), [],
     ["save_total_limit"])
case("range-pre-vocab-tiny", "pretrain", "vocab_size 10 (smaller than the byte alphabet)",
     run_argv("pretrain", "--vocab_size", "10"), [], ["vocab_size"])
case("range-pre-block-size-one", "pretrain", "block_size 1", run_argv("pretrain", "--block_size", "1"), [],
     ["block_size"])
case("range-pre-heads-not-divisor", "pretrain", "hidden_size 64 with num_attention_heads 3",
     run_argv("pretrain", "--num_attention_heads", "3"), [], ["num_attention_heads", "hidden_size"])
case("range-pre-num-documents-zero", "pretrain", "num_documents 0", run_argv("pretrain", "--num_documents", "0"), [],
     ["num_documents"])
case("range-pre-probe-negative", "pretrain", "num_probe_documents -5",
     run_argv("pretrain", "--num_probe_documents", "-5"), [], ["num_probe_documents"])
case("range-pre-eval-strategy-no-steps", "pretrain", "eval_strategy steps, eval_steps -3",
     run_argv("pretrain", "--eval_strategy", "steps", "--eval_steps", "-3"), [], ["eval_steps"])
case("range-pre-warmup-negative", "pretrain", "warmup_steps -10", run_argv("pretrain", "--warmup_steps", "-10"), [],
     ["warmup_steps"])
case("range-pre-weight-decay-negative", "pretrain", "weight_decay -0.1",
     run_argv("pretrain", "--weight_decay", "-0.1"), [], ["weight_decay"])
case("range-grpo-batch-not-multiple", "grpo", "per_device_train_batch_size 6 not a multiple of num_generations 4",
     run_argv("grpo", "--per_device_train_batch_size", "6"), [], ["num_generations", "batch"])
case("range-grpo-completion-zero", "grpo", "max_completion_length 0",
     run_argv("grpo", "--max_completion_length", "0"), [], ["max_completion_length"])
case("range-grpo-temperature-zero", "grpo", "temperature 0 with sampling",
     run_argv("grpo", "--temperature", "0"), [], ["temperature"])
case("range-rloo-num-generations-one", "rloo", "num_generations 1 (no leave-one-out baseline)",
     run_argv("rloo", "--num_generations", "1"), [], ["num_generations"])
case("range-rloo-beta-negative", "rloo", "beta -0.15", run_argv("rloo", "--beta", "-0.15"), [], ["beta"])
case("range-rloo-eos-penalty-negative", "rloo", "missing_eos_penalty -2",
     run_argv("rloo", "--missing_eos_penalty", "-2"), [], ["missing_eos_penalty"])
case("range-dpo-beta-zero", "dpo", "beta 0", run_argv("dpo", "--beta", "0"), [], ["beta"])
case("range-dpo-loss-type-typo", "dpo", "loss_type sigmod", run_argv("dpo", "--loss_type", "sigmod"), [],
     ["loss_type"])
case("range-dpo-max-length-tiny", "dpo", "max_length 4 (every pair truncated to nothing)",
     run_argv("dpo", "--max_length", "4"), [], ["max_length"])
case("range-reward-max-eval-pairs-zero", "reward", "max_eval_pairs 0 (no test pairs scored)",
     run_argv("reward", "--max_eval_pairs", "0"), [], ["max_eval_pairs"])
case("range-reward-max-length-tiny", "reward", "max_length 8 (drops every pair)",
     run_argv("reward", "--max_length", "8"), [], ["max_length"])
case("range-reward-dropped-frac-above-1", "reward", "max_dropped_fraction 5 with max_length 40",
     run_argv("reward", "--max_dropped_fraction", "5", "--max_length", "40"), [], ["max_dropped_fraction"])
case("range-reward-lora-task-causal", "reward", "lora_task_type CAUSAL_LM for a reward model",
     run_argv("reward", "--lora_task_type", "CAUSAL_LM"), [], ["lora_task_type"])
case("range-compare-labeler-typo", "compare", "labeler people (not one of the four)",
     run_argv("compare", "--labeler", "people"), [], ["labeler"])
case("range-compare-k-one", "compare", "responses_per_prompt 1", run_argv("compare", "--responses_per_prompt", "1"),
     [], ["responses_per_prompt"])
case("range-compare-temperature-zero", "compare", "temperature 0 (sampling at 0)",
     run_argv("compare", "--temperature", "0"), [], ["temperature"])
case("range-compare-labeler-temp-negative", "compare", "labeler_temperature -0.15 (inverts the noisy labeler?)",
     run_argv("compare", "--labeler_temperature", "-0.15"), [], ["labeler_temperature"])
case("range-compare-judge-negative", "compare", "judge_prompts -10", run_argv("compare", "--judge_prompts", "-10"), [],
     ["judge_prompts"])
case("range-compare-judge-takes-all", "compare", "judge_prompts larger than the prompts there are (dataset)",
     ["--config", "{W}/c.yaml"],
     [write("prompts.jsonl", [{"prompt": f"Name {i} animals."} for i in range(6)]),
      yaml_cfg("c.yaml", "compare", labeler="human", labeling_file="{W}/lab.jsonl",
               dataset_name="{W}/prompts.jsonl", dataset_train_split="train", judge_prompts=10)],
     ["judge_prompts"])
case("range-eval-best-of-n-negative", "evaluate", "best_of_n -2", run_argv("evaluate", "--best_of_n", "-2"), [],
     ["best_of_n"])
case("range-eval-fewshot-negative", "evaluate", "fewshot_shots -1", run_argv("evaluate", "--fewshot_shots", "-1"), [],
     ["fewshot_shots"])
case("range-eval-judge-batch-zero", "evaluate", "llm_judge_batch_size 0",
     run_argv("evaluate", "--llm_judge_batch_size", "0"), [], ["llm_judge_batch_size"])
case("range-bench-limit-zero", "benchmarks", "limit 0 (no documents)", run_argv("benchmarks", "--limit", "0"), [],
     ["limit"])
case("range-bench-fewshot-negative", "benchmarks", "num_fewshot -1", run_argv("benchmarks", "--num_fewshot", "-1"), [],
     ["num_fewshot"])
case("range-bench-unknown-task", "benchmarks", "tasks toy_fact (misspelled task)",
     run_argv("benchmarks", "--tasks", "toy_fact"), [], ["toy_fact", "tasks"])

# ============================== model paths ====================================================================
case("path-sft-model-missing", "sft", "model_name_or_path a directory that does not exist",
     run_argv("sft", "--model_name_or_path", "{I}/pretrained"), [], ["model_name_or_path"])
case("path-sft-model-is-file", "sft", "model_name_or_path is the model.safetensors file",
     run_argv("sft", "--model_name_or_path", "{I}/pretrain/model.safetensors"), [], ["model_name_or_path"])
case("path-sft-model-empty-dir", "sft", "model_name_or_path an empty directory (not a model)",
     run_argv("sft", "--model_name_or_path", "{W}/empty"), [mkdir("empty")], ["model_name_or_path"])
case("path-sft-model-hub-offline", "sft", "model_name_or_path foo/bar (Hub id, offline)",
     run_argv("sft", "--model_name_or_path", "foo/bar"), [], ["model_name_or_path"])
case("path-sft-model-is-reward", "sft", "model_name_or_path is a reward model (reward/merged)",
     run_argv("sft", "--model_name_or_path", "{I}/reward/merged"), [], ["model_name_or_path"])
case("path-sft-base-unfinished", "sft", "model_name_or_path a pretrain copy without stage.json (unfinished)",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"), [copy("pretrain", "pretrain", drop=["stage.json"])],
     ["model_name_or_path"])
case("path-sft-stage-json-corrupt", "sft", "base model's stage.json is not valid JSON",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain"), write("pretrain/stage.json", '{"stage": "pretrain", "complete": tru')],
     ["model_name_or_path", "stage.json"])
case("path-sft-no-weights", "sft", "base model dir with config.json but no weights file",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain", drop=["model.safetensors"])], ["model_name_or_path", "safetensors"])
case("path-sft-output-holds-input", "sft", "output_dir is the run dir that holds the base model",
     run_argv("sft", "--model_name_or_path", "{W}/run/pretrain", "--output_dir", "{W}/run"),
     [copy("pretrain", "run/pretrain")], ["output_dir"])
case("path-sft-output-under-file", "sft", "output_dir under a regular file (/etc/passwd/x)",
     run_argv("sft", "--output_dir", "/etc/passwd/x"), [], ["output_dir"])
case("path-sft-output-is-other-stage", "sft", "output_dir is another finished stage's dir (a reward copy)",
     run_argv("sft", "--output_dir", "{W}/reward"), [copy("reward", "reward")], ["output_dir"])
case("path-pre-output-is-sft-stage", "pretrain", "output_dir is the finished SFT stage's dir (copy)",
     run_argv("pretrain", "--output_dir", "{W}/sft"), [copy("sft", "sft")], ["output_dir"])
case("path-pre-output-under-file", "pretrain", "output_dir /etc/passwd/x",
     run_argv("pretrain", "--output_dir", "/etc/passwd/x"), [], ["output_dir"])
case("path-reward-model-is-adapter-dir", "reward", "model_name_or_path is the SFT stage dir (adapter), not merged/",
     run_argv("reward", "--model_name_or_path", "{I}/sft"), [], ["model_name_or_path"])
case("path-reward-model-missing", "reward", "model_name_or_path a mistyped run path (runs_ok/sft/merge)",
     run_argv("reward", "--model_name_or_path", "{I}/sft/merge"), [], ["model_name_or_path"])
case("path-reward-output-inside-data", "reward", "output_dir inside the comparisons dataset dir (copy)",
     run_argv("reward", "--dataset_name", "{W}/compare/comparisons", "--output_dir", "{W}/compare/comparisons/rm"),
     [copy("compare", "compare")], ["output_dir"])
case("path-reward-output-is-sft-merged", "reward", "output_dir equals model_name_or_path (copy of sft/merged)",
     run_argv("reward", "--model_name_or_path", "{W}/sft/merged", "--output_dir", "{W}/sft/merged"),
     [copy("sft", "sft")], ["output_dir"])
case("path-ppo-sft-is-reward", "ppo", "sft_model_path points at a reward model",
     run_argv("ppo", "--sft_model_path", "{I}/reward/merged"), [], ["sft_model_path"])
case("path-ppo-reward-is-causal", "ppo", "reward_model_path points at a causal LM (sft/merged)",
     run_argv("ppo", "--reward_model_path", "{I}/sft/merged"), [], ["reward_model_path"])
case("path-ppo-reward-is-adapter-dir", "ppo", "reward_model_path is the reward stage dir (adapter), not merged/",
     run_argv("ppo", "--reward_model_path", "{I}/reward"), [], ["reward_model_path"])
case("path-ppo-sft-is-adapter-dir", "ppo", "sft_model_path is the SFT stage dir (adapter), not merged/",
     run_argv("ppo", "--sft_model_path", "{I}/sft"), [], ["sft_model_path"])
case("path-ppo-sft-is-file", "ppo", "sft_model_path is a file (config.json)",
     run_argv("ppo", "--sft_model_path", "{I}/sft/merged/config.json"), [], ["sft_model_path"])
case("path-ppo-sft-unfinished", "ppo", "sft_model_path in an SFT copy without stage.json",
     run_argv("ppo", "--sft_model_path", "{W}/sft/merged"), [copy("sft", "sft", drop=["stage.json"])],
     ["sft_model_path"])
case("path-ppo-stage-incomplete-flag", "ppo", "reward stage.json says complete: false",
     run_argv("ppo", "--reward_model_path", "{W}/reward/merged"),
     [copy("reward", "reward"), edit_json("reward/stage.json", lambda d: {**d, "complete": False})],
     ["reward_model_path"])
case("path-ppo-output-is-sft", "ppo", "output_dir equals sft_model_path (copy)",
     run_argv("ppo", "--sft_model_path", "{W}/sft/merged", "--output_dir", "{W}/sft/merged"), [copy("sft", "sft")],
     ["output_dir"])
case("path-ppo-output-inside-reward", "ppo", "output_dir inside the reward model dir (copy)",
     run_argv("ppo", "--reward_model_path", "{W}/reward/merged", "--output_dir", "{W}/reward/merged/ppo"),
     [copy("reward", "reward")], ["output_dir"])
case("path-ppo-output-under-file", "ppo", "output_dir /etc/passwd/x", run_argv("ppo", "--output_dir", "/etc/passwd/x"),
     [], ["output_dir"])
case("path-ppo-reward-eval-corrupt", "ppo", "reward copy whose eval_results.json is not JSON",
     run_argv("ppo", "--reward_model_path", "{W}/reward/merged"),
     [copy("reward", "reward"), write("reward/eval_results.json", "{accuracy: 0.6")],
     ["eval_results.json", "reward_model_path"])
case("path-ppo-reward-hub-offline", "ppo", "reward_model_path someone/rm (Hub id, offline)",
     run_argv("ppo", "--reward_model_path", "someone/rm"), [], ["reward_model_path"])
case("path-rloo-reward-is-adapter-dir", "rloo", "reward_model_path is the reward stage dir, not merged/",
     run_argv("rloo", "--reward_model_path", "{I}/reward"), [], ["reward_model_path"])
case("path-rloo-reward-missing-file", "rloo", "reward model copy without its weights file",
     run_argv("rloo", "--reward_model_path", "{W}/reward/merged"),
     [copy("reward", "reward", drop=["merged/model.safetensors"])], ["reward_model_path", "safetensors"])
case("path-grpo-reward-unfinished", "grpo", "reward_model_path in a reward copy without stage.json",
     run_argv("grpo", "--reward_model_path", "{W}/reward/merged"), [copy("reward", "reward", drop=["stage.json"])],
     ["reward_model_path"])
case("path-grpo-sft-is-judge", "grpo", "sft_model_path points at the judge reward model",
     run_argv("grpo", "--sft_model_path", "{I}/judge/merged"), [], ["sft_model_path"])
case("path-dpo-sft-is-reward", "dpo", "sft_model_path points at a reward model",
     run_argv("dpo", "--sft_model_path", "{I}/reward/merged"), [], ["sft_model_path"])
case("path-dpo-reward-is-causal", "dpo", "optional reward_model_path points at a causal LM",
     run_argv("dpo", "--reward_model_path", "{I}/pretrain"), [], ["reward_model_path"])
case("path-dpo-output-is-dataset", "dpo", "output_dir equals the comparisons dataset dir (copy)",
     run_argv("dpo", "--dataset_name", "{W}/compare/comparisons", "--output_dir", "{W}/compare/comparisons"),
     [copy("compare", "compare")], ["output_dir"])
case("path-compare-policy-is-reward", "compare", "policy points at a reward model",
     run_argv("compare", "--policy", "{I}/reward/merged"), [], ["policy"])
case("path-compare-policy-adapter-dir", "compare", "policy is the SFT stage dir (adapter), not merged/",
     run_argv("compare", "--policy", "{I}/sft"), [], ["policy"])
case("path-compare-rm-labeler-is-causal", "compare", "labeler reward_model with reward_model a causal LM",
     run_argv("compare", "--labeler", "reward_model", "--reward_model", "{I}/sft/merged"), [], ["reward_model"])
case("path-compare-rm-labeler-missing", "compare", "labeler reward_model with reward_model a missing dir",
     run_argv("compare", "--labeler", "reward_model", "--reward_model", "{I}/reward/mergd"), [], ["reward_model"])
case("path-compare-output-is-policy", "compare", "output_dir equals the policy dir (copy)",
     run_argv("compare", "--policy", "{W}/sft/merged", "--output_dir", "{W}/sft/merged"), [copy("sft", "sft")],
     ["output_dir"])
case("path-compare-labeling-file-txt", "compare", "labeler human, labeling_file with a .txt extension",
     run_argv("compare", "--labeler", "human", "--labeling_file", "{O}/to_rank.txt"), [], ["labeling_file"])
case("path-compare-labeling-under-file", "compare", "labeler human, labeling_file under /etc/passwd",
     run_argv("compare", "--labeler", "human", "--labeling_file", "/etc/passwd/x/rank.jsonl"), [], ["labeling_file"])
case("path-eval-ppo-is-reward", "evaluate", "ppo_model points at a reward model",
     run_argv("evaluate", "--ppo_model", "{I}/reward/merged"), [], ["ppo_model"])
case("path-eval-judge-is-causal", "evaluate", "judge_reward_model points at a causal LM",
     run_argv("evaluate", "--judge_reward_model", "{I}/ppo/merged"), [], ["judge_reward_model"])
case("path-eval-llm-judge-is-reward", "evaluate", "llm_judge points at a reward model",
     run_argv("evaluate", "--llm_judge", "{I}/judge/merged"), [], ["llm_judge"])
case("path-eval-template-missing", "evaluate", "llm_judge_template names a missing file",
     run_argv("evaluate", "--llm_judge_template", "configs/judges/pairwise_long.txt"), [], ["llm_judge_template"])
case("path-eval-template-no-placeholders", "evaluate", "llm_judge_template without {prompt}/{response_a}/{response_b}",
     run_argv("evaluate", "--llm_judge_template", "{W}/t.txt"), [write("t.txt", "Which answer is better? Say A or B.\n")],
     ["llm_judge_template", "t.txt"])
case("path-eval-output-under-file", "evaluate", "output_dir /etc/passwd/x (report_dir fine)",
     run_argv("evaluate", "--output_dir", "/etc/passwd/x"), [], ["output_dir"])
case("path-eval-output-inside-ppo", "evaluate", "output_dir inside the ppo model dir (copy)",
     run_argv("evaluate", "--ppo_model", "{W}/ppo/merged", "--output_dir", "{W}/ppo/merged/eval"),
     [copy("ppo", "ppo")], ["output_dir"])
case("path-eval-base-unfinished", "evaluate", "base_model a pretrain copy without stage.json",
     run_argv("evaluate", "--base_model", "{W}/pretrain"), [copy("pretrain", "pretrain", drop=["stage.json"])],
     ["base_model"])
case("path-eval-sft-unset", "evaluate", "sft_model unset (YAML null)", ["--config", "{W}/e.yaml"],
     [yaml_cfg("e.yaml", "evaluate", sft_model=None)], ["sft_model"])
case("path-bench-model-is-reward", "benchmarks", "models lists a reward model",
     run_argv("benchmarks", "--models", "{I}/reward/merged"), [], ["models"])
case("path-bench-model-missing", "benchmarks", "models lists a missing dir",
     run_argv("benchmarks", "--models", "{I}/sft/merged", "{I}/ppo/mergd"), [], ["models"])
case("path-bench-report-under-file", "benchmarks", "report_dir /etc/passwd/x",
     run_argv("benchmarks", "--report_dir", "/etc/passwd/x"), [], ["report_dir"])

# ============================== tokenizers ====================================================================
case("tok-sft-no-pad", "sft", "base model whose tokenizer has no pad token",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain"), edit_json("pretrain/tokenizer_config.json",
                                              lambda d: {k: v for k, v in d.items() if k != "pad_token"})],
     ["pad", "model_name_or_path"])
case("tok-sft-pad-is-eos", "sft", "base model whose pad token is the eos token <|im_end|>",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain"), edit_json("pretrain/tokenizer_config.json", lambda d: {**d, "pad_token": "<|im_end|>"})],
     ["pad", "eos"])
case("tok-sft-no-chat-template", "sft", "base model without a chat template (chat_template.jinja removed)",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain", drop=["chat_template.jinja"])], ["chat_template", "chat template"])
case("tok-sft-template-no-generation", "sft", "chat template without {% generation %} and assistant_only_loss true",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain"), write("pretrain/chat_template.jinja", NO_GEN_TEMPLATE)],
     ["generation", "assistant_only_loss"])
case("tok-sft-no-tokenizer-files", "sft", "base model dir without tokenizer.json / tokenizer_config.json",
     run_argv("sft", "--model_name_or_path", "{W}/pretrain"),
     [copy("pretrain", "pretrain", drop=["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])],
     ["tokenizer", "model_name_or_path"])
case("tok-sft-trainable-token-unknown", "sft", "trainable_token_embeddings names a token the tokenizer lacks",
     run_argv("sft", "--trainable_token_embeddings", "<|assistant|>"), [], ["trainable_token_embeddings"])
case("tok-ppo-sft-no-pad", "ppo", "SFT model copy whose tokenizer has no pad token",
     run_argv("ppo", "--sft_model_path", "{W}/sft/merged"),
     [copy("sft", "sft"), edit_json("sft/merged/tokenizer_config.json",
                                    lambda d: {k: v for k, v in d.items() if k != "pad_token"})],
     ["sft_model_path", "tokenizer_config"])
def _other_vocab_reward_model(c):
    """{W}/rm: a reward model of the same shape but another vocabulary (300 tokens; as if from another base model),
    random weights, with the policy's own tokenizer files copied in (a user who copied them to make it load)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    config = AutoConfig.from_pretrained(c.I / "reward" / "merged")
    config.vocab_size = 300
    config.pad_token_id, config.bos_token_id, config.eos_token_id = 3, 0, 2
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(c.W / "rm")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(c.I / "reward" / "merged" / f, c.W / "rm" / f)


case("tok-ppo-reward-vocab-differs", "ppo", "reward model with another vocabulary (300 tokens, e.g. from another "
     "base model) than the policy's", run_argv("ppo", "--reward_model_path", "{W}/rm"), [_other_vocab_reward_model],
     ["reward_model_path", "vocab", "tokenizer"])
case("tok-reward-no-pad", "reward", "SFT model copy whose tokenizer has no pad token (reward needs it)",
     run_argv("reward", "--model_name_or_path", "{W}/sft/merged"),
     [copy("sft", "sft"), edit_json("sft/merged/tokenizer_config.json",
                                    lambda d: {k: v for k, v in d.items() if k != "pad_token"})], ["pad"])
case("tok-compare-no-template", "compare", "policy without a chat template",
     run_argv("compare", "--policy", "{W}/sft/merged"), [copy("sft", "sft", drop=["merged/chat_template.jinja"])],
     ["chat_template", "chat template", "policy"])
case("tok-eval-judge-no-template", "evaluate", "llm_judge: a model dir without a chat template",
     run_argv("evaluate", "--llm_judge", "{W}/sft/merged"), [copy("sft", "sft", drop=["merged/chat_template.jinja"])],
     ["llm_judge", "chat template", "chat_template"])

# ============================== datasets ======================================================================
case("data-sft-empty-jsonl", "sft", "dataset_name an empty .jsonl file",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"), [write("d.jsonl", "")], ["d.jsonl"])
case("data-sft-csv-header-only", "sft", "CSV with the header prompt,completion and no rows",
     run_argv("sft", "--dataset_name", "{W}/d.csv"), [write("d.csv", "prompt,completion\n")], ["d.csv"])
case("data-sft-missing-column", "sft", "JSONL rows with prompt but no completion",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"), [write("d.jsonl", [{"prompt": f"q{i}"} for i in range(8)])],
     ["d.jsonl", "completion"])
case("data-sft-wrong-column-names", "sft", "CSV with question,answer columns",
     run_argv("sft", "--dataset_name", "{W}/d.csv"),
     [write("d.csv", "question,answer\n" + "".join(f"What is {i}+1?,{i + 1}\n" for i in range(8)))],
     ["d.csv", "question"])
case("data-sft-csv-null", "sft", "CSV with an empty completion cell in row 3",
     run_argv("sft", "--dataset_name", "{W}/d.csv"),
     [write("d.csv", "prompt,completion\n" + "".join(f"What is {i}+1?,{'' if i == 2 else i + 1}\n" for i in range(8)))],
     ["d.csv", "row"])
case("data-sft-json-list-number", "sft", ".json (a list) where row 4's completion is a number",
     run_argv("sft", "--dataset_name", "{W}/d.json"),
     [write("d.json", [{"prompt": f"q{i}", "completion": (7 if i == 3 else f"a{i}")} for i in range(8)], kind="json")],
     ["d.json", "row 4"])
case("data-sft-json-null", "sft", "JSONL with completion null in line 2", run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"prompt": f"q{i}", "completion": (None if i == 1 else f"a{i}")} for i in range(8)])],
     ["d.jsonl", "line 2", "row 2"])
case("data-sft-role-capitalized", "sft", "messages with role 'Assistant' (capitalized) in row 2",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"messages": [{"role": "user", "content": f"q{i}"},
                                      {"role": "Assistant" if i == 1 else "assistant", "content": f"a{i}"}]}
                        for i in range(8)])], ["d.jsonl", "row 2", "line 2"])
case("data-sft-last-from-user", "sft", "multi-turn messages ending with a user turn (row 5)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
                         + ([{"role": "user", "content": "thanks"}] if i == 4 else [])} for i in range(8)])],
     ["d.jsonl", "row 5", "line 5"])
case("data-sft-whitespace-instruction", "sft", "Alpaca rows with an instruction of spaces only",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"instruction": "   " if i == 0 else f"Say {i}", "input": "", "output": f"{i}"}
                        for i in range(8)])], ["d.jsonl", "instruction"])
case("data-sft-messages-as-string", "sft", "messages column holding a JSON string, not a list",
     run_argv("sft", "--dataset_name", "{W}/d.csv"),
     [write("d.csv", "messages\n" + "".join(
         '"[{""role"": ""user"", ""content"": ""q%d""}, {""role"": ""assistant"", ""content"": ""a%d""}]"\n' % (i, i)
         for i in range(8)))], ["d.csv", "messages"])
case("data-sft-non-utf8", "sft", "JSONL with Latin-1 bytes (not UTF-8)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", b"".join(('{"prompt": "caf\xe9 %d?", "completion": "oui"}\n' % i).encode("latin-1")
                                for i in range(8)))], ["d.jsonl"])
case("data-sft-huge-row", "sft", "one completion of 3000 words (far longer than max_length)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"prompt": f"Tell me about {i}.", "completion": ("word " * 3000 if i == 0 else f"It is {i}.")}
                        for i in range(12)])], ["max_length"], ok_when=r"cut short")
case("data-sft-huge-prompts", "sft", "3 of 12 rows with a prompt longer than max_length (no reply left)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", [{"prompt": ("word " * 500 if i < 3 else f"Tell me about {i}."), "completion": f"It is {i}."}
                        for i in range(12)])], ["max_length"])
case("data-sft-parquet-is-text", "sft", "a .parquet file that is really JSONL text",
     run_argv("sft", "--dataset_name", "{W}/d.parquet"), [write("d.parquet", pc_rows(8))], ["d.parquet"])
case("data-sft-unknown-extension", "sft", "a .tsv file", run_argv("sft", "--dataset_name", "{W}/d.tsv"),
     [write("d.tsv", "prompt\tcompletion\nq\ta\n")], ["d.tsv"])
case("data-sft-hub-offline", "sft", "dataset_name foo/bar (Hub id, offline)",
     run_argv("sft", "--dataset_name", "foo/bar"), [], ["dataset_name", "foo/bar"])
case("data-sft-dir-not-dataset", "sft", "dataset_name a directory of text files (not save_to_disk)",
     run_argv("sft", "--dataset_name", "{W}/data"), [write("data/notes.txt", "hello\n")], ["dataset_name", "data"])
case("data-sft-glob-no-match", "sft", "dataset_name a glob matching nothing", run_argv("sft", "--dataset_name",
     "{W}/data/*.jsonl"), [mkdir("data")], ["*.jsonl", "dataset_name"])
case("data-sft-invalid-rows-value", "sft", "invalid_rows drop (not error/skip)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl", "--invalid_rows", "drop"), [write("d.jsonl", pc_rows(8))],
     ["invalid_rows"])
case("data-sft-json-list-of-strings", "sft", ".json holding a list of strings",
     run_argv("sft", "--dataset_name", "{W}/d.json"), [write("d.json", ["q1", "q2"], kind="json")], ["d.json", "row 1"])
case("data-sft-jsonl-truncated-line", "sft", "JSONL whose line 3 is cut off",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n{"prompt": "e", "comp\n')],
     ["d.jsonl", "line 3"])
case("data-sft-csv-ragged", "sft", "CSV row 3 with an extra unquoted comma",
     run_argv("sft", "--dataset_name", "{W}/d.csv"),
     [write("d.csv", "prompt,completion\nWhat is 1+1?,2\nName a colour,red\nList two,cat, dog\nSay hi,hi\n")],
     ["d.csv", "row", "line"])
case("data-sft-split-test-on-file", "sft", "dataset_train_split test on a single JSONL file",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "test"), [write("d.jsonl", pc_rows(8))],
     ["dataset_train_split", "split"])
case("data-sft-all-skipped", "sft", "invalid_rows skip on a file where every row is malformed",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl", "--invalid_rows", "skip"),
     [write("d.jsonl", [{"prompt": f"q{i}", "completion": ""} for i in range(6)])], ["d.jsonl"])
case("data-sft-jsonl-bom", "sft", "JSONL with a UTF-8 byte-order mark (Windows editor)",
     run_argv("sft", "--dataset_name", "{W}/d.jsonl"),
     [write("d.jsonl", b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in pc_rows(8)).encode())],
     ["d.jsonl", "line 1"], ok_when=r"prompt_completion: 8 rows in")
case("data-reward-sft-layout", "reward", "dataset_name a messages (SFT) JSONL file, not pairs",
     run_argv("reward", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train[:80%]",
              "--dataset_test_split", "train[80%:]"),
     [write("d.jsonl", [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
                        for i in range(10)])], ["d.jsonl", "layout"])
case("data-reward-identical-pairs", "reward", "every pair's chosen == rejected",
     run_argv("reward", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train[:75%]",
              "--dataset_test_split", "train[75%:]"),
     [write("d.jsonl", [{**r, "rejected": r["chosen"]} for r in prefs(24)])], ["d.jsonl", "identical", "rejected"])
case("data-reward-test-split-missing", "reward", "dataset_test_split validation on a DatasetDict with train/test",
     run_argv("reward", "--dataset_test_split", "validation"), [], ["dataset_test_split", "validation"])
case("data-reward-train-split-typo", "reward", "dataset_train_split training (no such split)",
     run_argv("reward", "--dataset_train_split", "training"), [], ["dataset_train_split", "training"])
case("data-reward-empty-chosen", "reward", "a pair whose chosen is an empty string (row 3)",
     run_argv("reward", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train[:75%]",
              "--dataset_test_split", "train[75%:]"),
     [write("d.jsonl", [{"prompt": f"q{i}", "chosen": ("" if i == 2 else f"good {i}"), "rejected": f"bad {i}"}
                        for i in range(16)])], ["d.jsonl", "row 3", "chosen"])
case("data-reward-hh-no-assistant", "reward", "hh-rlhf text where 'rejected' has no Assistant turn (row 1)",
     run_argv("reward", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train[:75%]",
              "--dataset_test_split", "train[75%:]"),
     [write("d.jsonl", [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}",
                         "rejected": (f"\n\nHuman: q{i}" if i == 0 else f"\n\nHuman: q{i}\n\nAssistant: bad {i}")}
                        for i in range(16)])], ["d.jsonl", "row 1", "rejected"])
case("data-reward-csv-null-rejected", "reward", "CSV with an empty rejected cell in row 2",
     run_argv("reward", "--dataset_name", "{W}/d.csv", "--dataset_train_split", "train[:75%]",
              "--dataset_test_split", "train[75%:]"),
     [write("d.csv", "prompt,chosen,rejected\n" + "".join(f"q{i},good {i},{'' if i == 1 else f'bad {i}'}\n"
                                                          for i in range(16)))], ["d.csv", "row 2", "rejected"])
case("data-reward-empty-test-split", "reward", "saved DatasetDict whose test split has no rows",
     run_argv("reward", "--dataset_name", "{W}/pairs", "--dataset_train_split", "train",
              "--dataset_test_split", "test"),
     [lambda c: __import__("datasets").DatasetDict(
         train=__import__("datasets").Dataset.from_list(prefs(16)),
         test=__import__("datasets").Dataset.from_list(prefs(1)).select([])).save_to_disk(str(c.W / "pairs"))],
     ["test", "dataset_test_split"])
case("data-reward-json-number-prompt", "reward", ".json list where row 5's prompt is a number",
     run_argv("reward", "--dataset_name", "{W}/d.json", "--dataset_train_split", "train[:75%]",
              "--dataset_test_split", "train[75%:]"),
     [write("d.json", [{"prompt": (42 if i == 4 else f"q{i}"), "chosen": f"good {i}", "rejected": f"bad {i}"}
                       for i in range(16)], kind="json")], ["d.json", "row 5"])
case("data-judge-missing-set", "judge", "judge's dataset_name judge_comparisons of a compare run without them",
     run_argv("judge", "--dataset_name", "{W}/compare/judge_comparisons"),
     [copy("compare", "compare", drop=["judge_comparisons"])], ["dataset_name", "judge_comparisons"])
case("data-dpo-sft-layout", "dpo", "DPO on a prompt/completion file (no pairs)",
     run_argv("dpo", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train"), [write("d.jsonl", pc_rows(16))],
     ["d.jsonl", "layout"])
case("data-dpo-missing-path", "dpo", "dataset_name a missing dir (compare/comparison)",
     run_argv("dpo", "--dataset_name", "{I}/compare/comparison"), [], ["dataset_name"])
case("data-dpo-hub-offline", "dpo", "dataset_name trl-lib/ultrafeedback_binarized (Hub, offline)",
     run_argv("dpo", "--dataset_name", "trl-lib/ultrafeedback_binarized", "--dataset_train_split", "train"), [],
     ["dataset_name", "ultrafeedback"])
case("data-dpo-identical-pairs", "dpo", "every pair's chosen == rejected",
     run_argv("dpo", "--dataset_name", "{W}/d.jsonl", "--dataset_train_split", "train"),
     [write("d.jsonl", [{**r, "rejected": r["chosen"]} for r in prefs(16)])], ["d.jsonl", "identical", "rejected"])
case("data-ppo-prompts-no-column", "ppo", "dataset_name a JSONL of prompts under 'question'",
     run_argv("ppo", "--dataset_name", "{W}/p.jsonl"),
     [write("p.jsonl", [{"question": f"What is {i} plus 2?"} for i in range(16)])], ["p.jsonl", "prompt_column",
                                                                                     "question"])
case("data-ppo-prompts-empty-strings", "ppo", "dataset prompts all empty strings",
     run_argv("ppo", "--dataset_name", "{W}/p.jsonl"), [write("p.jsonl", [{"prompt": ""} for _ in range(16)])],
     ["p.jsonl", "prompt"])
case("data-ppo-prompts-hub-offline", "ppo", "dataset_name foo/bar for PPO prompts (offline)",
     run_argv("ppo", "--dataset_name", "foo/bar"), [], ["dataset_name", "foo/bar"])
case("data-grpo-prompts-numbers", "grpo", "prompt column all numbers", run_argv("grpo", "--dataset_name", "{W}/p.csv"),
     [write("p.csv", "prompt\n" + "".join(f"{i}\n" for i in range(16)))], ["p.csv", "prompt"])
case("data-compare-noisy-with-dataset", "compare", "labeler noisy with a dataset_name (toy labeler on other prompts)",
     run_argv("compare", "--dataset_name", "{W}/p.jsonl"), [write("p.jsonl", [{"prompt": f"q{i}"} for i in range(8)])],
     ["labeler"])
case("data-compare-human-prompts-wrong-col", "compare", "labeler human on a dataset whose prompts are under 'text'",
     run_argv("compare", "--labeler", "human", "--labeling_file", "{O}/l.jsonl", "--dataset_name", "{W}/p.jsonl",
              "--dataset_train_split", "train"),
     [write("p.jsonl", [{"text": f"What is {i} plus 2?"} for i in range(8)])], ["p.jsonl", "prompt_column", "text"])
case("data-eval-file-default-split", "evaluate", "dataset_name a JSONL file with dataset_split left at 'test'",
     run_argv("evaluate", "--dataset_name", "{W}/p.jsonl"), [write("p.jsonl", [{"prompt": f"q{i}"} for i in range(8)])],
     ["dataset_split", "split"])
case("data-eval-hub-offline", "evaluate", "dataset_name Anthropic/hh-rlhf offline",
     run_argv("evaluate", "--dataset_name", "Anthropic/hh-rlhf"), [], ["dataset_name", "hh-rlhf"])
case("data-pre-empty-txt", "pretrain", "dataset_name an empty .txt file", run_argv("pretrain", "--dataset_name",
     "{W}/c.txt"), [write("c.txt", "")], ["c.txt"])
case("data-pre-numbers-text-column", "pretrain", "CSV whose text column holds numbers",
     run_argv("pretrain", "--dataset_name", "{W}/c.csv"), [write("c.csv", "text\n" + "".join(f"{i}\n" for i in range(40)))],
     ["c.csv", "text"])
case("data-pre-fewer-docs-than-eval", "pretrain", "a 5-line corpus with num_eval_documents 8",
     run_argv("pretrain", "--dataset_name", "{W}/c.txt"), [write("c.txt", "".join(f"doc {i}\n" for i in range(5)))],
     ["num_eval_documents", "c.txt"])
case("data-pre-parquet-is-text", "pretrain", "a .parquet file that is plain text",
     run_argv("pretrain", "--dataset_name", "{W}/c.parquet"), [write("c.parquet", "hello world\n" * 50)], ["c.parquet"])
case("data-pre-non-utf8-txt", "pretrain", "a .txt corpus in Latin-1", run_argv("pretrain", "--dataset_name", "{W}/c.txt"),
     [write("c.txt", ("caf\xe9 au lait %d\n" * 1).encode("latin-1") * 60)], ["c.txt"])

# ============================== labeling files (compare, labeler human, rankings_file) ============================
HUMAN = ["--labeler", "human", "--rankings_file"]


def _set(i, **kv):
    """edit: row i's fields set to kv (None removes the field)"""
    def edit(rows):
        for k, v in kv.items():
            if v is None:
                rows[i].pop(k, None)
            else:
                rows[i][k] = v
        return rows
    return edit


case("lab-bad-ids", "compare", "ranking 1>2>5>3 in row 3 (response 5 does not exist, 4 missing)",
     run_argv("compare", *HUMAN, "{W}/r.csv"), [rankings("r.csv", _set(2, ranking="1>2>5>3"), csv=True)],
     ["r.csv", "row 3"])
case("lab-tie", "compare", "ranking 1=2>3>4 (a tie) in row 1", run_argv("compare", *HUMAN, "{W}/r.csv"),
     [rankings("r.csv", _set(0, ranking="1=2>3>4"), csv=True)], ["r.csv", "row 1"])
case("lab-zero-based", "compare", "JSONL rankings 0-based ([0,1,2,3]) in every row",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", lambda rows: [{**r, "ranking": [0, 1, 2, 3]} for r in rows])], ["r.jsonl", "row 1"])
case("lab-unfilled-rows", "compare", "rows 5-8 left unranked (ranking null)", run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", lambda rows: [{**r, "ranking": (r["ranking"] if i < 4 else None)} for i, r in enumerate(rows)])],
     ["r.jsonl", "row 5"])
case("lab-missing-prompt-col", "compare", "CSV rankings file without the prompt column",
     run_argv("compare", *HUMAN, "{W}/r.csv"),
     [rankings("r.csv", lambda rows: [{k: v for k, v in r.items() if k != "prompt"} for r in rows], csv=True)],
     ["r.csv", "prompt"])
case("lab-file-missing", "compare", "rankings_file does not exist",
     run_argv("compare", *HUMAN, "{W}/ranked.csv"), [], ["rankings_file", "ranked.csv"])
case("lab-k-differs", "compare", "row 2 has 3 responses, the others 4", run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", _set(1, response_4=None, ranking=[3, 1, 2]))], ["r.jsonl", "row 2"])
case("lab-ranking-strings", "compare", "JSONL ranking as a list of strings [\"2\",\"1\",\"3\",\"4\"]",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", lambda rows: [{**r, "ranking": ["2", "1", "3", "4"]} for r in rows])], ["r.jsonl", "row 1"])
case("lab-broken-json-line", "compare", "JSONL rankings file with a cut-off line 4",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl"), lambda c: (c.W / "r.jsonl").write_text("".join(
         (line[:-10] if i == 3 else line) + "\n" for i, line in enumerate((c.W / "r.jsonl").read_text().splitlines())))],
     ["r.jsonl", "line 4", "row 4"])
case("lab-xlsx", "compare", "rankings_file saved as .xlsx", run_argv("compare", *HUMAN, "{W}/r.xlsx"),
     [write("r.xlsx", b"PK\x03\x04 not really a spreadsheet")], ["r.xlsx", "rankings_file"])
case("lab-empty-responses", "compare", "every response of row 1 is an empty string",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", _set(0, response_1="", response_2="", response_3="", response_4=""))], ["r.jsonl", "row 1"],
     ok_when=r"\"prompts\": 8")
case("lab-identical-responses", "compare", "all four responses identical in every row (no pairs at all)",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", lambda rows: [{**r, **{f"response_{j}": "same" for j in range(1, 5)}} for r in rows])],
     ["r.jsonl", "pairs", "identical"])
case("lab-judge-too-many", "compare", "judge_prompts 8 with an 8-row rankings file",
     run_argv("compare", *HUMAN, "{W}/r.jsonl", "--judge_prompts", "8"), [rankings("r.jsonl")], ["judge_prompts"])
case("lab-duplicate-prompts", "compare", "the same prompt in every row (8 rows)",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [rankings("r.jsonl", lambda rows: [{**r, "prompt": rows[0]["prompt"]} for r in rows])], ["r.jsonl", "prompt"])
case("lab-own-prompts-no-dataset", "compare", "rankings of one's own (non-toy) prompts, dataset_name unset",
     run_argv("compare", *HUMAN, "{W}/r.jsonl"),
     [lambda c: (c.W / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rankings_rows(
         [f"Write a haiku about topic {i}." for i in range(8)])))], ["r.jsonl", "dataset_name"],
     ok_when=r"\"prompts\": 8")
case("lab-ranking-mixed-sep", "compare", "CSV ranking '3 > 1, 4 > 2' (comma inside)", run_argv("compare", *HUMAN, "{W}/r.csv"),
     [rankings("r.csv", _set(0, ranking="3 > 1, 4 > 2"), csv=True)], ["r.csv", "row 1"])

# ============================== push / hub =================================================================
case("push-offline", "push", "recipes.push while HF_HUB_OFFLINE=1", run_argv("push"), [], ["HF_HUB_OFFLINE"])
case("push-stage-missing", "push", "stage_dir does not exist", run_argv("push", "--stage_dir", "{I}/sftt"), [],
     ["stage_dir", "sftt"])
case("push-stage-is-file", "push", "stage_dir is a file", run_argv("push", "--stage_dir", "{I}/sft/stage.json"), [],
     ["stage_dir", "stage.json"])
case("push-no-repo-id", "push", "repo_id missing (required)", ["--stage_dir", "{I}/sft"], [], ["repo_id"])
case("push-private-maybe", "push", "--private maybe", run_argv("push", "--private", "maybe"), [], ["private"])
case("push-bad-repo-id", "push", "repo_id with spaces and three parts", run_argv("push", "--repo_id", "me/my model/v1"),
     [], ["repo_id"])
case("push-reward-to-hub-offline", "reward", "push_to_hub true with hub_model_id, offline",
     run_argv("reward", "--push_to_hub", "true", "--hub_model_id", "me/rm"), [], ["push_to_hub", "HF_HUB_OFFLINE"])
case("push-compare-no-dataset-id", "compare", "push_to_hub true without hub_dataset_id",
     run_argv("compare", "--push_to_hub", "true"), [], ["hub_dataset_id"])
case("push-grpo-hub-token-cli", "grpo", "--hub_token on the command line", run_argv("grpo", "--hub_token", "hf_abc123"),
     [], ["hub_token"])
case("push-ppo-no-token", "ppo", "push_to_hub true, online mode but no token (HF_TOKEN empty, no login)",
     run_argv("ppo", "--push_to_hub", "true", "--hub_model_id", "me/ppo"), [], ["push_to_hub", "token"],
     env={"HF_HUB_OFFLINE": "0", "HF_TOKEN": "", "HF_HOME": "{W}/hf_home"})
case("push-pretrain-hub-id-missing-offline", "pretrain", "push_to_hub true and hub_model_id unset (offline)",
     run_argv("pretrain", "--push_to_hub", "true"), [], ["hub_model_id"])

# ============================== pipeline =====================================================================
case("pipe-skip-as-string", "pipeline", "skip: ppo (a string, not a list)", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", skip="ppo")], ["skip"])
case("pipe-missing-stage-config", "pipeline", "reward_config names a missing file", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", reward_config="configs/tiny/fast/rewards.yaml")], ["reward_config"])
case("pipe-seed-negative", "pipeline", "--seed -1", ["--config", "{W}/p.yaml", "--seed", "-1"],
     [pipeline_cfg("p.yaml")], ["seed"])
case("pipe-seed-text", "pipeline", "seed: zero in YAML", ["--config", "{W}/p.yaml"], [pipeline_cfg("p.yaml", seed="zero")],
     ["seed"])
case("pipe-run-dir-under-file", "pipeline", "run_dir /etc/passwd/run", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", run_dir="/etc/passwd/run")], ["run_dir"])
case("pipe-run-dir-is-file", "pipeline", "run_dir is an existing regular file", ["--config", "{W}/p.yaml"],
     [write("afile", "x\n"), pipeline_cfg("p.yaml", run_dir="{W}/afile")], ["run_dir"])
case("pipe-bad-late-stage-arg", "pipeline", "evaluate_args with a misspelled flag (--num_promts)",
     ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", evaluate_args=["--num_promts", 8])], ["num_promts", "evaluate_args"])
case("pipe-bad-late-stage-value", "pipeline", "ppo_args --kl_coef abc (not a number)", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", ppo_args=[*PIPELINE["ppo_args"], "--kl_coef", "abc"])], ["kl_coef", "ppo_args"])
case("pipe-stage-args-string", "pipeline", "sft_args: '--max_steps 2' (one string, not a list)",
     ["--config", "{W}/p.yaml"], [pipeline_cfg("p.yaml", sft_args="--max_steps 2")], ["sft_args"])
case("pipe-base-model-missing", "pipeline", "base_model a missing dir", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", base_model="{I}/pretrainn")], ["base_model"])
case("pipe-skip-needed-stage", "pipeline", "skip [sft] while compare, reward... need it (their configs point at "
     "runs/tiny-fast)", ["--config", "{W}/p.yaml"], [pipeline_cfg("p.yaml", skip=["sft"])], ["skip", "sft", "policy"])
case("pipe-unknown-key", "pipeline", "pipeline YAML with 'stages: [...]' (unknown key)", ["--config", "{W}/p.yaml"],
     [pipeline_cfg("p.yaml", stages=["sft", "ppo"])], ["stages"])
case("pipe-world-entities-zero", "pipeline", "world_entities 0", ["--config", "{W}/p.yaml", "--world_entities", "0"],
     [pipeline_cfg("p.yaml")], ["world_entities"])
case("pipe-stage-config-wrong-stage", "pipeline", "ppo_config points at the DPO config",
     ["--config", "{W}/p.yaml"], [pipeline_cfg("p.yaml", ppo_config="configs/tiny/fast/dpo.yaml")], ["ppo_config"])
case("pipe-run-dir-is-input-stage", "pipeline", "run_dir is a finished stage's dir (SFT copy)",
     ["--config", "{W}/p.yaml"], [copy("sft", "sft"), pipeline_cfg("p.yaml", run_dir="{W}/sft")], ["run_dir"])

# ============================== arena and benchmarks ========================================================
case("arena-methods-string", "arena", "methods: dpo (a string, not a list)", ["--config", "{W}/a.yaml"],
     [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml", methods="dpo")], ["methods"])
case("arena-method-config-missing", "arena", "dpo_config a missing file", ["--config", "{W}/a.yaml"],
     [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml", dpo_config="configs/tiny/fast/dpo2.yaml")],
     ["dpo_config"])
case("arena-method-args-bad", "arena", "method_args with an unknown flag", ["--config", "{W}/a.yaml"],
     [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml", method_args=["--bogus_flag", "1"])],
     ["bogus_flag", "method_args"])
case("arena-num-prompts-zero", "arena", "num_prompts 0", ["--config", "{W}/a.yaml"],
     [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml", num_prompts=0)], ["num_prompts"])
case("arena-output-is-run-stage", "arena", "output_dir is the run's sft stage dir",
     ["--config", "{W}/a.yaml"], [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml", output_dir="{W}/run/sft")],
     ["output_dir"])
case("arena-run-reward-unfinished", "arena", "the run's reward stage lacks stage.json", ["--config", "{W}/a.yaml"],
     [run_copy("sft", "compare", "reward"), lambda c: (c.W / "run/reward/stage.json").unlink(), arena_cfg("a.yaml")],
     ["reward", "run_dir"])
case("bench-model-hub-offline", "benchmarks", "models lists EleutherAI/pythia-14m (offline)",
     run_argv("benchmarks", "--models", "EleutherAI/pythia-14m"), [], ["models", "pythia"])


# ---------------------------------------------------------------------------------------------------------------
# Controls: the same base commands with nothing wrong (they must pass for the campaign to mean anything)
CONTROLS = []
for _stage in ("pretrain", "sft", "compare", "reward", "judge", "ppo", "rloo", "grpo", "dpo", "evaluate", "benchmarks"):
    CONTROLS.append({"id": f"ctl-{_stage}", "stage": _stage, "wrong": "nothing (control)", "argv": run_argv(_stage),
                     "setup": [], "place": [], "inputs": [], "ok_when": None, "module": MODULES.get(_stage, _stage),
                     "env": {}, "note": "", "expect": "should succeed"})
CONTROLS.append({"id": "ctl-pipeline", "stage": "pipeline", "wrong": "nothing (control)", "argv": ["--config", "{W}/p.yaml"],
                 "setup": [pipeline_cfg("p.yaml")], "place": [], "inputs": [], "ok_when": None, "module": "pipeline",
                 "env": {}, "note": "", "expect": "should succeed"})
CONTROLS.append({"id": "ctl-arena", "stage": "arena", "wrong": "nothing (control)", "argv": ["--config", "{W}/a.yaml"],
                 "setup": [run_copy("sft", "compare", "reward"), arena_cfg("a.yaml")], "place": [], "inputs": [],
                 "ok_when": None, "module": "arena", "env": {}, "note": "", "expect": "should succeed"})


# ---------------------------------------------------------------------------------------------------------------
# Running and classifying
TRAIN_LOG = re.compile(r"'loss': |'train_runtime'|train_runtime|'objective/|'episode': |'rewards/|'train_loss'")
WORK_BARS = re.compile(r"^(sampling responses|gold eval|gold check|KL check|KL to SFT|reward model|best-of-|SFT|base, |"
                       r"LLM judge|llm_judge|knowledge probes|Running loglikelihood|ppo|rloo|grpo|dpo)[^\n\r]*?\| *[1-9]\d*/\d+ \[",
                       re.M)
TRAIN_FILES = ("stage.json", "adapter_model.safetensors", "model.safetensors", "trainer_state.json",
               "log_history.json", "eval_results.json", "responses.jsonl", "results.json", "rankings.jsonl",
               "train.jsonl", "report.md", "arena.json")
FIX = re.compile(r"\b(use|set|raise|lower|rerun|re-run|run the|fix|remove|choose|point|give|unset|add|log in|delete|"
                 r"rename|must|should|needs?|expected|try|pass|quote|fill in|train a|filter|increase|decrease|"
                 r"one of|did you mean|instead)\b", re.I)
EXC_NAME = re.compile(r"^(?:[a-z_]\w*\.)*[A-Z]\w*(: |$)")


def tree_hash(root: Path, skip=()) -> dict[str, str]:
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if any(p == k or k in p.parents for k in skip):
            continue
        if p.is_file() and not p.is_symlink():
            h = hashlib.sha1()
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[str(p.relative_to(root))] = h.hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = "dir"
    return out


def diff(before: dict, after: dict) -> list[str]:
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


def error_message(text: str) -> tuple[str, bool]:
    """The error message (the last traceback's exception line and what follows it, else argparse's 'error:' line,
    else the last lines) and whether it came from a library (the last traceback frame outside the repo)."""
    lines = text.splitlines()
    tb_starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if tb_starts:
        start = tb_starts[-1]
        frames = [line for line in lines[start:] if line.strip().startswith('File "')]
        exc = next((i for i in range(start + 1, len(lines)) if EXC_NAME.match(lines[i])), None)
        if exc is None:
            exc = next((i for i in range(len(lines) - 1, start, -1) if lines[i].strip()), start)
        msg = "\n".join(lines[exc:exc + 12]).strip()
        last = frames[-1] if frames else ""
        lib = ("site-packages" in last or "/lib/python" in last) and "/recipes/" not in last
        return msg, lib
    errs = [line for line in lines if re.search(r"(^|: )error: ", line)]
    if errs:
        return errs[-1], False
    nonempty = [line for line in lines if line.strip()]
    return ("\n".join(nonempty[-3:]) if nonempty else ""), False


def first_line(msg: str) -> str:
    for line in msg.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def classify(r: dict, case: dict) -> tuple[str, str]:
    if r["inputs_modified"]:
        return "E", "inputs modified: " + ", ".join(r["inputs_modified"][:5])
    if r["exit"] == 0:
        ok = case.get("ok_when")
        if callable(ok) and ok(r["output"], Path(r["out_dir"])):
            return "B-OK", "accepted; " + (ok.__doc__ or "legitimately handled")
        if isinstance(ok, str) and re.search(ok, r["output"]):
            return "B-OK", f"accepted; output matches {ok!r}"
        return "B", "accepted"
    if r["timed_out"]:
        return "C", "timed out (ran on)"
    if r["training_log"] or r["train_files"] or r["work_bars"]:
        return "C", "failed after work started: " + ", ".join(
            (["training log"] if r["training_log"] else []) + (["progress bars"] if r["work_bars"] else [])
            + r["train_files"][:4])
    msg = r["message"].lower()
    place = any(p.lower() in msg for p in case["place"])
    fix = bool(FIX.search(r["message"])) and not re.search(r"error: argument .*: expected one argument", r["message"])
    if not place:
        return "D", ("raw library error" if r["library_error"] else "message") + ", place not named"
    if place and fix:
        return "A", "place and fix named" + (" (library message)" if r["library_error"] else "")
    return "A-", "place named, no fix" + (" (library message)" if r["library_error"] else "")


# Manual judgments of messages the rules above misjudge: {id: (regex the first line must match, or None for a run
# that exits 0; class; why)}. A judgment applies only while its regex still matches, so a rerun against a newer
# commit whose message changed is classified afresh.
OVERRIDES: dict[str, tuple[str | None, str, str]] = {
    "cfg-yaml-unclosed-quote": (r"ScannerError", "A-", "PyYAML's message names file and line, no fix"),
    "range-negative-lr-grpo": (r"expected one argument", "D", "argparse reads '-3e-3' as an option and says the flag "
                               "has no value: the wrong explanation (-0.003 is refused properly)"),
    "range-ppo-seed-negative": (r"Seed must be between", "A-", "numpy's message from set_seed, after the stage dir "
                                "exists; names seed and range, not the file"),
    "range-sft-max-dropped-negative": (r"drops 0 of", "A-", "refused, but blames max_length ('drops 0 of 32 ... more "
                                       "than max_dropped_fraction=-0.1'); the fraction is not range-checked"),
    "range-sft-fp16-and-bf16": (r"doesn't support bf16", "A-", "transformers' message names bf16 only and says set "
                                "use_cpu; the fp16+bf16 clash is not mentioned"),
    "tok-sft-no-tokenizer-files": (r"Couldn't instantiate the backend tokenizer", "D", "transformers' message names "
                                   "neither the key nor the directory"),
    "tok-compare-no-template": (r"Cannot use chat template functions", "A-", "transformers' message: the chat template "
                                "is missing, but not which model (policy)"),
    "data-sft-csv-null": (r"row 1: field 'completion'.*got (float|int)", "D", "names row 1, while the empty cell is in "
                          "row 3: the CSV's numbers make the whole column non-text (a CSV with numeric answers is "
                          "refused in every row)"),
    "data-ppo-prompts-empty-strings": (r"no prompt fits in max_prompt_tokens", "D", "wrong diagnosis: the prompts are "
                                       "empty, not too long"),
    "data-grpo-prompts-numbers": (r"no prompt fits in max_prompt_tokens", "D", "wrong diagnosis: the prompts are "
                                  "numbers, not too long"),
    "range-ppo-world-entities-zero": (r"a toy world needs num_entities", "A-", "names num_entities (the key is "
                                      "world_entities) and the bound, not the file"),
    "range-rloo-num-generations-one": (r"RLOO requires at least 2 generations", "A-", "TRL's own check fires first "
                                       "(before the repo's range check); names the bound, not the key"),
    "range-dpo-loss-type-typo": (r"Unknown loss type", "A-", "TRL lists the valid types, but only inside "
                                 "trainer.train(), after the models are loaded"),
    "range-pre-heads-not-divisor": (r"StrictDataclassClassValidationError", "A-", "library message names the sizes "
                                    "64 and 3, not the keys or file"),
    "data-reward-test-split-missing": (r"KeyError: 'validation'", "D", "a bare KeyError naming the split only"),
    "data-reward-train-split-typo": (r"KeyError: 'training'", "D", "a bare KeyError naming the split only"),
    "data-sft-dir-not-dataset": (r"no such file or directory", "D", "the directory exists (it is not a dataset): wrong "
                                 "diagnosis"),
    "push-bad-repo-id": (r"HF_HUB_OFFLINE is set", "A-", "refused because offline comes first; the malformed repo_id "
                         "itself is not checked"),
    "lab-k-differs": (None, "B-OK", "a prompt ranked over 3 responses gives its 3 pairs; a legitimate file"),
    "range-ppo-episodes-below-batch": (None, "B-OK", "TRL rounds up to one whole batch (8 episodes for 4); harmless"),
}


def final_class(r: dict, case: dict) -> tuple[str, str]:
    cls, why = classify(r, case)
    o = OVERRIDES.get(r["id"])
    if o and cls != "E" and ((o[0] is None and r["exit"] == 0) or (o[0] is not None and r["exit"] != 0
                                                                     and re.search(o[0], r["message"]))):
        return o[1], f"manual: {o[2]} (auto: {cls}, {why})"
    return cls, why


def run_case(case: dict, ctx) -> dict:
    cid = case["id"]
    W = ctx.scratch / "work" / cid
    O = ctx.scratch / "out" / cid
    for d in (W, O):
        shutil.rmtree(d, ignore_errors=True)
    W.mkdir(parents=True)
    c = SimpleNamespace(I=ctx.inputs, W=W, O=O, R=ctx.repo)
    cwd = os.getcwd()
    os.chdir(ctx.repo)
    try:
        for step in case["setup"]:
            step(c)
    finally:
        os.chdir(cwd)
    argv = [sub(a, c) for a in case["argv"]]
    command = ["nice", "-n", "19", "timeout", str(ctx.timeout), ctx.python, "-m", f"recipes.{case['module']}", *argv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           **{k: sub(v, c) for k, v in case["env"].items()}}
    extra = [Path(sub(p, c)) for p in case["inputs"]]
    # outputs that live in the work dir are not inputs: the pipeline's run_dir ({W}/run)
    skip = [W / "run"] if case["stage"] == "pipeline" else []
    before = {"inputs": tree_hash(ctx.inputs), "work": tree_hash(W, skip),
              **{str(p): tree_hash(p) if p.is_dir() else {p.name: hashlib.sha1(p.read_bytes()).hexdigest()}
                 for p in extra if p.exists()}}
    start = time.time()
    proc = subprocess.run(command, cwd=ctx.repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    seconds = round(time.time() - start, 1)
    output = proc.stdout
    after = {"inputs": tree_hash(ctx.inputs), "work": tree_hash(W, skip),
             **{str(p): tree_hash(p) if p.is_dir() else {p.name: hashlib.sha1(p.read_bytes()).hexdigest()}
                for p in extra if p.exists()}}
    modified = [f"{where}:{k}" for where in before for k in diff(before[where], after.get(where, {}))]
    # the case's output dir: where it would be written
    out_dirs = [a for flag, a in zip(argv, argv[1:]) if flag in ("--output_dir", "--report_dir")]
    out_dirs = [Path(a) for a in out_dirs] + [O]
    if case["stage"] in ("pipeline", "arena"):
        out_dirs += [W / "run", O]
    found = set()
    for d in out_dirs:
        if d.is_dir() and not str(d).startswith("/etc"):
            for p in d.rglob("*"):
                # files that were inputs are not outputs: only those created or changed during the run
                if (p.name in TRAIN_FILES or p.name.startswith("checkpoint-") or p.name == "merged") \
                        and p.stat().st_mtime >= start - 1:
                    found.add(str(p.relative_to(d)) if d != O else str(p.relative_to(O)))
    message, lib = error_message(output) if proc.returncode != 0 else ("", False)
    result = {"id": cid, "stage": case["stage"], "wrong": case["wrong"], "expect": case["expect"],
              "command": " ".join(["python", "-m", f"recipes.{case['module']}", *argv]),
              "exit": proc.returncode, "timed_out": proc.returncode in (124, 137), "seconds": seconds,
              "traceback": "Traceback (most recent call last)" in output, "library_error": lib,
              "message": message, "first_line": first_line(message),
              "stage_json": any(f.endswith("stage.json") for f in found),
              "train_files": sorted(found), "training_log": bool(TRAIN_LOG.search(output)),
              "work_bars": bool(WORK_BARS.search(output)), "inputs_modified": modified,
              "tail": output[-3000:], "output": output}
    result["out_dir"] = str(O)
    (ctx.out / "logs").mkdir(exist_ok=True)
    (ctx.out / "logs" / f"{cid}.log").write_text(" ".join(command) + "\n\n" + output)
    if case["expect"] == "should fail":
        result["class"], result["why"] = final_class(result, case)
    else:
        result["class"], result["why"] = ("CONTROL-OK" if proc.returncode == 0 else "CONTROL-FAIL"), ""
    if modified and any(m.startswith("inputs:") for m in modified):  # restore the shared inputs copy
        shutil.rmtree(ctx.inputs)
        shutil.copytree(ctx.source, ctx.inputs, symlinks=True)
    return result


def write_reports(results: list[dict], out: Path, commit: str):
    slim = [{k: v for k, v in r.items() if k != "output"} for r in results]
    (out / "results.json").write_text(json.dumps({"commit": commit, "cases": slim}, indent=1))
    counts: dict[str, int] = {}
    for r in results:
        if r["expect"] == "should fail":
            counts[r["class"]] = counts.get(r["class"], 0) + 1
    lines = [f"# Bad-input campaign ({len([r for r in results if r['expect'] == 'should fail'])} cases, commit {commit})",
             "", "Classes: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), "",
             "| id | stage | what's wrong | class | exit | s | traceback | first line of the error message |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        msg = (r["first_line"] or ("(accepted)" if r["exit"] == 0 else "")).replace("|", "\\|")
        lines.append(f"| {r['id']} | {r['stage']} | {r['wrong'].replace('|', '/')} | {r['class']} | {r['exit']} | "
                     f"{r['seconds']:.0f} | {'yes' if r['traceback'] else 'no'} | {msg[:200]} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True)
    p.add_argument("--inputs", required=True, help="a finished run (pretrain, sft, compare, reward, judge, ppo, ...)")
    p.add_argument("--out", required=True, help="where results.json and results.md go")
    p.add_argument("--only", default="", help="comma-separated case ids (or prefixes ending in *)")
    p.add_argument("--python", default=PY_DEFAULT)
    p.add_argument("--scratch", default="/tmp/camp_out")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--controls", action="store_true", help="also run the controls (nothing wrong)")
    p.add_argument("--merge", action="store_true", help="merge into an existing results.json (keep other cases)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--reclassify", action="store_true", help="recompute the classes of --out's results.json (with "
                   "its logs/) under the current rules and overrides, running nothing")
    a = p.parse_args()
    repo, out, scratch = Path(a.repo).resolve(), Path(a.out).resolve(), Path(a.scratch).resolve()
    os.chdir(repo)  # configs are read relative to the repo
    cases = (CONTROLS if a.controls else []) + C
    if a.only:
        wanted = [w.strip() for w in a.only.split(",") if w.strip()]
        cases = [c for c in (CONTROLS + C) if any(c["id"] == w or (w.endswith("*") and c["id"].startswith(w[:-1]))
                                                  for w in wanted)]
    ids = [c["id"] for c in C]
    assert len(ids) == len(set(ids)), "duplicate ids"
    if a.list:
        for c in cases:
            print(c["id"], "|", c["stage"], "|", c["wrong"])
        print(len(cases), "cases")
        return
    out.mkdir(parents=True, exist_ok=True)
    if a.reclassify:
        data = json.loads((out / "results.json").read_text())
        by_id = {c["id"]: c for c in CONTROLS + C}
        for r in data["cases"]:
            log = out / "logs" / f"{r['id']}.log"
            r["output"] = log.read_text().split("\n\n", 1)[-1] if log.exists() else r.get("tail", "")
            r.setdefault("out_dir", str(scratch / "out" / r["id"]))
            if r["id"] in by_id and r["expect"] == "should fail":
                r["class"], r["why"] = final_class(r, by_id[r["id"]])
        order = [c["id"] for c in CONTROLS + C]
        cases_ = sorted(data["cases"], key=lambda r: order.index(r["id"]) if r["id"] in order else 1e9)
        write_reports(cases_, out, data["commit"])
        return
    scratch.mkdir(parents=True, exist_ok=True)
    inputs = scratch / "_inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    shutil.copytree(Path(a.inputs).resolve(), inputs, symlinks=True)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    ctx = SimpleNamespace(repo=repo, inputs=inputs, source=Path(a.inputs).resolve(), scratch=scratch, python=a.python,
                          timeout=a.timeout, out=out)
    previous = {}
    if a.merge and (out / "results.json").exists():
        previous = {r["id"]: r for r in json.loads((out / "results.json").read_text())["cases"]}
    results = dict(previous)
    order = [c["id"] for c in CONTROLS + C]
    for n, case in enumerate(cases, 1):
        r = run_case(case, ctx)
        results[r["id"]] = r
        print(f"[{n}/{len(cases)}] {r['id']}: {r['class']} exit={r['exit']} {r['seconds']}s  {r['first_line'][:120]}",
              flush=True)
        ordered = [results[i] for i in order if i in results]
        for r2 in ordered:
            r2.setdefault("output", "")
        write_reports(ordered, out, commit)


if __name__ == "__main__":
    main()
