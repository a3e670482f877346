"""The real-model configs, run offline: the same architecture as their Hub model, at tiny size with random
weights and a tokenizer that is not the toy world's (no chat template, no pad token, eos = <|endoftext|>)."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)
from trl import DPOConfig, GRPOConfig, ModelConfig, RLOOConfig
from trl.experimental.utils import get_reward

from recipes import compare, dpo, grpo, pipeline, ppo, reward, rloo, sft
from recipes.common import rl, run_dir
from recipes.common.cli import ConfigError, parse_config
from recipes.common.errors import InputError
from recipes.common.generation import chat_texts, reward_scores
from recipes.common.tokenizer import settle_pad
from tests.conftest import ROOT, SHARED_DATA, write_yaml

REAL = ROOT / "configs" / "smollm2-135m"
# HuggingFaceTB/SmolLM2-135M's architecture: Llama, grouped-query attention (9 heads, 3 KV heads), tied
# embeddings, rope_theta 1e5. Here with the sizes shrunk.
SMOLLM2_TINY = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 6,
                "num_key_value_heads": 2, "tie_word_embeddings": True, "rope_theta": 100000.0,
                "max_position_embeddings": 512}
CPU = {"bf16": False, "dtype": "float32", "max_steps": 2, "per_device_train_batch_size": 2,
       "gradient_accumulation_steps": 1, "max_length": 192, "logging_steps": 1, "save_steps": 100,
       "report_to": "none", "dataloader_pin_memory": False,
       "max_dropped_fraction": 0.95}  # the tiny tokenizer makes most hh-rlhf pairs longer than 192 tokens

PPO_CPU = {"bf16": False, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "total_episodes": 8,
           "local_rollout_forward_batch_size": 4, "response_length": 8, "num_ppo_epochs": 1,
           "num_sample_generations": 0, "logging_steps": 1, "report_to": "none", "min_reward_accuracy": 0.0}


ONLINE_CPU = {"bf16": False, "use_cpu": True, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
              "num_generations": 2, "max_completion_length": 8, "max_steps": 2, "logging_steps": 1,
              "report_to": "none", "min_reward_accuracy": 0.0, "use_vllm": False}  # vLLM: GPU only
RL_CPU = {"rloo": ONLINE_CPU, "grpo": ONLINE_CPU,
          "dpo": {"bf16": False, "use_cpu": True, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                  "max_steps": 2, "max_length": 128, "gradient_checkpointing": False, "logging_steps": 1,
                  "report_to": "none"}}
RL_TYPES = {"rloo": (rl.OnlineArguments, RLOOConfig, ModelConfig),
            "grpo": (rl.OnlineArguments, GRPOConfig, ModelConfig),
            "dpo": (dpo.DPOScriptArguments, DPOConfig, ModelConfig)}


def hh_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = f"\n\nHuman: How do I water plant number {i}?"
        if i % 3 == 0:  # multi-turn
            prompt += f"\n\nAssistant: Which plant?\n\nHuman: The fern number {i}."
        rows.append({"chosen": f"{prompt}\n\nAssistant: Water it once a week, gently.",
                     "rejected": f"{prompt}\n\nAssistant: I don't know."})
    return rows


@pytest.fixture(scope="module")
def hub_like(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny SmolLM2-architecture model directory, an hh-rlhf-format JSONL file)."""
    tmp = tmp_path_factory.mktemp("hub_like")
    data = tmp / "hh.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in hh_rows(40)))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [r["chosen"] + r["rejected"] for r in hh_rows(40)]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0,
                                         **SMOLLM2_TINY))
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    return tmp / "model", data


