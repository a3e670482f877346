"""Every stage's arguments, in one place: each stage's recipe parses its own with them, and `recipes.pipeline` reads
every stage's config with them before the first stage runs, without importing any stage's recipe.

`CONFIGS[stage]` is what `--config` and the command line fill for that stage (the held-out judge is a reward model).
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field

from transformers import TrainingArguments
from trl import ModelConfig, RewardConfig, ScriptArguments, SFTConfig

try:
    from trl.experimental.ppo import PPOConfig
except ImportError:  # TRL 1.13 removed PPO: every other stage still loads (README, "The stack moves on")
    PPOConfig = None

from recipes.common import rl
from recipes.common.errors import ConfigError
from recipes.toy import DEFAULT_LABELER_TEMPERATURE, Demonstrator, WorldArguments


# recipes.pretrain
@dataclass
class PretrainArguments(WorldArguments):
    # Data: the toy world's corpus unless dataset_name is set
    dataset_name: str | None = field(default=None, metadata={
        "help": "Hub dataset id, local .txt/.json/.jsonl/.csv/.parquet file(s), or a save_to_disk directory. "
                "Unset: the toy world's corpus."})
    dataset_config: str | None = None
    dataset_split: str = "train"
    text_column: str = "text"
    num_documents: int = field(default=20000, metadata={"help": "Toy-world documents to pretrain on."})
    num_eval_documents: int = field(default=500, metadata={"help": "Held-out documents for perplexity."})
    num_probe_documents: int = field(default=400, metadata={
        "help": "Toy world: held-out documents whose facts and sums the base model must complete (0 for none)."})
    # Tokenizer and model
    vocab_size: int = 2048
    block_size: int = 256
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    # Samples written to samples.md
    num_samples: int = 6
    sample_max_new_tokens: int = 48


# recipes.sft
@dataclass
class SFTScriptArguments(ScriptArguments, WorldArguments):
    invalid_rows: str = field(default="error", metadata={"help": "'error' or 'skip' malformed rows."})
    max_dropped_fraction: float = field(default=0.1, metadata={
        "help": "Refuse to train when max_length would leave no reply in more than this fraction of examples."})
    trainable_token_embeddings: list[str] | None = field(default=None, metadata={
        "help": "Tokens whose embedding rows train beside the LoRA adapter (tied to the output layer), e.g. chat "
                "tokens the base model never saw such as <|im_start|> and <|im_end|>; 'all' for every row. Needs "
                "loss_type: nll."})
    frozen_token_pattern: str | None = field(default=None, metadata={
        "help": "A regular expression: the embedding rows of tokens whose text fully matches it stay frozen, "
                "'all' above notwithstanding (the toy config keeps the number tokens' rows, which are also the "
                "output layer for answers, as pretraining left them)."})

    def __post_init__(self):
        if self.frozen_token_pattern:
            try:
                re.compile(self.frozen_token_pattern)
            except re.error as e:
                raise ConfigError(f"frozen_token_pattern: {self.frozen_token_pattern!r} is not a regular expression "
                                  f"({e})") from None

    # The toy world's demonstrations, used when dataset_name is unset
    num_demonstrations: int = field(default=2000, metadata={
        "help": "Toy world: demonstrations, one per prompt of the world's SFT split, the families taking turns; at "
                "most the split's size (about 2,670 prompts in the default world)."})
    replay_documents: int = field(default=0, metadata={
        "help": "Toy world: pretraining documents mixed into SFT as plain text (loss on every token), so that "
                "fine-tuning does not wash out what pretraining taught; 0 for none."})
    wrong_rate: float = Demonstrator.wrong_rate
    verbose_rate: float = Demonstrator.verbose_rate
    rude_rate: float = Demonstrator.rude_rate
    missed_refusal_rate: float = Demonstrator.missed_refusal_rate
    over_refusal_rate: float = Demonstrator.over_refusal_rate
    # Gold evaluation of the base and SFT models on held-out prompts (toy world only; 0 to skip)
    num_eval_prompts: int = 500
    max_new_tokens: int = 48


# recipes.compare
LABELERS = ("gold", "noisy", "reward_model", "human")


@dataclass
class CompareArguments(WorldArguments):
    output_dir: str = field(default="runs/tiny/compare", metadata={"help": "Where the comparison data goes."})
    policy: str = field(default=None, metadata={"help": "The model that writes the responses (the SFT model)."})
    # Prompts: the toy world's comparison split unless dataset_name is set
    dataset_name: str | None = None
    dataset_config: str | None = None
    dataset_train_split: str = "train"
    prompt_column: str = "prompt"
    num_prompts: int = 600
    judge_prompts: int = field(default=0, metadata={
        "help": "More prompts, disjoint from num_prompts', for a held-out judge reward model (judge_comparisons/)."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of prompts held out as the test split."})
    # Sampling
    responses_per_prompt: int = field(default=4, metadata={"help": "K; InstructGPT used 4 to 9."})
    temperature: float = 1.0
    max_new_tokens: int = 48
    batch_size: int = 64
    seed: int = 0
    # Ranking
    labeler: str = field(default="noisy", metadata={"help": f"One of {LABELERS}."})
    labeler_temperature: float = DEFAULT_LABELER_TEMPERATURE
    reward_model: str | None = None
    labeling_file: str | None = None
    rankings_file: str | None = None
    # Hub
    push_to_hub: bool = False
    hub_dataset_id: str | None = None
    hub_private: bool = True

    def __post_init__(self):
        if self.labeler not in LABELERS:
            raise ConfigError(f"labeler: {self.labeler!r} is not one of {LABELERS}")
        if self.labeler == "reward_model" and not self.reward_model:
            raise ConfigError("labeler: reward_model needs reward_model: <path or Hub id>")
        if self.labeler in ("gold", "noisy") and self.dataset_name:
            raise ConfigError(f"labeler: {self.labeler} knows only the toy world's prompts; unset dataset_name or "
                             "use labeler: human or reward_model")
        if self.labeler == "human" and not (self.labeling_file or self.rankings_file):
            raise ConfigError("labeler: human needs labeling_file (to export) or rankings_file (to import)")
        if self.judge_prompts < 0:
            raise ConfigError(f"judge_prompts: {self.judge_prompts} must be 0 (no judge) or more")
        if self.responses_per_prompt < 2:
            raise ConfigError("responses_per_prompt must be at least 2")


# recipes.reward (and the pipeline's judge stage)
@dataclass
class RewardScriptArguments(ScriptArguments):
    invalid_rows: str = field(default="error", metadata={"help": "'error' or 'skip' malformed rows."})
    max_eval_pairs: int = field(default=2000, metadata={"help": "Test pairs scored for eval_results.json."})
    trainable_token_embeddings: list[str] | None = field(default=None, metadata={
        "help": "Tokens whose embedding rows train beside the adapter; 'all' for every row."})
    max_dropped_fraction: float = field(default=0.1, metadata={
        "help": "Refuse to train when max_length would drop more than this fraction of the training pairs."})
    standardize_scores: bool = field(default=True, metadata={
        "help": "Rescale the score head so that scores of the test responses have standard deviation 1."})


# recipes.ppo
@dataclass
class PPOScriptArguments(rl.RLArguments):
    """Every RL stage's script keys; PPO's models are PPOConfig's keys sft_model_path and reward_model_path."""


