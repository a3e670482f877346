"""Hub uploads, without a network: a fake HfApi keeps what would be uploaded in a local folder."""

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml
from datasets import DatasetDict
from huggingface_hub import ModelCard, RepoUrl
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

from recipes import compare, ppo, pretrain, push, reward, sft
from recipes.common import hub, run_dir
from recipes.common.cli import ConfigError, parse_config
from tests.conftest import write_yaml
from tests.test_compare_reward import run_compare
from tests.test_sft import run_sft

TOKEN = "hf_FakeTokenThatMustNeverBeWritten0123"


class FakeHub:
    """What `HfApi` would have sent: files under `root/<models|datasets>/<repo_id>/`, and each repo's privacy."""

    def __init__(self, root: Path, role: str = "write"):
        self.root, self.role, self.private = root, role, {}

    def repo(self, repo_id: str, repo_type: str | None = None) -> Path:
        return self.root / ("datasets" if repo_type == "dataset" else "models") / repo_id

    def whoami(self, token=None):
        return {"name": "me", "auth": {"accessToken": {"role": self.role}}}

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False):
        self.private.setdefault(repo_id, private)
        self.repo(repo_id, repo_type).mkdir(parents=True, exist_ok=True)
        return RepoUrl(f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns, repo_type=None, commit_message=None):
        folder = Path(folder_path)
        files = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
        # the same filter, and default patterns, as HfApi.upload_folder
        for name in filter_repo_objects(files, ignore_patterns=[*ignore_patterns, *DEFAULT_IGNORE_PATTERNS]):
            self.upload_file(path_or_fileobj=(folder / name).read_bytes(), path_in_repo=name, repo_id=repo_id,
                             repo_type=repo_type)

    def upload_file(self, *, path_or_fileobj, path_in_repo, repo_id, repo_type=None, commit_message=None):
        target = self.repo(repo_id, repo_type) / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path_or_fileobj)

    def push_dataset(self, data: DatasetDict, repo_id: str, private=None):
        """DatasetDict.push_to_hub: a Parquet file per split; it keeps the README's text."""
        self.private.setdefault(repo_id, private)
        for split, dataset in data.items():
            dataset.to_parquet(str(self.repo(repo_id, "dataset") / "data" / f"{split}.parquet"))


@contextlib.contextmanager
def online(root: Path, role: str = "write"):
    """A logged-in machine whose Hub is `FakeHub`; HF_HUB_OFFLINE stays set, so nothing real can leave."""
    fake = FakeHub(root, role)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", TOKEN)
        mp.setattr(hub, "is_offline_mode", lambda: False)
        mp.setattr(hub, "HfApi", lambda: fake)
        mp.setattr(DatasetDict, "push_to_hub", lambda self, repo_id, private=None: fake.push_dataset(
            self, repo_id, private))
        yield fake


@pytest.fixture
def fake_hub(tmp_path):
    with online(tmp_path / "hub") as fake:
        yield fake


@pytest.fixture(scope="module")
def pushed_sft(tiny_base, tmp_path_factory):
    """An SFT run with push_to_hub: true, and a checkpoint that must stay local; (stage, hub, printed output)."""
    tmp = tmp_path_factory.mktemp("pushed_sft")
    printed = io.StringIO()
    with online(tmp / "hub") as fake, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        out, _ = run_sft(tmp, tiny_base, push_to_hub=True, hub_model_id="me/tiny-sft", save_steps=2,
                         num_eval_prompts=4)
    return out, fake, printed.getvalue()


