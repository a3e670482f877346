import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


TINY_PRETRAIN = {
    "num_documents": 400, "num_eval_documents": 40, "num_probe_documents": 20, "vocab_size": 512, "block_size": 64,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_samples": 2,
    "sample_max_new_tokens": 8, "max_steps": 40, "per_device_train_batch_size": 8, "learning_rate": 1.0e-2,
    "logging_steps": 5, "save_steps": 4, "report_to": "tensorboard", "dataloader_pin_memory": False, "seed": 0,
}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A pretraining smoke run: a tiny base model directory, shared by the tests that need a model."""
    from recipes import pretrain
    from recipes.common.cli import parse_config

    out = tmp_path_factory.mktemp("pretrain")
    config = write_yaml(out / "in.yaml", {**TINY_PRETRAIN, "output_dir": str(out / "model")})
    pretrain.main(*parse_config((pretrain.PretrainArguments, pretrain.TrainingArguments), ["--config", str(config)]))
    return out / "model"


def tensorboard_tags(output_dir: Path) -> set[str]:
    """The scalar tags a stage logged to TensorBoard (report_to: tensorboard writes under output_dir/runs/)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for run in (output_dir / "runs").iterdir():
        events = EventAccumulator(str(run))
        events.Reload()
        tags |= set(events.Tags()["scalars"])
    return tags
