"""The Colab notebooks run top to bottom on CPU with the tiny local model and the shipped data.

Each notebook is executed with nbclient in a Jupyter kernel running this interpreter (a kernelspec
written to a temporary directory, so the venv's Python is used whatever `python` is on PATH), in a
temporary working directory. CI values are injected after the cell tagged `parameters`, as papermill
does, so every other parameter keeps the notebook's default. Nothing is downloaded: `TINY = True`
builds the tiny model locally, the quickstart reads the shipped tiny_math training file through the
OpenR1 loader (the path Colab takes with the Hub dataset) and the comparison uses
`DATASET = "tiny_math"`. The kernel talks to this process over loopback ZMQ only.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "srft-trl-test-python"

# Small enough for 2 CPU cores: a group of 4 (3 rollouts + 1 demonstration), 2 prompts per step.
CI_PARAMETERS = dict(
    TINY=True,
    DATASET="tiny_math",
    MAX_STEPS=8,
    NUM_GENERATIONS=4,
    PER_DEVICE_BATCH=8,
    MAX_COMPLETION_LENGTH=64,  # the longest tiny_math demonstration is 58 tokens + EOS
    EVAL_SIZE=16,
    EVAL_BATCH_SIZE=16,
    LEARNING_RATE=2e-3,
    LORA_R=8,
    USE_VLLM=False,
    OUTPUT_DIR="out",
)
ACCURACY_LINE = re.compile(r"held-out accuracy before: (\d\.\d{3}) / after: (\d\.\d{3})")


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory):
    """A kernelspec whose argv starts with this interpreter (`sys.executable`), in a temporary prefix."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(prefix=str(prefix), kernel_name=KERNEL_NAME, display_name="srft-trl tests")
    kernels = prefix / "share" / "jupyter" / "kernels"
    assert (kernels / KERNEL_NAME / "kernel.json").read_text().count(sys.executable.replace("\\", "\\\\")) == 1
    return kernels


def _with_ci_parameters(nb, **overrides) -> nbformat.NotebookNode:
    """Insert an `injected-parameters` cell with the CI values after the `parameters` cell."""
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    values = {**CI_PARAMETERS, **overrides}
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, id="injected-parameters")
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


def _execute(name: str, workdir: Path, kernel_spec_dir: Path, monkeypatch, **overrides):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # The kernel inherits this environment: no Hub access, and matplotlib's inline backend (ipykernel's
    # default) rather than a backend some other test may have exported.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    monkeypatch.delenv("MPLBACKEND", raising=False)

    nb = _with_ci_parameters(nbformat.read(NOTEBOOKS / name, as_version=4), **overrides)
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)]),
        ip="127.0.0.1",  # loopback only (pytest-socket)
    )
    client = NotebookClient(
        nb, km=km, timeout=600, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return nb


def _text_output(nb) -> str:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output["text"])
            elif "text/plain" in output.get("data", {}):
                texts.append(output["data"]["text/plain"])
    return "".join(texts)


def _inline_images(nb, cell_id: str) -> int:
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def _assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PAIRS = ("srft_lora_quickstart", "srft_vs_grpo")


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(cell.cell_type, cell.source, sorted(cell.metadata.get("tags", []))) for cell in nb.cells]


