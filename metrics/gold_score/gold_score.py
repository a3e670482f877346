"""Gold score: the toy world's noise-free gold labeler scores each (prompt, response) in [0, 1].

    metric = evaluate.load("metrics/gold_score")
    metric.compute(predictions=responses, prompts=prompts, world_seed=0)

Returns the mean with a normal-approximation 95% confidence interval, the mean per task family, and every score
(so that two models can be compared prompt by prompt). The rubric is `recipes.toy_world.GoldLabeler`'s.
"""

import datasets
import evaluate

from recipes.generation import mean_ci
from recipes.toy_world import GoldLabeler, ToyWorld

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the responses.
    prompts (list of str): the toy-world prompts they answer.
    world_seed (int): the toy world's seed (default 0).
Returns:
    gold_score (float), ci95 ([low, high]), n (int), by_family ({family: mean}), scores (list of float).
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class GoldScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "prompts": datasets.Value("string")}),
        )

    def _compute(self, predictions, prompts, world_seed: int = 0):
        world = ToyWorld(world_seed)
        labeler = GoldLabeler(world, temperature=0)
        scores = [labeler.score(p, r) for p, r in zip(prompts, predictions)]
        families: dict[str, list[float]] = {}
        for prompt, score in zip(prompts, scores):
            families.setdefault(world.task_for(prompt).family, []).append(score)
        ci = mean_ci(scores)
        return {"gold_score": ci["mean"], "ci95": ci["ci95"], "n": ci["n"],
                "by_family": {f: sum(v) / len(v) for f, v in families.items()}, "scores": scores}
