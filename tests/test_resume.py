"""Interruption and resume: a run killed mid-way and resumed ends with the uninterrupted run's weights."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srft_trl.checkpoints import COMPLETE_MARKER, last_complete_checkpoint

SCRIPT = Path(__file__).with_name("resume_run.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run(out, *extra, timeout=300):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *extra], capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out / "final.pt")


def checkpoint_steps(out):
    return sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / COMPLETE_MARKER).exists())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run(tmp_path_factory.mktemp("reference"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_the_same_weights(tmp_path, uninterrupted, sig):
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--step_delay", "0.5"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    while time.time() < deadline and len(checkpoint_steps(tmp_path / "out")) < 2:
        time.sleep(0.2)
    process.send_signal(sig)
    process.wait(timeout=60)
    done = checkpoint_steps(tmp_path / "out")
    assert 2 <= len(done) < 5, f"the run was not interrupted mid-way: {done}"
    resumed = run(tmp_path, "--resume")
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


def test_half_written_checkpoint_is_never_resumed_from(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / COMPLETE_MARKER).write_text("3\n")
    (out / "checkpoint-7").mkdir()  # killed during its save: no marker
    (out / "checkpoint-7" / "model.safetensors").write_bytes(b"\x00" * 10)
    assert last_complete_checkpoint(out) == str(out / "checkpoint-3")
    assert last_complete_checkpoint(tmp_path / "missing") is None