def test_push_to_hub_uploads_adapter_merged_model_and_cards(pushed_sft):
    out, fake, _ = pushed_sft
    assert run_dir.is_complete(out) and (out / "checkpoint-2").is_dir() and (out / "training_args.bin").exists()
    assert fake.private == {"me/tiny-sft": True, "me/tiny-sft-merged": True}
    adapter, merged = fake.repo("me/tiny-sft"), fake.repo("me/tiny-sft-merged")
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md", "config.yaml",
                 "eval_results.json", "stage.json"):
        assert (adapter / name).exists(), name
    uploaded = {p.relative_to(adapter).as_posix() for p in adapter.rglob("*")}
    assert not any(name.startswith(("checkpoint-", "merged", "training_args.bin", ".")) for name in uploaded)
    assert (merged / "model.safetensors").exists() and (merged / "tokenizer.json").exists()

    card = ModelCard((adapter / "README.md").read_text())
    assert {"rlhf-recipes", "sft", "lora"} <= set(card.data.tags) and "toy-world demonstrations" in card.text
    assert card.data.datasets is None  # not a dataset id: the Hub would refuse the card
    metrics = json.loads((out / "stage.json").read_text())["metrics"]
    assert "## Results" in card.text and f"| train_loss | {metrics['train_loss']:.4g} |" in card.text
    assert "| gold.sft.gold.mean |" in card.text
    assert 'model="me/tiny-sft-merged"' in card.text  # the quick start loads the merged model, without peft
    merged_card = (merged / "README.md").read_text()
    assert "LoRA adapter merged in" in merged_card and "## Results" in merged_card
    # config.yaml says what was asked; the Trainer itself never pushed
    assert yaml.safe_load((out / "config.yaml").read_text())["push_to_hub"] is True
    assert torch.load(out / "training_args.bin", weights_only=False).push_to_hub is False


def test_the_token_is_written_nowhere(pushed_sft):
    out, fake, printed = pushed_sft
    written = [p for root in (out, fake.root) for p in root.rglob("*") if p.is_file()]
    assert len(written) > 20
    assert [p for p in written if TOKEN.encode() in p.read_bytes()] == []
    assert TOKEN not in printed


def test_hub_token_in_a_config_is_refused(tiny_base, tmp_path):
    with pytest.raises(ConfigError, match="hub_token: .*hf auth login") as error:
        run_sft(tmp_path, tiny_base, hub_token=TOKEN)
    assert TOKEN not in str(error.value) and not (tmp_path / "sft").exists()


# each recipe's main, its dataclasses, and inputs that do not exist: a check that let them through would fail on
# them, or load a model, instead of failing first
STAGES = {
    "pretrain": (pretrain.main, (pretrain.PretrainArguments, pretrain.TrainingArguments), {}),
    "sft": (sft.main, (sft.SFTScriptArguments, sft.SFTConfig, sft.ModelConfig),
            {"model_name_or_path": "runs/nowhere/pretrain"}),
    "reward": (reward.main, (reward.RewardScriptArguments, reward.RewardConfig, reward.ModelConfig),
               {"model_name_or_path": "runs/nowhere/sft/merged", "dataset_name": "runs/nowhere/comparisons"}),
    "ppo": (ppo.main, (ppo.PPOScriptArguments, ppo.PPOConfig, ppo.ModelConfig),
            {"sft_model_path": "runs/nowhere/sft/merged", "reward_model_path": "runs/nowhere/reward/merged"}),
    "compare": (compare.main, (compare.CompareArguments,), {"policy": "runs/nowhere/sft/merged"}),
}


def stage_config(stage: str, tmp_path: Path, **overrides) -> tuple:
    """A stage's main and its parsed config, with push_to_hub: true."""
    main, types, inputs = STAGES[stage]
    trainer = {} if stage == "compare" else {"report_to": "none", "bf16": False}
    config = write_yaml(tmp_path / f"{stage}.yaml", {"output_dir": str(tmp_path / stage), "push_to_hub": True,
                                                      **trainer, **inputs, **overrides})
    return main, parse_config(types, ["--config", str(config)])


def repo_key(stage: str) -> str:
    return "hub_dataset_id" if stage == "compare" else "hub_model_id"


@pytest.mark.parametrize("stage", STAGES)
def test_offline_push_fails_before_anything_loads(stage, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "is_offline_mode", lambda: True)  # as HF_HUB_OFFLINE=1 makes it
    main, args = stage_config(stage, tmp_path, **{repo_key(stage): "me/x"})
    with pytest.raises(hub.HubError) as error:
        main(*args)
    message = str(error.value)
    assert message.startswith("push_to_hub: true, but HF_HUB_OFFLINE is set") and "push_to_hub: false" in message
    assert f"python -m recipes.push --stage_dir {tmp_path / stage} --repo_id me/x" in message
    assert not (tmp_path / stage).exists()


@pytest.mark.parametrize("stage", STAGES)
def test_push_without_a_repo_id_names_the_key(stage, tmp_path):
    main, args = stage_config(stage, tmp_path)
    with pytest.raises(ConfigError, match=f"^{repo_key(stage)}: push_to_hub: true needs {repo_key(stage)}"):
        main(*args)
    assert not (tmp_path / stage).exists()


