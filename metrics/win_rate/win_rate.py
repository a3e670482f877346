"""Win rate: how often the toy world's gold labeler prefers each response to the baseline's response to the same
prompt, a tie counting half (InstructGPT reports its models this way, against a baseline policy).

    metric = evaluate.load("metrics/win_rate")
    metric.compute(predictions=ppo_responses, references=sft_responses, prompts=prompts, world_seed=0)
"""

import datasets
import evaluate

from recipes.common.stats import win_rate
from recipes.toy import MAX_OPERAND, NUM_ENTITIES, GoldLabeler, ToyWorld

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the responses of the model being judged.
    references (list of str): the baseline's responses to the same prompts.
    prompts (list of str): the toy-world prompts.
    world_seed (int): the toy world's seed (default 0); num_entities, max_operand (int): its size (default:
        the toy world's).
Returns:
    win_rate (float), ci95 ([low, high]), n, wins, ties, losses (int), length_controlled ({mean, ci95, n,
        length_coefficient}: the win rate with the difference in length, in words, factored out).
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class WinRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string"), "prompts": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, prompts, world_seed: int = 0, num_entities: int = NUM_ENTITIES,
                 max_operand: int = MAX_OPERAND):
        labeler = GoldLabeler(ToyWorld(world_seed, num_entities, max_operand), temperature=0)
        outcomes = []
        for prompt, ours, theirs in zip(prompts, predictions, references):
            a, b = labeler.score(prompt, ours), labeler.score(prompt, theirs)
            outcomes.append(1.0 if a > b else 0.5 if a == b else 0.0)
        lengths = [len(ours.split()) - len(theirs.split()) for ours, theirs in zip(predictions, references)]
        summary = win_rate(outcomes, lengths)
        return {"win_rate": summary.pop("mean"), **summary}
