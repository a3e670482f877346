"""Gold score: the toy world's noise-free gold labeler scores each (prompt, response) in [0, 1].

    metric = evaluate.load("metrics/gold_score")
    metric.compute(predictions=responses, prompts=prompts, world_seed=0)

Returns the mean with a normal-approximation 95% confidence interval, the mean per task family, the correctness per
task family (the rubric's `correct` part alone: does the model know the answer, apart from style), and every score
(so that two models can be compared prompt by prompt). The rubric is `recipes.toy.GoldLabeler`'s.
"""

import datasets
import evaluate

from recipes.common.generation import mean_ci
from recipes.toy import MAX_OPERAND, NUM_ENTITIES, GoldLabeler, ToyWorld

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the responses.
    prompts (list of str): the toy-world prompts they answer.
    world_seed (int): the toy world's seed (default 0); num_entities, max_operand (int): its size (default:
        the toy world's).
Returns:
    gold_score (float), ci95 ([low, high]), n (int), by_family ({family: mean}),
    correct_by_family ({family: share of responses the rubric counts correct}), scores (list of float).
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class GoldScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "prompts": datasets.Value("string")}),
        )

    def _compute(self, predictions, prompts, world_seed: int = 0, num_entities: int = NUM_ENTITIES,
                 max_operand: int = MAX_OPERAND):
        world = ToyWorld(world_seed, num_entities, max_operand)
        labeler = GoldLabeler(world, temperature=0)
        rubrics = [labeler.rubric(p, r) for p, r in zip(prompts, predictions)]
        scores = [r["score"] for r in rubrics]
        families: dict[str, list[dict]] = {}
        for prompt, rubric in zip(prompts, rubrics):
            families.setdefault(world.task_for(prompt).family, []).append(rubric)
        ci = mean_ci(scores)
        mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
        return {"gold_score": ci["mean"], "ci95": ci["ci95"], "n": ci["n"],
                "by_family": {f: mean(rows, "score") for f, rows in families.items()},
                "correct_by_family": {f: mean(rows, "correct") for f, rows in families.items()}, "scores": scores}