@pytest.mark.parametrize("problem, match", [
    ("no token", "no Hugging Face token was found; log in with `hf auth login` or set HF_TOKEN"),
    ("unreachable", r"the Hub did not answer or refused the token \(ConnectionError"),
    ("read-only", "the token is read-only"),
])
def test_push_fails_fast_without_a_usable_login(problem, match, tmp_path, monkeypatch):
    fake = FakeHub(tmp_path, role="read" if problem == "read-only" else "write")
    if problem == "unreachable":
        fake.whoami = lambda token=None: (_ for _ in ()).throw(ConnectionError("hub.example: unreachable"))
    monkeypatch.setattr(hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    monkeypatch.setattr(hub, "get_token", lambda: None if problem == "no token" else TOKEN)
    _, args = stage_config("sft", tmp_path, hub_model_id="me/x")
    with pytest.raises(hub.HubError, match=f"^push_to_hub: true, but {match}.*\nOr set push_to_hub: false"):
        hub.check_push(args[1])


def test_checkpoint_uploads_are_refused(tmp_path):
    main, args = stage_config("sft", tmp_path, hub_model_id="me/x", hub_strategy="checkpoint")
    with pytest.raises(ConfigError, match="^hub_strategy: checkpoint uploads checkpoints while training"):
        main(*args)


def test_push_refuses_an_unfinished_stage(tmp_path):
    stage = tmp_path / "sft"
    stage.mkdir()
    (stage / "config.yaml").write_text("{}")
    (stage / "adapter_config.json").write_text("{}")
    args = ["--stage_dir", str(stage), "--repo_id", "me/x"]
    with pytest.raises(hub.HubError) as error:
        push.main(*parse_config((push.PushArguments,), args))
    assert str(error.value).startswith(f"{stage} is not a finished stage (no complete stage.json)")


def test_push_uploads_a_finished_stage_later(pushed_sft, fake_hub):
    out, _, _ = pushed_sft
    args = ["--stage_dir", str(out), "--repo_id", "me/later", "--private", "false", "--merged", "false"]
    assert push.main(*parse_config((push.PushArguments,), args)) == ["https://huggingface.co/me/later"]
    assert fake_hub.private == {"me/later": False}
    assert (fake_hub.repo("me/later") / "adapter_model.safetensors").exists()
    assert 'model="me/later"' in (fake_hub.repo("me/later") / "README.md").read_text()


def test_push_uploads_a_pretrained_model(tiny_base, fake_hub):
    push.main(*parse_config((push.PushArguments,), ["--stage_dir", str(tiny_base), "--repo_id", "me/base"]))
    repo = fake_hub.repo("me/base")
    assert (repo / "model.safetensors").exists() and (repo / "tokenizer.json").exists()
    card = ModelCard((repo / "README.md").read_text())
    assert "pretraining" in card.data.tags and "| perplexity |" in card.text


def test_a_failed_upload_leaves_the_stage_complete(pushed_sft, fake_hub):
    out, _, _ = pushed_sft
    fake_hub.upload_folder = lambda **kwargs: (_ for _ in ()).throw(ConnectionError("connection reset"))
    with pytest.raises(hub.HubError) as error:
        hub.push_finished(out, hub.Target("me/y", private=True))
    assert str(error.value) == (f"{out} is complete, but uploading it to me/y failed: connection reset\n"
                                f"Upload it with `python -m recipes.push --stage_dir {out} --repo_id me/y`.")
    assert run_dir.is_complete(out)


def test_compare_pushes_its_pairs_as_a_dataset_repo(pushed_sft, fake_hub, tmp_path):
    out, _, _ = pushed_sft
    metrics = run_compare(tmp_path, out / "merged", labeler="noisy", num_prompts=8, push_to_hub=True,
                          hub_dataset_id="me/pairs")
    repo = fake_hub.repo("me/pairs", "dataset")
    assert fake_hub.private == {"me/pairs": True}
    assert (repo / "data" / "train.parquet").exists() and (repo / "data" / "test.parquet").exists()
    card = (repo / "README.md").read_text()
    assert "comparisons" in card and f"| train_pairs | {metrics['train_pairs']} |" in card
    # and later, from the comparisons/ directory itself
    push.main(*parse_config((push.PushArguments,), ["--stage_dir", str(tmp_path / "compare" / "comparisons"),
                                                    "--repo_id", "me/pairs-again"]))
    assert (fake_hub.repo("me/pairs-again", "dataset") / "data" / "train.parquet").exists()
