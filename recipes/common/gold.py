"""Scoring a model's answers with the toy world's gold labeler, and this repo's metrics: shared by the stages that
evaluate on held-out toy-world prompts (SFT, PPO, the evaluation)."""

from __future__ import annotations

from pathlib import Path

import evaluate

from recipes.common.generation import chat_texts, generate

METRICS = Path(__file__).resolve().parents[2] / "metrics"


def load_metric(name: str) -> evaluate.EvaluationModule:
    """One of this repo's metrics (metrics/<name>/<name>.py), loaded from its path: nothing is downloaded."""
    return evaluate.load(str(METRICS / name))


def gold_eval(model, tokenizer, world, tasks, *, fewshot: bool = False, shots: int = 3, max_new_tokens: int = 48,
              temperature: float = 0.0, batch_size: int = 64, desc: str = "gold eval") -> dict:
    """Responses to `tasks` (greedy at temperature 0; for `fewshot`, the base model's answer in a fake FAQ page)
    and their gold scores: `gold` (mean with CI), `by_family`, `correct_by_family`, `scores` and `responses`."""
    prompts = [t.prompt for t in tasks]
    texts = [world.fewshot_prompt(p, shots) for p in prompts] if fewshot else chat_texts(tokenizer, prompts)
    responses = [r[0] for r in generate(model, tokenizer, texts, max_new_tokens=max_new_tokens,
                                        do_sample=temperature > 0, temperature=temperature or 1.0,
                                        batch_size=batch_size, stop_at_newline=fewshot, desc=desc)]
    result = load_metric("gold_score").compute(predictions=responses, prompts=prompts, **world.spec)
    return {"gold": {"mean": result["gold_score"], "ci95": result["ci95"], "n": result["n"]},
            "by_family": result["by_family"], "correct_by_family": result["correct_by_family"],
            "scores": result["scores"], "responses": responses}
