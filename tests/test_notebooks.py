"""The notebooks run top to bottom in a real Jupyter kernel, on the fast toy pipeline, and are committed stripped.

The five notebooks share one run directory, in order, as a reader would run them: 02 reuses 01's base model, and so
on; each also runs any stage before it that is missing. About 3 minutes on 2 cores.
"""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
# what each notebook must leave in the run directory
OUTPUTS = {
    "01_base_model.ipynb": ["pretrain/stage.json", "pretrain/samples.md"],
    "02_sft.ipynb": ["sft/stage.json", "sft/eval_results.json", "sft/samples.md"],
    "03_reward_model.ipynb": ["compare/stage.json", "reward/stage.json", "reward/eval_results.json"],
    "04_ppo.ipynb": ["ppo/stage.json", "ppo/curves.png", "ppo/eval_results.json"],
    "05_evaluation.ipynb": ["evaluate/stage.json", "evaluate/report.png", "report.md", "report.json"],
}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(OUTPUTS)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_notebook_is_stripped(name):
    """Committed notebooks hold no outputs and no execution counts: the reader's run makes them."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, name
    for i, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: code cell {i} is not stripped"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run directory for all five notebooks; the kernel inherits these variables from this process."""
    run = tmp_path_factory.mktemp("notebooks") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_PIPELINE_CONFIG", "configs/tiny/fast/pipeline.yaml")
        mp.setenv("RLHF_RUN_DIR", str(run))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        # The fast configs' models are too small for a second thread to help, and with anything else running on 2
        # cores, torch's 2 OpenMP threads slow each other down many times over (measured: 20x on a small matmul).
        mp.setenv("OMP_NUM_THREADS", "1")
        yield run


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_notebook_runs(name, run_dir):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # raises CellExecutionError, with the cell and its traceback, at the first cell that fails
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    missing = [path for path in OUTPUTS[name] if not (run_dir / path).is_file()]
    assert not missing, f"{name} ran but did not write {missing} in {run_dir}"
    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert any("image/png" in out.get("data", {}) for out in shown), f"{name} shows no plot"
    if name == "05_evaluation.ipynb":
        report = json.loads((run_dir / "report.json").read_text())
        assert {"base", "base_fewshot", "sft", "ppo"} <= set(report["models"])