@pytest.mark.parametrize("variant", ["lora", "qlora"])
def test_real_sft_reward_and_rl_configs_run_offline(hub_like, tmp_path, variant):
    # QLoRA keeps the config's bfloat16: TRL casts QLoRA adapter weights (the score head too) to bf16.
    cpu = {**CPU, "dtype": "bfloat16"} if variant == "qlora" else CPU
    model, data = hub_like
    sft_config = write_yaml(tmp_path / "sft.yaml", {**yaml.safe_load((REAL / f"sft_{variant}.yaml").read_text()),
                                                    **cpu, "model_name_or_path": str(model),
                                                    "dataset_name": str(data), "output_dir": str(tmp_path / "sft")})
    sft.main(*parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), ["--config", str(sft_config)]))
    assert run_dir.is_complete(tmp_path / "sft")
    reward_config = write_yaml(tmp_path / "reward.yaml", {
        **yaml.safe_load((REAL / f"reward_{variant}.yaml").read_text()), **cpu, "eval_strategy": "no",
        "model_name_or_path": str(tmp_path / "sft" / "merged"), "dataset_name": str(data),
        "dataset_test_split": "train", "max_eval_pairs": 8, "output_dir": str(tmp_path / "reward")})
    metrics = reward.main(*parse_config((reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
                                        ["--config", str(reward_config)]))
    assert run_dir.is_complete(tmp_path / "reward") and metrics["pairs"] == 8
    ppo_config = write_yaml(tmp_path / "ppo.yaml", {
        **yaml.safe_load((REAL / f"ppo_{variant}.yaml").read_text()), **PPO_CPU, "dtype": cpu["dtype"],
        "sft_model_path": str(tmp_path / "sft" / "merged"), "reward_model_path": str(tmp_path / "reward" / "merged"),
        "dataset_name": str(data), "output_dir": str(tmp_path / "ppo")})
    metrics = ppo.main(*parse_config((ppo.PPOScriptArguments, ppo.PPOConfig, ppo.ModelConfig),
                                     ["--config", str(ppo_config)]))
    assert run_dir.is_complete(tmp_path / "ppo") and metrics["episode"] == 8 and "eval" not in metrics
    for method, module in (("rloo", rloo), ("grpo", grpo), ("dpo", dpo)):
        reward_model = {} if method == "dpo" else {"reward_model_path": str(tmp_path / "reward" / "merged")}
        config = write_yaml(tmp_path / f"{method}.yaml", {
            **yaml.safe_load((REAL / f"{method}_{variant}.yaml").read_text()), **RL_CPU[method], "dtype": cpu["dtype"],
            "sft_model_path": str(tmp_path / "sft" / "merged"), **reward_model, "dataset_name": str(data),
            "output_dir": str(tmp_path / method)})
        metrics = module.main(*parse_config(RL_TYPES[method], ["--config", str(config)]))
        assert run_dir.is_complete(tmp_path / method) and (tmp_path / method / "merged").is_dir()
        assert "eval" not in metrics  # no gold labeler for real data


def test_real_compare_config_exports_a_labeling_file(hub_like, tmp_path):
    model, data = hub_like
    sft_config = write_yaml(tmp_path / "sft.yaml", {**yaml.safe_load((REAL / "sft_lora.yaml").read_text()), **CPU,
                                                    "model_name_or_path": str(model), "dataset_name": str(data),
                                                    "output_dir": str(tmp_path / "sft")})
    sft.main(*parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), ["--config", str(sft_config)]))
    config = write_yaml(tmp_path / "compare.yaml", {
        **yaml.safe_load((REAL / "compare.yaml").read_text()), "policy": str(tmp_path / "sft" / "merged"),
        "dataset_name": str(data), "dataset_train_split": "train", "num_prompts": 5, "max_new_tokens": 6,
        "labeling_file": str(tmp_path / "to_label.csv"), "output_dir": str(tmp_path / "compare")})
    result = compare.main(*parse_config((compare.CompareArguments,), ["--config", str(config)]))
    assert result == {"exported": str(tmp_path / "to_label.csv")}
    assert (tmp_path / "to_label.csv").read_text().startswith("id,prompt,response_1,response_2,response_3")
    # The base tokenizer had no pad and SFT made <|im_end|> its eos: SFT pads with a token of its own, and the saved
    # config agrees with the saved tokenizer (plain `generate` stops at the chat eos; a classifier finds its last token)
    merged = tmp_path / "sft" / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    for saved in (AutoConfig.from_pretrained(merged), GenerationConfig.from_pretrained(merged)):
        assert saved.pad_token_id == tokenizer.pad_token_id
        assert tokenizer.eos_token_id in (saved.eos_token_id if isinstance(saved.eos_token_id, list)
                                          else [saved.eos_token_id])


