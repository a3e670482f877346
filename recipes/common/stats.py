"""Win rates: the share of prompts on which a judge prefers a model's answer to the baseline's (a tie counts half),
with a confidence interval, and its length-controlled version, with the length difference between the two answers
factored out."""

from __future__ import annotations

import math
import random

from recipes.common.generation import mean_ci


def _fit(outcomes: list[float], x: list[float], iterations: int = 25) -> tuple[float, float]:
    """Logistic regression outcome ~ sigmoid(a + b x) on soft outcomes (a tie is 0.5), by Newton's method with a
    small ridge on b; returns (a, b)."""
    a = b = 0.0
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for y, xi in zip(outcomes, x):
            p = 1 / (1 + math.exp(-(a + b * xi)))
            w = p * (1 - p)
            ga += y - p
            gb += (y - p) * xi
            haa += w
            hab += w * xi
            hbb += w * xi * xi
        gb -= 1e-3 * b
        hbb += 1e-3
        det = haa * hbb - hab * hab
        if det <= 1e-12:
            break
        step_a, step_b = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = max(-20.0, min(20.0, a + step_a)), max(-20.0, min(20.0, b + step_b))
        if abs(step_a) + abs(step_b) < 1e-7:
            break
    return a, b


def length_controlled_win_rate(outcomes: list[float], length_differences: list[float], resamples: int = 200,
                               seed: int = 0) -> dict:
    """The win rate the two models would have if their answers were equally long, as AlpacaEval's length-controlled
    win rate: fit P(win) = sigmoid(a + b * tanh(d / sd(d))) on the length difference d (words, ours minus theirs),
    then predict at d = 0, sigmoid(a). A 95% CI from a bootstrap over prompts. `length_coefficient` b > 0: the judge
    prefers the longer answer; < 0, the shorter."""
    n = len(outcomes)
    sd = math.sqrt(sum(d * d for d in length_differences) / n) or 1.0
    x = [math.tanh(d / sd) for d in length_differences]
    a, b = _fit(outcomes, x)
    rng = random.Random(seed)
    boot = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        boot.append(1 / (1 + math.exp(-_fit([outcomes[i] for i in idx], [x[i] for i in idx])[0])))
    boot.sort()
    return {"mean": 1 / (1 + math.exp(-a)), "ci95": [boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1]],
            "n": n, "length_coefficient": b}


def win_rate(outcomes: list[float], length_differences: list[float]) -> dict:
    """A judge's verdicts on each prompt (1 the model's answer is better, 0.5 a tie, 0 the baseline's is better) as a
    win rate with its 95% CI, the counts, and the length-controlled win rate (`length_differences`: words, the model's
    answer minus the baseline's)."""
    ci = mean_ci(outcomes)
    return {"mean": ci["mean"], "ci95": ci["ci95"], "n": ci["n"], "wins": outcomes.count(1.0),
            "ties": outcomes.count(0.5), "losses": outcomes.count(0.0),
            "length_controlled": length_controlled_win_rate(outcomes, length_differences)}
