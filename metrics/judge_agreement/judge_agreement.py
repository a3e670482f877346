"""Judge agreement: how often a judge's pairwise verdicts match the truth's (the toy world's noise-free labeler), on
the pairs where the truth is not tied. A judge's tie there counts as a disagreement.

    metric = evaluate.load("metrics/judge_agreement")
    metric.compute(predictions=judge_verdicts, references=gold_verdicts)

A verdict is 1 (the first answer is better), 0.5 (a tie) or 0 (the second is better), as the judges in
`recipes/common/judges.py` give them.
"""

import datasets
import evaluate

from recipes.common.generation import mean_ci

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): the judge's verdicts, 1, 0.5 or 0.
    references (list of float): the true verdicts on the same pairs.
Returns:
    agreement (float, on the pairs the truth decides, with ci95), n_decided (int), judge_ties (share of those pairs
    the judge calls a tie), win_rate_gap (the judge's win rate minus the truth's, over every pair).
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class JudgeAgreement(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float32"),
                                        "references": datasets.Value("float32")}),
        )

    def _compute(self, predictions, references):
        decided = [(p, r) for p, r in zip(predictions, references) if r != 0.5]
        gap = (sum(predictions) - sum(references)) / len(references) if references else float("nan")
        if not decided:
            return {"agreement": float("nan"), "ci95": [float("nan")] * 2, "n_decided": 0, "judge_ties": float("nan"),
                    "win_rate_gap": gap}
        agreement = mean_ci([float(p == r) for p, r in decided])
        return {"agreement": agreement["mean"], "ci95": agreement["ci95"], "n_decided": len(decided),
                "judge_ties": sum(p == 0.5 for p, _ in decided) / len(decided), "win_rate_gap": gap}