def pad_eos_tokenizer(model_dir: Path):
    """The hub-like tokenizer as SmolLM2-Instruct has it: ChatML, eos <|im_end|>, pad == eos."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = (REAL.parent / "templates" / "chatml.jinja").read_text()
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    return tokenizer


def ppo_reward(model, tokenizer, prompts: list[str], responses: list[str]) -> list[float]:
    """The reward as TRL's PPOTrainer reads it: queries left-padded, responses right-padded, padding found by id."""
    queries = [tokenizer(chat_texts(tokenizer, [p])[0], add_special_tokens=False)["input_ids"] for p in prompts]
    answers = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    width, length = max(map(len, queries)), max(map(len, answers))
    pad = tokenizer.pad_token_id
    rows = [[pad] * (width - len(q)) + q + a + [pad] * (length - len(a)) for q, a in zip(queries, answers)]
    return get_reward(model, torch.tensor(rows), pad, width)[1].tolist()


@pytest.mark.parametrize("settled", [False, True])
def test_ppo_reads_the_reward_model_as_reward_training_does_once_the_pad_is_not_eos(hub_like, settled):
    """Defect: with pad == eos, PPO hid every <|im_end|> (the prompt's too) from the reward model and so scored
    the same answers otherwise than reward training and evaluation do. settle_pad gives it a pad of its own."""
    model_dir, _ = hub_like
    tokenizer = pad_eos_tokenizer(model_dir)
    if settled:
        assert "padding with '<|endoftext|>'" in settle_pad(tokenizer, "hub-like")
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(tokenizer), num_labels=1,
                                                       pad_token_id=tokenizer.pad_token_id, **SMOLLM2_TINY)).eval()
    prompts, responses = ["How do I water a fern?", "Hi"], ["Gently, once a week.", "Hello! How can I help?"]
    with torch.no_grad():
        trained_as = reward_scores(model, tokenizer, prompts, responses)  # what reward training and the report read
        in_ppo = ppo_reward(model, tokenizer, prompts, responses)
    assert torch.allclose(torch.tensor(trained_as), torch.tensor(in_ppo), atol=1e-5) == settled


def test_a_pad_token_that_is_the_eos_or_in_the_template_is_refused_naming_the_key(hub_like):
    model_dir, _ = hub_like
    with pytest.raises(ConfigError, match=r"pad_token: '<\|im_end\|>' is the eos token .* e.g. '<\|endoftext\|>'"):
        settle_pad(pad_eos_tokenizer(model_dir), "hub-like", pad_token="<|im_end|>")
    with pytest.raises(ConfigError, match=r"pad_token: '<\|im_start\|>' is written by its chat template"):
        settle_pad(pad_eos_tokenizer(model_dir), "hub-like", pad_token="<|im_start|>")
    crowded = pad_eos_tokenizer(model_dir)
    crowded.chat_template = "<|endoftext|>" + crowded.chat_template  # now every special token is used
    with pytest.raises(InputError, match="hub-like: its tokenizer pads with '<\\|im_end\\|>', which is the eos token"):
        settle_pad(crowded, "hub-like")


