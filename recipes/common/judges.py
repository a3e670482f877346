"""Judges that need no gold labeler, for the question every real run ends with: did RLHF help?

Each judge compares a model's answer with the baseline's (SFT's) to the same prompt and gives a verdict: 1 (the
model's is better), 0.5 (a tie) or 0 (the baseline's is better). Identical answers are always a tie.
- `RewardModelJudge`: a reward model scores both answers; the higher wins. A *held-out* reward model, trained on pairs
  the policy's reward model never saw (`recipes.compare`'s `judge_comparisons`), is the one to trust: the policy was
  optimized against its own reward model, which therefore flatters it.
- `LLMJudge`: a causal LM with a chat template reads a pairwise question (a template file with `{prompt}`,
  `{response_a}` and `{response_b}`) and its next-token logits for "A" and "B" say which answer it prefers. It is
  asked both ways round: an answer preferred in both orders wins, one preferred in neither loses, and a disagreement
  (the judge preferring a position, not an answer) is a tie.
On the toy world every judge is checked against the truth: `metrics/judge_agreement` counts how often its verdicts
match the noise-free labeler's.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from recipes.common.errors import InputError
from recipes.common.generation import reward_scores
from recipes.common.stats import win_rate
from recipes.common.tokenizer import check_reward_pad

PLACEHOLDERS = ("{prompt}", "{response_a}", "{response_b}")


def device_and_dtype() -> tuple[str, torch.dtype]:
    return ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)


class RewardModelJudge:
    def __init__(self, path: str, batch_size: int = 64):
        self.name = path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        check_reward_pad(path, self.tokenizer.pad_token_id, "reward model", "its own tokenizer")
        device, _ = device_and_dtype()  # float32 even on a GPU: close scores must not tie by rounding
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32).to(
            device)
        self.batch_size = batch_size
        self._scored: dict[tuple, list[float]] = {}  # the baseline is judged against every model: score it once

    def scores(self, prompts: list[str], responses: list[str], desc: str = "scoring") -> list[float]:
        key = (tuple(prompts), tuple(responses))
        if key not in self._scored:
            self._scored[key] = reward_scores(self.model, self.tokenizer, prompts, responses, self.batch_size, desc)
        return self._scored[key]

    def verdicts(self, prompts: list[str], responses: list[str], baseline: list[str], desc: str = "") -> list[float]:
        ours = self.scores(prompts, responses, f"{desc}: answers")
        theirs = self.scores(prompts, baseline, f"{desc}: baseline")
        return [0.5 if r == b else 1.0 if s > t else 0.0 if s < t else 0.5
                for r, b, s, t in zip(responses, baseline, ours, theirs)]


def check_template(template: str | Path) -> str:
    """An LLM judge's prompt template, with every placeholder it needs."""
    text = Path(template).read_text()
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise InputError(f"llm_judge_template: {template} lacks {missing}; it needs {list(PLACEHOLDERS)}")
    return text


class LLMJudge:
    def __init__(self, path: str, template: str | Path, batch_size: int = 16, max_tokens_per_text: int = 256):
        self.name = path
        self.template = check_template(template)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if not self.tokenizer.chat_template:
            raise InputError(f"llm_judge: {path} has no chat template; use a chat (instruct) model as the judge")
        device, dtype = device_and_dtype()
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        self.batch_size, self.max_tokens = batch_size, max_tokens_per_text
        # The answer's first token: "A" alone or after a space, whichever the tokenizer makes of it
        self.letters = [sorted({self.tokenizer.encode(form, add_special_tokens=False)[0] for form in (x, f" {x}")})
                        for x in ("A", "B")]

    def _clip(self, text: str, keep_end: bool = False) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= self.max_tokens:
            return text
        return self.tokenizer.decode(ids[-self.max_tokens:] if keep_end else ids[:self.max_tokens])

    def question(self, prompt: str, a: str, b: str) -> str:
        filled = self.template
        for placeholder, text in zip(PLACEHOLDERS, (self._clip(prompt, keep_end=True), self._clip(a), self._clip(b))):
            filled = filled.replace(placeholder, text)
        return self.tokenizer.apply_chat_template([{"role": "user", "content": filled.strip()}], tokenize=False,
                                                  add_generation_prompt=True)

    @torch.no_grad()
    def prefers_a(self, prompts: list[str], a: list[str], b: list[str], desc: str = "LLM judge") -> list[float]:
        """log P("A") - log P("B") for the next token after each question: > 0 prefers response A."""
        # The chat template already holds any bos token the model expects
        ids = [self.tokenizer.encode(self.question(p, x, y), add_special_tokens=False)
               for p, x, y in zip(prompts, a, b)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batches of similar length: little padding
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        margins = [0.0] * len(ids)
        for start in tqdm(range(0, len(order), self.batch_size), desc=desc, leave=False):
            batch = [ids[i] for i in order[start:start + self.batch_size]]
            width = max(map(len, batch))
            tokens = torch.tensor([[pad] * (width - len(row)) + row for row in batch])  # left-padded: last aligned
            mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in batch])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            device = self.model.device
            logits = self.model(input_ids=tokens.to(device), attention_mask=mask.to(device),
                                position_ids=positions.to(device)).logits[:, -1].float().log_softmax(-1)
            score_a, score_b = (logits[:, letters].logsumexp(-1) for letters in self.letters)
            for i, margin in zip(order[start:start + self.batch_size], (score_a - score_b).tolist()):
                margins[i] = margin
        return margins

    def verdicts(self, prompts: list[str], responses: list[str], baseline: list[str], desc: str = "") -> list[float]:
        first = self.prefers_a(prompts, responses, baseline, f"{desc}: answer first")
        second = self.prefers_a(prompts, baseline, responses, f"{desc}: baseline first")
        return [0.5 if r == b else 1.0 if x > 0 > y else 0.0 if x < 0 < y else 0.5
                for r, b, x, y in zip(responses, baseline, first, second)]


@functools.cache
def reward_model_judge(path: str, batch_size: int = 64) -> RewardModelJudge:
    """One judge per reward model in a process: the evaluation's reward-model column, best-of-n and the judges
    share its model and the scores it has given."""
    return RewardModelJudge(path, batch_size)


def summarize(verdicts: list[float], responses: list[str], baseline: list[str]) -> dict:
    """A judge's win rate from its verdicts, with the length-controlled one."""
    return win_rate(verdicts, [len(r.split()) - len(b.split()) for r, b in zip(responses, baseline)])


def gold_verdicts(scores: list[float], baseline_scores: list[float]) -> list[float]:
    return [1.0 if s > t else 0.0 if s < t else 0.5 for s, t in zip(scores, baseline_scores)]
