"""Bad input, stage by stage: each case is refused as a user would meet it from the shell (`run_main`, the
recipes' `__main__`): exit status 2, a message that names the place (file and line, config key, path) and says what
to do, no traceback, nothing written in `output_dir` (so no stage.json), and no input touched.

The inputs are one finished tiny run (pretrain, SFT, compare, reward) built once for the module; every case points
a stage at it with exactly one thing wrong.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForSequenceClassification
from trl import GRPOConfig, RLOOConfig

from recipes import arena, benchmarks, compare, dpo, evaluate, grpo, pipeline, ppo, pretrain, reward, rloo, sft
from recipes.common import rl
from recipes.common.cli import DEBUG_ENV, run_main
from recipes.common.run_dir import MARKER
from tests.conftest import ROOT
from tests.test_compare_reward import run_compare, run_reward
from tests.test_sft import run_sft

FAST = ROOT / "configs" / "tiny" / "fast"
STAGES = {  # stage: (main, config classes, the fast config, keys that point it at the finished run)
    "pretrain": (pretrain.main, (pretrain.PretrainArguments, pretrain.TrainingArguments), []),
    "sft": (sft.main, (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), ["--model_name_or_path", "{base}"]),
    "compare": (compare.main, (compare.CompareArguments,), ["--policy", "{sft}"]),
    "reward": (reward.main, (reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
               ["--model_name_or_path", "{sft}", "--dataset_name", "{pairs}"]),
    "ppo": (ppo.main, (ppo.PPOScriptArguments, ppo.PPOConfig, ppo.ModelConfig),
            ["--sft_model_path", "{sft}", "--reward_model_path", "{reward}"]),
    "rloo": (rloo.main, (rl.OnlineArguments, RLOOConfig, ppo.ModelConfig),
             ["--sft_model_path", "{sft}", "--reward_model_path", "{reward}"]),
    "grpo": (grpo.main, (rl.OnlineArguments, GRPOConfig, ppo.ModelConfig),
             ["--sft_model_path", "{sft}", "--reward_model_path", "{reward}"]),
    "dpo": (dpo.main, (dpo.DPOScriptArguments, dpo.DPOConfig, ppo.ModelConfig),
            ["--sft_model_path", "{sft}", "--reward_model_path", "{reward}", "--dataset_name", "{pairs}"]),
    "evaluate": (evaluate.main, (evaluate.EvaluateArguments,),
                 ["--base_model", "{base}", "--sft_model", "{sft}", "--reward_model", "{reward}", "--ppo_model",
                  "{sft}", "--judge_reward_model", "{reward}", "--llm_judge", "{sft}", "--report_dir", "{tmp}/report"]),
    "pipeline": (pipeline.main, (pipeline.PipelineArguments,), ["--run_dir", "{out}"]),
    "arena": (arena.main, (arena.ArenaArguments,), []),
    "benchmarks": (benchmarks.main, (benchmarks.BenchmarkArguments,), ["--models", "{sft}"]),
}
NOT_CHAT = "<|im_start|>user\nHi<|im_end|>"  # text where a list of messages belongs


@dataclass
class Case:
    id: str
    stage: str
    args: list[str]  # after the stage's defaults, so the last value wins; {base} {sft} {reward} {pairs} {tmp} {out}
    says: list[str]  # each must be in the message
    files: dict[str, str] = field(default_factory=dict)  # written under {tmp} first (inputs of the case)
    config: dict | None = None  # keys changed in the stage's fast config, written to {tmp}/config.yaml
    copy: dict[str, str] = field(default_factory=dict)  # {under {tmp}: a directory of the run}, copied before files


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def chat(prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


GOOD = [chat(f"What is {i} + 1?", f"{i + 1}.") for i in range(12)]
PAIR = {"prompt": "What is 2 + 2?", "chosen": "4.", "rejected": "5."}

CASES = [
    # ---- the ten defects of issue 13, each as the user met it
    Case("d3-compare-test-fraction-0", "compare", ["--test_fraction", "0"],
         ["test_fraction: 0.0 must be between 0 and 1"]),
    Case("d3-compare-test-fraction-1.5", "compare", ["--test_fraction", "1.5"], ["test_fraction: 1.5 must be between"]),
    Case("d3-compare-num-prompts-0", "compare", ["--num_prompts", "0"], ["num_prompts: 0 must be 1 or more"]),
    Case("d3-compare-rankings-two-rows", "compare",
         ["--labeler", "human", "--rankings_file", "{tmp}/rankings.jsonl", "--judge_prompts", "0"],
         ["the test split of", "has no pairs"],
         files={"rankings.jsonl": jsonl(*({"id": i, "prompt": f"What is {i} + 1?", "response_1": "2.",
                                            "response_2": "3.", "ranking": "1>2"} for i in range(2)))}),
    Case("d4-reward-jsonl-without-test-split", "reward", ["--dataset_name", "{tmp}/pairs.jsonl",
                                                          "--dataset_test_split", "test"],
         ["pairs.jsonl is one file, so its only split is 'train', not 'test'"], files={"pairs.jsonl": jsonl(PAIR)}),
    Case("d5-number-in-a-text-column", "sft", ["--dataset_name", "{tmp}/data.jsonl"],
         ["data.jsonl: line 4: field 'completion' is a number where the other rows have text", "invalid_rows: skip"],
         files={"data.jsonl": jsonl(*({"prompt": f"{i} + 1?", "completion": f"{i + 1}."} for i in range(3)),
                                    {"prompt": "3 + 1?", "completion": 4})}),
    Case("d6-sft-max-length-drops-everything", "sft", ["--max_length", "4"], ["max_length: 4 drops", "max_length"]),
    Case("d6-reward-max-length-drops-pairs", "reward", ["--max_length", "8"], ["max_length: 8 drops", "pairs"]),
    Case("d7-ppo-causal-lm-as-reward-model", "ppo", ["--reward_model_path", "{sft}"],
         ["reward_model_path: {sft} is a LlamaForCausalLM, not a reward model"]),
    Case("d7-evaluate-reward-model-as-ppo", "evaluate", ["--ppo_model", "{reward}"],
         ["ppo_model: {reward} is a LlamaForSequenceClassification, not a causal language model"]),
    Case("d8-rl-reward-model-with-another-pad", "rloo", ["--reward_model_path", "{tmp}/stale_rm"],
         ["reward_model_path: {tmp}/stale_rm finds its last token through pad_token_id", "policy pads with id"]),
    Case("d8-sft-pad-token-is-eos", "sft", ["--pad_token", "<|im_end|>"],
         ["pad_token: '<|im_end|>' is the eos token", "e.g. '<|pad|>'"]),
    Case("d9-ppo-total-episodes-0", "ppo", ["--total_episodes", "0"], ["total_episodes: 0 must be 1 or more"]),
    Case("d9-sft-output-dir-is-its-input", "sft", ["--output_dir", "{base}"],
         ["output_dir: {base} would write over model_name_or_path"]),
    Case("d9-evaluate-report-dir-not-writable", "evaluate", ["--report_dir", "{tmp}/a_file/report"],
         ["report_dir: cannot write in {tmp}/a_file/report"], files={"a_file": "not a directory"}),
    Case("d10-learning-rate-0", "sft", ["--learning_rate", "0"], ["learning_rate: 0.0 must be above 0"]),
    Case("d10-epochs-0", "reward", ["--num_train_epochs", "0", "--max_steps", "-1"],
         ["num_train_epochs: 0.0 must be above 0, or set max_steps"]),
    Case("d10-kl-coef-negative", "ppo", ["--kl_coef", "-0.5"], ["kl_coef: -0.5 must be 0 or more"]),
    Case("d10-batch-size-0", "ppo", ["--per_device_train_batch_size", "0"],
         ["per_device_train_batch_size: 0 must be 1 or more"]),
    Case("d10-mistyped-run-path", "sft", ["--model_name_or_path", "{tmp}/runs/pretrian"],
         ["model_name_or_path: {tmp}/runs/pretrian does not exist", "run the stage that writes it first"],
         files={"runs/README": ""}),
    # ---- config files and command lines
    Case("config-missing", "sft", ["--config", "{tmp}/nope.yaml"], ["--config: {tmp}/nope.yaml does not exist"]),
    Case("config-a-directory", "rloo", ["--config", "{tmp}/configs"], ["--config: {tmp}/configs is a directory"],
         files={"configs/rloo.yaml": "max_steps: 1\n"}),
    Case("config-empty", "reward", ["--config", "{tmp}/empty.yaml"], ["{tmp}/empty.yaml: a config is a mapping",
                                                                       "not an empty file"], files={"empty.yaml": ""}),
    Case("config-a-list", "ppo", ["--config", "{tmp}/list.yaml"], ["list.yaml: a config is a mapping", "not a list"],
         files={"list.yaml": "- learning_rate: 1.0e-3\n"}),
    Case("config-tab-indent", "compare", ["--config", "{tmp}/tab.yaml"], ["tab.yaml: cannot be read as YAML", "line 2"],
         files={"tab.yaml": "num_prompts: 8\n\tseed: 1\n"}),
    Case("config-key-twice", "sft", ["--config", "{tmp}/twice.yaml"],
         ["twice.yaml: cannot be read as YAML", "key 'learning_rate' is given twice", "line 2"],
         files={"twice.yaml": "learning_rate: 1.0e-3\nlearning_rate: 2.0e-3\n"}),
    Case("config-unknown-key", "sft", [], ["config.yaml: unknown key 'lerning_rate'", "did you mean 'learning_rate'"],
         config={"lerning_rate": 1.0e-3}),
    Case("config-unknown-flag", "grpo", ["--num_generation", "4"],
         ["unknown command-line argument 'num_generation'", "did you mean 'num_generations'"]),
    Case("config-bf16-without-cpu", "sft", [], ["config.yaml: Your setup doesn't support bf16/gpu", "use_cpu"],
         config={"bf16": True, "use_cpu": False}),
    # ---- values out of range, per stage
    Case("pretrain-learning-rate-negative", "pretrain", [], ["config.yaml: learning_rate: -0.001 must be above 0"],
         config={"learning_rate": -1.0e-3}),
    Case("pretrain-batch-size-0", "pretrain", ["--per_device_train_batch_size", "0"],
         ["per_device_train_batch_size: 0 must be 1 or more"]),
    Case("pretrain-world-of-one-entity", "pretrain", ["--world_entities", "1"],
         ["world_entities: 1 must be 2 or more"]),
    Case("sft-gradient-accumulation-0", "sft", ["--gradient_accumulation_steps", "0"],
         ["gradient_accumulation_steps: 0 must be 1 or more"]),
    Case("sft-eval-batch-size-0", "sft", ["--per_device_eval_batch_size", "0"],
         ["per_device_eval_batch_size: 0 must be 1 or more"]),
    Case("sft-max-new-tokens-0", "sft", ["--max_new_tokens", "0"], ["max_new_tokens: 0 must be 1 or more"]),
    Case("compare-one-response", "compare", ["--responses_per_prompt", "1"],
         ["responses_per_prompt must be at least 2"]),
    Case("compare-judge-prompts-negative", "compare", ["--judge_prompts", "-3"], ["judge_prompts: -3 must be 0"]),
    Case("compare-batch-size-0", "compare", ["--batch_size", "0"], ["batch_size: 0 must be 1 or more"]),
    Case("ppo-mini-batches-0", "ppo", ["--num_mini_batches", "0"], ["num_mini_batches: 0 must be 1 or more"]),
    Case("ppo-epochs-0", "ppo", ["--num_ppo_epochs", "0"], ["num_ppo_epochs: 0 must be 1 or more"]),
    Case("ppo-rollout-batch-0", "ppo", ["--local_rollout_forward_batch_size", "0"],
         ["local_rollout_forward_batch_size: 0 must be 1 or more"]),
    Case("rloo-one-generation", "rloo", ["--num_generations", "1"],
         ["rloo.yaml: RLOO requires at least 2 generations per prompt"]),  # TRL's own check, before ours
    Case("grpo-beta-negative", "grpo", ["--beta", "-0.1"], ["beta: -0.1 must be 0 or more"]),
    Case("dpo-beta-negative", "dpo", ["--beta", "-1"], ["beta: -1.0 must be 0 or more"]),
    Case("dpo-max-length-drops-pairs", "dpo", ["--max_length", "6"], ["max_length: 6 drops", "pairs",
                                                                      "max_dropped_fraction=0.1"]),
    Case("dpo-loss-type-typo", "dpo", ["--loss_type", "sigmod"], ["loss_type: ['sigmod'] are not DPO losses",
                                                                  "'sigmoid'"]),
    Case("sft-target-modules-one-string", "sft", [], ["lora_target_modules: 'q_proj, v_proj' is one string",
                                                      "[q_proj, v_proj]"],
         config={"lora_target_modules": "q_proj, v_proj"}),
    Case("dpo-learning-rate-0", "dpo", ["--learning_rate", "0"], ["learning_rate: 0.0 must be above 0"]),
    # ---- paths: missing, unfinished, the wrong kind, the output over an input
    Case("sft-reward-model-as-base", "sft", ["--model_name_or_path", "{reward}"],
         ["model_name_or_path: {reward} is a LlamaForSequenceClassification, not a causal language model"]),
    Case("sft-unfinished-stage", "sft", ["--model_name_or_path", "{tmp}/half/merged"],
         ["model_name_or_path: {tmp}/half is an unfinished stage", "rerun that stage first"]),
    Case("compare-reward-model-as-policy", "compare", ["--policy", "{reward}"],
         ["policy: {reward} is a LlamaForSequenceClassification, not a causal language model"]),
    Case("compare-policy-missing", "compare", ["--policy", "{tmp}/no_sft"], ["policy: {tmp}/no_sft does not exist"]),
    Case("compare-causal-lm-as-labeler", "compare", ["--labeler", "reward_model", "--reward_model", "{sft}"],
         ["reward_model: {sft} is a LlamaForCausalLM, not a reward model"]),
    Case("reward-model-missing", "reward", ["--model_name_or_path", "{tmp}/no_model"],
         ["model_name_or_path: {tmp}/no_model does not exist"]),
    Case("reward-dataset-missing", "reward", ["--dataset_name", "{tmp}/no_pairs.jsonl"],
         ["dataset_name: {tmp}/no_pairs.jsonl does not exist"]),
    Case("reward-output-dir-is-its-input", "reward", ["--output_dir", "{sft}"],
         ["output_dir: {sft} would write over model_name_or_path"]),
    Case("ppo-reward-model-as-policy", "ppo", ["--sft_model_path", "{reward}"],
         ["sft_model_path: {reward} is a LlamaForSequenceClassification, not a causal language model"]),
    Case("ppo-model-name-or-path-set", "ppo", ["--model_name_or_path", "{sft}"],
         ["model_name_or_path: an RL stage starts from sft_model_path", "remove model_name_or_path"]),
    Case("ppo-reward-model-below-min-accuracy", "ppo", ["--reward_model_path", "{tmp}/rm_stage/merged",
                                                        "--min_reward_accuracy", "0.6"],
         ["reward_model_path: {tmp}/rm_stage/merged ranks held-out pairs correctly 50.0% of the time",
          "below min_reward_accuracy=0.6"],
         copy={"rm_stage": "{reward}/.."}, files={"rm_stage/eval_results.json": json.dumps({"accuracy": 0.5})}),
    Case("ppo-no-prompt-fits", "ppo", ["--max_prompt_tokens", "2"], ["no prompt fits in max_prompt_tokens=2"]),
    Case("grpo-reward-model-missing", "grpo", ["--reward_model_path", "{tmp}/no_rm"],
         ["reward_model_path: {tmp}/no_rm does not exist"]),
    Case("dpo-unfinished-sft", "dpo", ["--sft_model_path", "{tmp}/half/merged"],
         ["sft_model_path: {tmp}/half is an unfinished stage"]),
    Case("evaluate-no-sft-model", "evaluate", ["--sft_model", ""], ["sft_model is not set"]),
    Case("evaluate-llm-judge-template-missing", "evaluate", ["--llm_judge_template", "{tmp}/judge.txt"],
         ["llm_judge_template: {tmp}/judge.txt does not exist"]),
    Case("evaluate-llm-judge-template-without-slots", "evaluate", ["--llm_judge_template", "{tmp}/judge.txt"],
         ["llm_judge_template: {tmp}/judge.txt lacks"], files={"judge.txt": "Which answer is better? A or B."}),
    Case("evaluate-judge-is-not-a-reward-model", "evaluate", ["--judge_reward_model", "{sft}"],
         ["judge_reward_model: {sft} is a LlamaForCausalLM, not a reward model"]),
    Case("pipeline-unknown-stage-skipped", "pipeline", ["--skip", "sfft"], ["skip: ['sfft'] are not stages"]),
    Case("pipeline-typo-in-ppo-args", "pipeline", [], ["ppo (from ppo_config and ppo_args)",
                                                      "unknown command-line argument 'kl_coeff'", "kl_coef"],
         config={"ppo_args": ["--kl_coeff", "0.1"]}),
    Case("pipeline-sft-args-out-of-range", "pipeline", [], ["sft (from sft_config and sft_args)",
                                                           "learning_rate: 0.0 must be above 0"],
         config={"sft_args": ["--learning_rate", 0]}),
    Case("pipeline-run-dir-is-a-stage", "pipeline", ["--run_dir", "{tmp}/sft_stage"],
         ["run_dir: {tmp}/sft_stage is a stage's directory"], copy={"sft_stage": "{sft}/.."}),
    Case("pipeline-run-dir-under-a-file", "pipeline", ["--run_dir", "{tmp}/a_file/run"],
         ["run_dir: cannot write in {tmp}/a_file/run"], files={"a_file": "x"}),
    Case("pipeline-base-model-missing", "pipeline", ["--base_model", "{tmp}/no_base"],
         ["base_model: {tmp}/no_base does not exist"]),
    Case("compare-rankings-of-prompts-not-in-the-toy-world", "compare",
         ["--labeler", "human", "--rankings_file", "{tmp}/r.jsonl"],
         ["r.jsonl: row 1: 'Write a haiku.' is not a prompt of the toy world", "set dataset_name"],
         files={"r.jsonl": jsonl({"prompt": "Write a haiku.", "response_1": "a", "response_2": "b",
                                  "ranking": "1>2"})}),
    Case("compare-rankings-prompt-twice", "compare", ["--labeler", "human", "--rankings_file", "{tmp}/r.jsonl"],
         ["r.jsonl: row 2: its prompt is row 1's again"],
         files={"r.jsonl": jsonl(*({"prompt": "What is 2 + 2?", "response_1": "4.", "response_2": "5.",
                                    "ranking": "1>2"} for _ in range(2)))}),
    Case("compare-rankings-broken-json", "compare", ["--labeler", "human", "--rankings_file", "{tmp}/r.jsonl"],
         ["r.jsonl: line 1: not valid JSON"], files={"r.jsonl": '{"prompt": "What is 2 + 2?",\n'}),
    Case("pretrain-text-too-short-for-one-block", "pretrain", ["--dataset_name", "{tmp}/docs.csv"],
         ["docs.csv: its training documents hold", "too few for one block of block_size 128"],
         files={"docs.csv": "text\n" + "".join(f"{i}\n" for i in range(60))}),
    Case("reward-empty-test-split", "reward", ["--dataset_name", "{tmp}/pairs", "--dataset_test_split", "test[:32]"],
         ["{tmp}/pairs: one of its splits has no rows"], copy={"pairs": "{pairs}"},
         files={"pairs/test/dataset_info.json": "EMPTY_SPLIT"}),
    Case("arena-output-in-its-run", "arena", ["--run_dir", "{tmp}/run", "--output_dir", "{tmp}/run/sft"],
         ["output_dir: {tmp}/run/sft would write over run_dir"],
         copy={"run/sft": "{sft}/..", "run/compare": "{pairs}/..", "run/reward": "{reward}/.."}),
    Case("sft-model-without-weights", "sft", ["--model_name_or_path", "{tmp}/base"],
         ["model_name_or_path: {tmp}/base has a config.json but no weights"],
         copy={"base": "{base}"}, files={"base/model.safetensors": "DELETE"}),
    Case("compare-rankings-file-missing", "compare", ["--labeler", "human", "--rankings_file", "{tmp}/ranked.csv"],
         ["rankings_file: {tmp}/ranked.csv does not exist"]),
    Case("sft-eval-strategy-without-eval-data", "sft", ["--eval_strategy", "steps"],
         ["eval_strategy: steps; SFT here has no eval dataset", "set eval_strategy: no"]),
    Case("reward-hub-dataset-offline", "reward", ["--dataset_name", "nobody/no-such-pairs"],
         ["nobody/no-such-pairs: not a local path, and not loadable as a Hub dataset id here"]),
    Case("pipeline-stage-args-as-one-string", "pipeline", [], ["sft_args: '--max_steps 2' is one string",
                                                             "[--max_steps, 2]"],
         config={"sft_args": "--max_steps 2"}),
    Case("pipeline-stage-config-missing", "pipeline", ["--ppo_config", "{tmp}/ppo.yaml"],
         ["ppo_config: {tmp}/ppo.yaml does not exist"]),
    Case("arena-run-not-finished", "arena", ["--run_dir", "{tmp}/empty_run"],
         ["run_dir: {tmp}/empty_run", "is not a complete stage", "run the main job first"]),
    Case("benchmarks-no-tasks", "benchmarks", [], ["tasks: name at least one"], config={"tasks": []}),
    Case("benchmarks-unknown-task", "benchmarks", ["--tasks", "toy_fact"],
         ["tasks: ['toy_fact'] are not lm-eval tasks", "did you mean 'toy_facts'"]),
    Case("grpo-negative-learning-rate-with-exponent", "grpo", ["--learning_rate", "-3e-3"],
         ["learning_rate: -0.003 must be above 0"]),
    Case("dpo-max-steps-a-list", "dpo", [], ["config.yaml: max_steps: [1, 2] is not a whole number"],
         config={"max_steps": [1, 2]}),
    Case("sft-report-to-a-tracker-not-installed", "sft", ["--report_to", "wandb"],
         ["report_to: ['wandb'] not installed here", "report_to: none or tensorboard"]),
    Case("ppo-seed-negative", "ppo", ["--seed", "-1"], ["seed: -1 must be between 0 and 2**32 - 1"]),
    Case("benchmarks-reward-model", "benchmarks", ["--models", "{reward}"],
         ["models[0]: {reward} is a LlamaForSequenceClassification, not a causal language model"]),
    # ---- values wrong together, or of the wrong type in YAML
    Case("ppo-episodes-below-one-batch", "ppo", ["--total_episodes", "8"],
         ["total_episodes: 8 is less than one PPO batch", "= 16"]),
    Case("ppo-mini-batches-do-not-divide", "ppo", ["--num_mini_batches", "3"],
         ["num_mini_batches: 3 does not divide the PPO batch of 16"]),
    Case("pretrain-heads-do-not-divide", "pretrain", ["--num_attention_heads", "3"],
         ["hidden_size: 64 is not a multiple of num_attention_heads (3)"]),
    Case("sft-max-steps-a-fraction", "sft", [], ["config.yaml: max_steps: 2.5 is not a whole number"],
         config={"max_steps": 2.5}),
    Case("sft-lora-r-a-list", "sft", [], ["config.yaml: lora_r: [8] is not a whole number"], config={"lora_r": [8]}),
    Case("sft-demonstrator-rate-above-1", "sft", ["--wrong_rate", "1.5"], ["wrong_rate: 1.5 must be between 0 and 1"]),
    Case("compare-temperature-0", "compare", ["--temperature", "0"], ["temperature: 0.0 must be above 0"]),
    Case("reward-no-eval-pairs", "reward", ["--max_eval_pairs", "0"], ["max_eval_pairs: 0 must be 1 or more"]),
    Case("reward-adapter-of-a-causal-lm", "reward", ["--lora_task_type", "CAUSAL_LM"],
         ["lora_task_type: CAUSAL_LM; a reward model's adapter is SEQ_CLS"]),
    Case("ppo-save-steps-0", "ppo", ["--save_steps", "0"], ["save_steps: 0"]),
    # ---- more paths: a file, an adapter, a Hub id offline, another stage's directory, a path under a file
    Case("sft-model-is-a-file", "sft", ["--model_name_or_path", "{sft}/config.json"],
         ["model_name_or_path: {sft}/config.json is a file; point model_name_or_path at a model directory"]),
    Case("ppo-policy-is-the-adapter", "ppo", ["--sft_model_path", "{tmp}/sft_stage"],
         ["sft_model_path: {tmp}/sft_stage is a LoRA adapter, not a whole model (its merged model is in merged/)"],
         copy={"sft_stage": "{sft}/.."}),
    Case("sft-hub-id-offline", "sft", ["--model_name_or_path", "nobody/no-such-model"],
         ["model_name_or_path: nobody/no-such-model is not a local path", "not in the cache while offline"]),
    Case("pretrain-into-a-finished-sft-stage", "pretrain", ["--output_dir", "{tmp}/other"],
         ["output_dir: {tmp}/other holds a finished sft stage", "a directory of its own"],
         files={"other/stage.json": json.dumps({"stage": "sft", "complete": True, "metrics": {}})}),
    Case("sft-output-under-a-file", "sft", ["--output_dir", "{tmp}/a_file/sft"],
         ["output_dir: cannot make {tmp}/a_file/sft: {tmp}/a_file is a file"], files={"a_file": "x"}),
    Case("compare-output-is-its-policy", "compare", ["--output_dir", "{sft}"],
         ["output_dir: {sft} would write over policy"]),
    Case("compare-labeling-file-under-a-file", "compare", ["--labeler", "human", "--labeling_file",
                                                           "{tmp}/a_file/rank.csv"],
         ["labeling_file: cannot write {tmp}/a_file/rank.csv: {tmp}/a_file is a file"], files={"a_file": "x"}),
    Case("ppo-reward-results-corrupt", "ppo", ["--reward_model_path", "{tmp}/rm_stage/merged"],
         ["{tmp}/rm_stage/eval_results.json is not valid JSON", "rerun the reward stage"],
         copy={"rm_stage": "{reward}/.."}, files={"rm_stage/eval_results.json": "{accuracy: 0.9"}),
    Case("benchmarks-report-dir-under-a-file", "benchmarks", ["--report_dir", "{tmp}/a_file/run"],
         ["report_dir: cannot write in {tmp}/a_file/run"], files={"a_file": "x"}),
    Case("sft-data-not-utf8", "sft", ["--dataset_name", "{tmp}/data.jsonl"], ["data.jsonl: not UTF-8 text"],
         files={"data.jsonl": "\udce9"}),
    Case("sft-csv-header-only", "sft", ["--dataset_name", "{tmp}/data.csv"], ["data.csv: cannot be read as csv"],
         files={"data.csv": "prompt,completion\n"}),
    Case("sft-parquet-that-is-text", "sft", ["--dataset_name", "{tmp}/data.parquet"],
         ["data.parquet: cannot be read as parquet", "holds what its extension says"], files={"data.parquet": "a,b"}),
    Case("sft-glob-matching-nothing", "sft", ["--dataset_name", "{tmp}/shards/*.jsonl"],
         ["{tmp}/shards/*.jsonl: matches no file"]),
    Case("sft-empty-jsonl", "sft", ["--dataset_name", "{tmp}/data.jsonl"], ["data.jsonl: has no rows"],
         files={"data.jsonl": "\n"}),
    Case("ppo-reward-model-of-another-vocabulary", "ppo", ["--reward_model_path", "{tmp}/rm_stage/merged"],
         ["reward_model_path: {tmp}/rm_stage/merged has another vocabulary than sft_model_path"],
         copy={"rm_stage": "{reward}/.."}, files={"rm_stage/merged/tokenizer.json": "OTHER_VOCAB"}),
    Case("sft-base-without-chat-template", "sft", ["--model_name_or_path", "{tmp}/base"],
         ["chat_template_path: {tmp}/base's tokenizer has no chat template",
          "set chat_template_path: configs/templates/chatml.jinja"],
         copy={"base": "{base}"}, files={"base/chat_template.jinja": "DELETE"}),
    Case("sft-template-without-generation-markers", "sft", ["--model_name_or_path", "{tmp}/base"],
         ["assistant_only_loss: {tmp}/base's chat template has no {{% generation %}} markers"],
         copy={"base": "{base}"},
         files={"base/chat_template.jinja": "{% for m in messages %}{{ m['content'] + '<|im_end|>' }}{% endfor %}"}),
    Case("evaluate-llm-judge-without-chat-template", "evaluate", ["--llm_judge", "{tmp}/base"],
         ["llm_judge: {tmp}/base has no chat template; use a chat (instruct) model"],
         copy={"base": "{base}"}, files={"base/chat_template.jinja": "DELETE"}),
    Case("sft-csv-with-an-empty-answer-in-row-3", "sft", ["--dataset_name", "{tmp}/data.csv"],
         ["data.csv: row 3: field 'completion'", "empty"],
         files={"data.csv": "prompt,completion\n" + "".join(f"What is {i} + 1?,{'' if i == 2 else i + 1}\n"
                                                             for i in range(6))}),
    Case("reward-split-that-does-not-exist", "reward", ["--dataset_test_split", "validation"],
         ["has no split 'validation' (it has ['train', 'test'])", "dataset_test_split"]),
    Case("sft-directory-without-data", "sft", ["--dataset_name", "{tmp}/data"], ["{tmp}/data is a directory, but"],
         files={"data/README.md": "notes"}),
    Case("ppo-prompts-that-are-numbers", "ppo", ["--dataset_name", "{tmp}/prompts.jsonl"],
         ["prompts.jsonl: row 1: field 'prompt' is a number, not a prompt's text"],
         files={"prompts.jsonl": jsonl({"prompt": 1}, {"prompt": 2})}),
    Case("pretrain-text-that-is-numbers", "pretrain", ["--dataset_name", "{tmp}/docs.jsonl"],
         ["docs.jsonl: row 1: field 'text' is not text"], files={"docs.jsonl": jsonl({"text": 1}, {"text": 2})}),
    Case("pretrain-fewer-documents-than-held-out", "pretrain", ["--dataset_name", "{tmp}/docs.jsonl"],
         ["num_eval_documents: 50 held-out documents", "has only 3"],
         files={"docs.jsonl": jsonl(*({"text": f"document {i}"} for i in range(3)))}),
    Case("reward-pairs-all-identical", "reward", ["--dataset_name", "{tmp}/pairs.jsonl"],
         ["in every pair the chosen and rejected replies are the same"],
         files={"pairs.jsonl": jsonl(*({**PAIR, "rejected": PAIR["chosen"]} for _ in range(4)))}),
    Case("sft-model-without-tokenizer", "sft", ["--model_name_or_path", "{tmp}/base"],
         ["model_name_or_path: {tmp}/base has no tokenizer"],
         copy={"base": "{base}"}, files={"base/tokenizer.json": "DELETE", "base/tokenizer_config.json": "DELETE"}),
    # ---- data files: rows and fields named
    Case("sft-invalid-json-line", "sft", ["--dataset_name", "{tmp}/data.jsonl"],
         ["data.jsonl: line 2: not valid JSON", "fix the line"], files={"data.jsonl": jsonl(GOOD[0]) + "{oops\n"}),
    Case("sft-text-file", "sft", ["--dataset_name", "{tmp}/data.txt"],
         ["data.txt: unrecognized columns ['text']", "Expected one of: messages; prompt+completion"],
         files={"data.txt": "hello"}),
    Case("sft-unknown-file-type", "sft", ["--dataset_name", "{tmp}/data.docx"], ["data.docx: unknown file type"],
         files={"data.docx": "hello"}),
    Case("sft-role-unknown", "sft", ["--dataset_name", "{tmp}/data.jsonl"], ["row 3", "has role 'bot'"],
         files={"data.jsonl": jsonl(*GOOD[:2], {"messages": [{"role": "user", "content": "Hi"},
                                                             {"role": "bot", "content": "Hello"}]})}),
    Case("sft-last-turn-from-user", "sft", ["--dataset_name", "{tmp}/data.jsonl"],
         ["row 2", "the last message must be from the assistant"],
         files={"data.jsonl": jsonl(GOOD[0], {"messages": [{"role": "user", "content": "Hi"},
                                                          {"role": "user", "content": "Anyone there?"}]})}),
    Case("sft-a-lone-message", "sft", ["--dataset_name", "{tmp}/data.jsonl"],
         ["data.jsonl: row 2: field 'messages': expected a conversation", "got 1 message"],
         files={"data.jsonl": jsonl(GOOD[0], {"messages": [{"role": "assistant", "content": "Hi"}]})}),
    Case("sft-empty-answer", "sft", ["--dataset_name", "{tmp}/data.jsonl"], ["row 1", "empty"],
         files={"data.jsonl": jsonl(chat("Hi", ""), *GOOD[:3])}),
    Case("sft-text-instead-of-messages", "sft", ["--dataset_name", "{tmp}/data.jsonl"],
         ["row 1: field 'messages': expected a conversation", "got text"],
         files={"data.jsonl": jsonl({"messages": NOT_CHAT}, {"messages": NOT_CHAT})}),
    Case("sft-invalid-rows-drop", "sft", ["--invalid_rows", "drop"],
         ["invalid_rows: 'drop' is not one of ['error', 'skip']"]),
    Case("sft-token-not-in-vocabulary", "sft", ["--trainable_token_embeddings", "<|tool|>"],
         ["trainable_token_embeddings: ['<|tool|>'] are not tokens"]),
    Case("sft-frozen-token-pattern-not-a-regex", "sft", ["--frozen_token_pattern", "[0-9"],
         ["frozen_token_pattern: '[0-9' is not a regular expression"]),
    Case("sft-eos-token-not-in-vocabulary", "sft", ["--eos_token", "</s>"],
         ["eos_token: '</s>' is not a token of {base}'s tokenizer"]),
    Case("sft-pad-token-not-in-vocabulary", "sft", ["--pad_token", "<pad>"],
         ["pad_token: '<pad>' is not a token of its vocabulary"]),
    Case("pretrain-text-column-missing", "pretrain", ["--dataset_name", "{tmp}/docs.jsonl"],
         ["no column 'text'"], files={"docs.jsonl": jsonl({"body": "a document"}, {"body": "another"})}),
    Case("reward-rejected-missing", "reward", ["--dataset_name", "{tmp}/pairs.jsonl"], ["pairs.jsonl", "rejected"],
         files={"pairs.jsonl": jsonl({"prompt": "2 + 2?", "chosen": "4."})}),
    Case("reward-number-as-chosen", "reward", ["--dataset_name", "{tmp}/pairs.jsonl"],
         ["pairs.jsonl: line 2: field 'chosen' is a number where the other rows have text"],
         files={"pairs.jsonl": jsonl(PAIR, {**PAIR, "chosen": 4})}),
    Case("dpo-not-a-preference-file", "dpo", ["--dataset_name", "{tmp}/chat.jsonl"], ["chat.jsonl", "chosen"],
         files={"chat.jsonl": jsonl(*GOOD[:3])}),
    Case("compare-rankings-wrong-extension", "compare", ["--labeler", "human", "--rankings_file", "{tmp}/r.txt"],
         ["rankings_file {tmp}/r.txt: use a .jsonl or .csv file"], files={"r.txt": "x"}),
    Case("compare-human-without-files", "compare", ["--labeler", "human"], ["labeler: human needs labeling_file"]),
    Case("compare-unknown-labeler", "compare", ["--labeler", "crowd"], ["labeler: 'crowd' is not one of"]),
]


def _digest(paths: list[Path]) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for p in paths if p.exists()
            for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()}


@pytest.fixture(scope="module")
def run(tiny_base, tmp_path_factory) -> dict[str, Path]:
    """A finished tiny run: base model, SFT, comparisons, reward model; and a reward model with a stale pad."""
    tmp = tmp_path_factory.mktemp("bad_inputs_run")
    sft_out, _ = run_sft(tmp, tiny_base, num_eval_prompts=0)
    run_compare(tmp, sft_out / "merged", labeler="noisy")
    _, reward_out = run_reward(tmp, sft_out / "merged", tmp / "compare" / "comparisons")
    return {"base": tiny_base, "sft": sft_out / "merged", "reward": reward_out / "merged",
            "pairs": tmp / "compare" / "comparisons"}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_before_training_naming_place_and_fix(case, run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    places = {**{k: str(v) for k, v in run.items()}, "tmp": str(tmp_path), "out": str(tmp_path / "out")}
    fill = lambda text: text.format(**places)  # noqa: E731
    for name, source in case.copy.items():
        shutil.copytree(fill(source), tmp_path / name)
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if text == "DELETE":
            (tmp_path / name).unlink()
            continue
        if text == "EMPTY_SPLIT":  # the saved dataset's test split emptied
            from datasets import load_from_disk
            empty = load_from_disk(str(run["pairs"]))["test"].select([])
            shutil.rmtree(tmp_path / name.rsplit("/", 1)[0])
            empty.save_to_disk(str(tmp_path / name.rsplit("/", 1)[0]))
            continue
        if text == "OTHER_VOCAB":  # the same tokenizer with one token renamed
            text = (run["reward"] / name.split("/")[-1]).read_text().replace('"<|im_start|>"', '"<|im_begin|>"')
        (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    if case.id.startswith(("sft-unfinished", "dpo-unfinished")):
        shutil.copytree(run["sft"].parent, tmp_path / "half", ignore=shutil.ignore_patterns("stage.json"))
    if case.id == "d8-rl-reward-model-with-another-pad":  # made when the SFT model still padded with its eos
        model = AutoModelForSequenceClassification.from_pretrained(run["reward"], num_labels=1)
        model.config.pad_token_id = 2
        model.save_pretrained(tmp_path / "stale_rm")
        shutil.copy(run["reward"] / "tokenizer.json", tmp_path / "stale_rm")
        shutil.copy(run["reward"] / "tokenizer_config.json", tmp_path / "stale_rm")
    if case.id == "arena-run-not-finished":
        (tmp_path / "empty_run").mkdir()
    main, types, defaults = STAGES[case.stage]
    config = str(FAST / f"{case.stage}.yaml")
    if case.config is not None:
        changed = {k: json.loads(fill(json.dumps(v))) for k, v in case.config.items()}
        config = str(tmp_path / "config.yaml")
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(yaml.safe_load(Path(FAST / f"{case.stage}.yaml")
                                                                            .read_text()) | changed))
    if "--config" in case.args:
        config = fill(case.args[case.args.index("--config") + 1])
    args = [fill(a) for a in case.args if a != "--config" and fill(a) != config]
    argv = ["--config", config, *map(fill, defaults), "--output_dir", places["out"], *args]
    if case.stage == "pipeline":
        argv.remove("--output_dir"), argv.remove(places["out"])
    inputs = [Path(p) for p in run.values()] + [tmp_path / name for name in [*case.files, *case.copy]]
    before = _digest(inputs)

    with pytest.raises(SystemExit) as exit_:
        run_main(main, types, argv)

    message = capsys.readouterr().err.replace("\r", "\n")  # progress bars redraw their line
    assert exit_.value.code == 2, message
    assert "Traceback" not in message
    assert "\nerror: " in "\n" + message  # progress bars and warnings may come first
    for words in map(fill, case.says):
        assert words in message, f"{words!r} not in:\n{message}"
    assert not (tmp_path / "out").exists()
    given = [*case.files, *case.copy]  # the case's own inputs
    assert not [p for p in tmp_path.rglob(MARKER) if not any(p.relative_to(tmp_path).as_posix().startswith(g)
                                                             for g in given)]
    assert _digest(inputs) == before