def test_notebooks_are_paired_with_their_source_and_stripped():
    """`notebooks/NAME.py` (jupytext percent format) is the source people edit; `NAME.ipynb` is its pair
    (`jupytext --sync notebooks/NAME.py`), with the same cells and no outputs."""
    import jupytext

    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(PAIRS)
    for name in PAIRS:
        path = NOTEBOOKS / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        source = jupytext.read(NOTEBOOKS / f"{name}.py")
        assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent", name
        assert _cells(nb) == _cells(source), f"{name}.ipynb differs from {name}.py: run jupytext --sync notebooks/{name}.py"
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{name} has outputs"
        assert "pip" in code[0].source and "google.colab" in code[0].source, "first code cell must install"
        assert "git+" not in code[0].source and "SRFT_TRL_SOURCE" in code[0].source  # not on PyPI nor a known URL
        assert "parameters" in code[1].metadata.get("tags", []), "second code cell must be the parameters"
        assert 'MODEL_ID = "Qwen/' in code[1].source and "TINY = False" in code[1].source


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, kernel_spec_dir, monkeypatch):
    # The OpenR1 code path Colab runs (system prompt, held-out split, demo-length filter), on the shipped
    # tiny_math training file, which has the OpenR1 schema.
    openr1_file = ROOT / "srft_trl" / "resources" / "tiny_math" / "train.jsonl"
    nb = _execute(
        "srft_lora_quickstart.ipynb", tmp_path, kernel_spec_dir, monkeypatch,
        DATASET=str(openr1_file), DATASET_SLICE=400, MERGE_ADAPTER=True,
    )
    out = tmp_path / "out"
    text = _text_output(nb)

    match = ACCURACY_LINE.search(text)
    assert match, f"no before/after accuracy line in the output:\n{text[-3000:]}"
    assert "held-out accuracy before training:" in text
    assert "0 rows dropped: demonstration longer than 64 tokens" in text
    assert "train: 384 rows, held out: 16 rows" in text
    assert 0.0 <= float(match.group(1)) <= 1.0 and 0.0 <= float(match.group(2)) <= 1.0

    # Plots: inline in the notebook and saved next to the adapter.
    assert _inline_images(nb, "plot") == 1
    assert _inline_images(nb, "eval-after") == 1
    _assert_png(out / "training_curves.png")
    _assert_png(out / "heldout_accuracy.png")

    # The LoRA adapter, the merged model and the model card.
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "config.json").is_file() and (out / "merged" / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "SRFT" in card and "2506.19767" in card
    assert "## Held-out accuracy" in card
    # srft-trl's card, not TRL's generic one: the local base model named, no "[None]" base, the settings
    assert "[None]" not in card and "the local model `" in card and "## Training recipe" in card
    assert "heldout_accuracy_after" in card and "lora_r" in card
    assert "not pushed (PUSH_TO_HUB = False)" in text

    # The SRFT metrics were logged every step and plotted (w_RL only exists once a rollout is correct).
    for key in ("reward", "srft/reward_rollout", "srft/entropy_rollout", "srft/w_sft"):
        assert f"{key}: {CI_PARAMETERS['MAX_STEPS']} logged steps" in text, key


@pytest.mark.slow
def test_comparison_notebook_runs(tmp_path, kernel_spec_dir, monkeypatch):
    nb = _execute("srft_vs_grpo.ipynb", tmp_path, kernel_spec_dir, monkeypatch, MAX_STEPS=4)
    out = tmp_path / "out"
    text = _text_output(nb)

    assert "held-out accuracy before training:" in text
    assert "train: 400 rows, held out: 16 rows" in text  # DATASET = "tiny_math": the shipped splits
    for method in ("grpo", "luffy", "srft"):
        assert re.search(rf"{method}: held-out accuracy before: \d\.\d{{3}} / after: \d\.\d{{3}}", text), method
        assert (out / method / "adapter_config.json").is_file(), method
        card = (out / method / "README.md").read_text()
        assert "SRFT" in card and "[None]" not in card and f"`{method}` preset" in card, method
    assert "--- grpo: 4 rollouts + 0 demonstration(s) per group" in text
    assert "--- srft: 3 rollouts + 1 demonstration(s) per group" in text

    assert _inline_images(nb, "plot") == 1
    _assert_png(out / "comparison.png")


def test_the_install_cell_installs_from_a_clone(tmp_path, monkeypatch):
    """The first cell's pip command, with INSTALL on and SRFT_TRL_SOURCE set to this clone, is one pip accepts
    (run with --dry-run --no-deps: resolved and built, nothing installed into the test environment)."""
    import subprocess

    nb = nbformat.read(NOTEBOOKS / "srft_lora_quickstart.ipynb", as_version=4)
    code = next(cell for cell in nb.cells if cell.cell_type == "code").source
    code = code.replace('"google.colab" in sys.modules', "True").replace('SRFT_TRL_SOURCE = ".."',
                                                                          f"SRFT_TRL_SOURCE = {str(ROOT)!r}")
    commands = []
    scope = {"__name__": "install_cell"}
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # as on a fresh Colab runtime
    exec(compile(code, "install-cell", "exec"), scope)
    monkeypatch.undo()
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "install"] and command[-1].startswith(str(ROOT)), command
    report = tmp_path / "report.json"
    result = subprocess.run([*command, "--dry-run", "--no-deps", "--no-build-isolation", "--report", str(report)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    import json

    (item,) = json.loads(report.read_text())["install"]
    assert item["metadata"]["name"] == "srft-trl" and item["requested_extras"] == ["plots"]


@pytest.mark.slow
def test_quickstart_notebook_runs_on_the_shipped_pretrained_base(tmp_path, kernel_spec_dir, monkeypatch):
    """`MODEL_ID = "digit_chains_base"` + `DATASET = "digit_chains"`: the CPU run that shows learning (a few steps here)."""
    nb = _execute("srft_lora_quickstart.ipynb", tmp_path, kernel_spec_dir, monkeypatch, TINY=False,
                  MODEL_ID="digit_chains_base", DATASET="digit_chains", MAX_STEPS=2, PER_DEVICE_BATCH=8,
                  MAX_COMPLETION_LENGTH=80, EVAL_SIZE=24, LORA_R=32)
    text = _text_output(nb)
    assert re.search(r"model: \S+digit_chains/base", text), text[-2000:]
    before = re.search(r"held-out accuracy before training: (\d\.\d{3}) \(24 problems\)", text)
    assert before and float(before.group(1)) > 0.0  # a pre-trained base solves some chains
    assert ACCURACY_LINE.search(text) and (tmp_path / "out" / "adapter_config.json").is_file()