def test_an_rl_stage_refuses_a_reward_model_that_finds_its_last_token_through_another_pad(hub_like, tmp_path):
    """A reward model whose config pads with the eos (trained before its SFT model had a pad of its own) would be
    read at another token in RL than in its training: refused before the stage writes anything."""
    model_dir, data = hub_like
    sft_config = write_yaml(tmp_path / "sft.yaml", {**yaml.safe_load((REAL / "sft_lora.yaml").read_text()), **CPU,
                                                    "model_name_or_path": str(model_dir), "dataset_name": str(data),
                                                    "output_dir": str(tmp_path / "sft")})
    sft.main(*parse_config((sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig), ["--config", str(sft_config)]))
    rm = tmp_path / "rm"
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "sft" / "merged")
    stale = LlamaConfig(vocab_size=len(tokenizer), num_labels=1, pad_token_id=tokenizer.eos_token_id, **SMOLLM2_TINY)
    LlamaForSequenceClassification(stale).save_pretrained(rm)
    tokenizer.save_pretrained(rm)
    config = write_yaml(tmp_path / "rloo.yaml", {
        **yaml.safe_load((REAL / "rloo_lora.yaml").read_text()), **RL_CPU["rloo"], "dtype": "float32",
        "sft_model_path": str(tmp_path / "sft" / "merged"), "reward_model_path": str(rm), "dataset_name": str(data),
        "output_dir": str(tmp_path / "rloo")})
    with pytest.raises(InputError, match=f"reward_model_path: {rm} finds its last token through pad_token_id "
                                         f"{tokenizer.eos_token_id} .* but the policy pads with id "
                                         f"{tokenizer.pad_token_id}"):
        rloo.main(*parse_config(RL_TYPES["rloo"], ["--config", str(config)]))
    assert not (tmp_path / "rloo").exists()


@pytest.mark.skipif(not (SHARED_DATA / "hh-rlhf").exists(), reason="../shared/data is absent")
def test_real_pipeline_ends_with_an_evaluation_by_judges_without_gold(hub_like, tmp_path):
    """configs/smollm2-135m/pipeline_qlora.yaml at tiny size on the hh-rlhf sample: SFT, the reward model and the
    held-out judge on disjoint halves of the pairs, PPO, then the evaluation with every judge and no gold."""
    model, _ = hub_like
    data = str(SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    real = yaml.safe_load((REAL / "pipeline_qlora.yaml").read_text())
    cpu = {**CPU, "dtype": "bfloat16"}
    overrides = {
        "sft": {**cpu, "dataset_name": data},
        "reward": {**cpu, "eval_strategy": "no", "dataset_name": data, "dataset_train_split": "train[:40%]",
                   "dataset_test_split": "train[80%:]", "max_eval_pairs": 8},
        "judge": {**cpu, "eval_strategy": "no", "dataset_name": data, "dataset_train_split": "train[40%:80%]",
                  "dataset_test_split": "train[80%:]", "max_eval_pairs": 8},
        "ppo": {**PPO_CPU, "dtype": "bfloat16", "dataset_name": data, "num_prompts": 16},
        "evaluate": {"dataset_name": data, "dataset_split": "train[80%:]", "num_prompts": 4, "max_new_tokens": 6,
                     "best_of_n": 2, "batch_size": 4, "llm_judge": "sft", "llm_judge_batch_size": 4,
                     "num_samples": 2},
    }
    configs = {f"{stage}_config": str(write_yaml(tmp_path / f"{stage}.yaml", {
        **yaml.safe_load((ROOT / real[f"{stage}_config"]).read_text()), **values, "output_dir": "unused"}))
        for stage, values in overrides.items()}
    config = write_yaml(tmp_path / "pipeline.yaml", {**real, **configs, "base_model": str(model),
                                                     "run_dir": str(tmp_path / "run")})
    args, = parse_config((pipeline.PipelineArguments,), ["--config", str(config)])
    timings = pipeline.main(args)
    assert timings["compare"] == "skipped" and all(isinstance(timings[s], float) for s in overrides)
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["gold"] is False and report["num_prompts"] == 4
    assert report["judges"]["judge_reward_model"]["model"] == str(run / "judge" / "merged")
    for name in ("base", "best_of_n", "ppo"):
        judged = report["models"][name]["judges"]
        assert set(judged) == {"reward_model", "judge_reward_model", "llm_judge"}
        assert all(0 <= j["mean"] <= 1 and "length_controlled" in j for j in judged.values())
    assert "## Judges" in (run / "report.md").read_text()
