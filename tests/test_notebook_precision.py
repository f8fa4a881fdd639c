"""The notebooks' precision choice on the GPUs users get: bf16 only where the GPU has it natively,
fp16 autocast on a T4 (which would otherwise count slow bf16 emulation as support)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def precision_lines() -> str:
    """The device/precision lines of the quickstart notebook's setup cell (its source, `notebooks/*.py`)."""
    lines = (ROOT / "notebooks" / "srft_lora_quickstart.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ON_GPU ="))
    stop = next(i for i, line in enumerate(lines) if line.startswith("dtype ="))
    block = [lines[start]] + [line for line in lines[start + 1 : stop + 1] if line.startswith(("bf16", "fp16", "dtype"))]
    return "\n".join(block)


@pytest.mark.parametrize("gpu, major, expected", [
    ("Tesla T4", 7, (False, True, torch.float32)),      # emulated bf16 must not count
    ("NVIDIA A100", 8, (True, False, torch.bfloat16)),
    ("NVIDIA H100", 9, (True, False, torch.bfloat16)),
    (None, None, (False, False, torch.float32)),         # CPU
])
def test_precision_choice_with_a_mocked_gpu(monkeypatch, gpu, major, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(major=major, name=gpu))
    # On a T4 a bf16 tensor can be created (emulation): what `is_bf16_supported()` alone counts as support.
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True, raising=False)
    monkeypatch.setattr(torch.version, "hip", None)
    scope = {"torch": torch, "USE_VLLM": False, "importlib": importlib}
    exec(precision_lines(), scope)
    assert (scope["bf16"], scope["fp16"], scope["dtype"]) == expected


def test_both_notebooks_carry_the_same_choice():
    bf16_line = next(line for line in precision_lines().splitlines() if line.startswith("bf16"))
    assert "including_emulation=False" in bf16_line
    for notebook in ("srft_lora_quickstart.ipynb", "srft_vs_grpo.ipynb"):
        cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
        assert any(bf16_line in "".join(cell["source"]) for cell in cells), notebook