# recipes.evaluate
@dataclass
class EvaluateArguments(WorldArguments):
    output_dir: str = field(default="runs/tiny/evaluate", metadata={"help": "Responses, plot and stage marker."})
    report_dir: str | None = field(default=None, metadata={"help": "report.md and report.json; default: the "
                                                                   "parent of output_dir (the run directory)."})
    sft_model: str = field(default=None, metadata={"help": "The baseline for win rates and KL."})
    base_model: str | None = None
    reward_model: str | None = None
    ppo_model: str | None = None
    # Prompts: the toy world's held-out split, or a dataset (then no gold labeler)
    dataset_name: str | None = field(default=None, metadata={"help": "Prompts from this dataset instead of the "
                                                                     "toy world's held-out split; no gold then."})
    dataset_config: str | None = None
    dataset_split: str = "test"
    prompt_column: str = "prompt"
    num_prompts: int = 500
    fewshot_shots: int = 3
    best_of_n: int = field(default=4, metadata={"help": "Samples per prompt for best-of-n; 0 to leave it out."})
    max_new_tokens: int = 48
    batch_size: int = 64
    # Judges that need no gold (the policy's reward_model is one too)
    judge_reward_model: str | None = field(default=None, metadata={
        "help": "A held-out reward model, trained on pairs the policy's reward model never saw."})
    llm_judge: str | None = field(default=None, metadata={
        "help": "A chat model (Hub id or directory) asked which answer is better; 'sft' for the SFT model."})
    llm_judge_template: str = field(default="configs/judges/pairwise.txt", metadata={
        "help": "The LLM judge's question, with {prompt}, {response_a} and {response_b}."})
    llm_judge_batch_size: int = 16
    num_samples: int = field(default=10, metadata={"help": "Prompts shown side by side in the report."})
    seed: int = 0


CONFIGS = {
    "pretrain": (PretrainArguments, TrainingArguments),
    "sft": (SFTScriptArguments, SFTConfig, ModelConfig),
    "compare": (CompareArguments,),
    "reward": (RewardScriptArguments, RewardConfig, ModelConfig),
    "judge": (RewardScriptArguments, RewardConfig, ModelConfig),
    "ppo": (PPOScriptArguments, PPOConfig, ModelConfig),
    "evaluate": (EvaluateArguments,),
}
if PPOConfig is None:
    del CONFIGS["ppo"]

NO_PPO = (f"the ppo stage needs TRL's PPOTrainer, which trl {importlib.metadata.version('trl')} does not have (it is "
          "in trl.experimental.ppo up to trl 1.12 and was removed in 1.13): install requirements.txt (trl==1.12.0), "
          "or leave the stage out (the pipeline's `skip: [ppo]`)")
