"""Upload a finished stage to the Hugging Face Hub later: one run offline or with `push_to_hub: false`.

    python -m recipes.push --stage_dir runs/tiny/sft --repo_id <user>/tiny-sft

Log in first (`hf auth login`, or HF_TOKEN set to a write token). What goes where, as with `push_to_hub: true`:
a model stage (pretrain) to `repo_id`; a LoRA stage's adapter, tokenizer and card to `repo_id` and its `merged/`
model to `<repo_id>-merged` (`--merged false` to leave it out); a compare stage, or its `comparisons/`, to
`repo_id` as a dataset repo. New repos are private unless `--private false`. Each card lists the stage's metrics;
checkpoints and training_args.bin stay local. A stage without a complete stage.json is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recipes.common import hub
from recipes.common.cli import run_main


@dataclass
class PushArguments:
    stage_dir: str = field(metadata={"help": "A finished stage's output_dir (or its comparisons/ or merged/)."})
    repo_id: str = field(metadata={"help": "<user or organization>/<name>."})
    private: bool = field(default=True, metadata={"help": "Create the repo private (an existing one keeps its "
                                                          "visibility)."})
    merged: bool = field(default=True, metadata={"help": "Also upload a LoRA stage's merged/ to <repo_id>-merged."})


def main(args: PushArguments) -> list[str]:
    return hub.push_stage(args.stage_dir, args.repo_id, args.private, args.merged)


if __name__ == "__main__":
    run_main(main, (PushArguments,))
