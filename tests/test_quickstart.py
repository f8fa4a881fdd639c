"""The quickstart (`bash scripts/quickstart.sh` = `srft-trl train --config srft_quickstart`): the shipped
pre-trained base is checked by sha256, the recipe trains it and prints accuracy before/after with
intervals and writes training.png; a finished run is not trained again; Ctrl-C keeps a checkpoint and
says how to continue. Run through the command line, as a user would (a few steps, not the full 300)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srft_trl import cli
from srft_trl.tasks import digit_chains

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCURACY = re.compile(r"^held-out accuracy before: (\d\.\d{3}) / after: (\d\.\d{3}) \((\d+) problems of digit_chains/test\)$",
                      re.M)
INTERVALS = re.compile(r"^95% intervals: before \[\d\.\d{3}, \d\.\d{3}\], after \[\d\.\d{3}, \d\.\d{3}\]; "
                       r"gain [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\], (beyond|within) its 95% interval", re.M)


def _env(tmp_path: Path, **extra) -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_DISABLED="true",
                HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"), TOKENIZERS_PARALLELISM="false",
                PYTHONPATH=str(ROOT), **extra)


def _train(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "srft_trl.cli", "train", "--config", "srft_quickstart", *flags]
    return subprocess.run(command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600)


def test_the_shipped_base_matches_its_sha256_and_a_changed_byte_is_refused(tmp_path, monkeypatch, capsys):
    folder = digit_chains.shipped_base()
    names = {line.split()[1] for line in (folder / "SHA256SUMS").read_text().splitlines()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert (folder / "model.safetensors").stat().st_size < 5_000_000  # a few MB, shipped in the wheel

    copy = tmp_path / "digit_chains"
    shutil.copytree(digit_chains.SHIPPED_DIR, copy)
    weights = bytearray((copy / "base" / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "base" / "model.safetensors").write_bytes(bytes(weights))
    monkeypatch.setattr(digit_chains, "SHIPPED_DIR", copy)
    assert cli.main(["train", "--config", "srft_quickstart", "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "digit_chains_base" in err and "model.safetensors" in err and "sha256" in err
    assert not (tmp_path / "out").exists()


def test_quickstart_recipe_prints_accuracy_with_intervals_and_a_picture_then_a_rerun_changes_nothing(tmp_path):
    out = tmp_path / "outputs" / "qs"
    flags = ["--max_steps", "2", "--save_steps", "1", "--eval_limit", "24", "--output_dir", str(out)]
    first = _train(tmp_path, *flags)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    match = ACCURACY.search(first.stdout)
    assert match and match.group(3) == "24", first.stdout[-2000:]
    assert 0.0 < float(match.group(1)) < 0.6  # the pre-trained base solves some chains: not a random model
    assert INTERVALS.search(first.stdout), first.stdout[-2000:]
    assert f"training curves: {out / 'training.png'}" in first.stdout
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    assert "digit_chains" in card and "2506.19767" in card
    weights = (out / "model.safetensors").read_bytes()
    state = (out / "trainer_state.json").read_text()

    again = _train(tmp_path, *flags)  # the same command: the run is finished, nothing changes
    assert again.returncode == 0, again.stderr[-3000:]
    said = [line for line in again.stdout.splitlines() if line.strip()]
    assert len(said) == 1 and "finished at step 2: nothing to do, nothing changed" in said[0], again.stdout
    assert "--max_steps" in said[0] and "--overwrite_output_dir true" in said[0]
    assert "Traceback" not in again.stderr
    assert (out / "model.safetensors").read_bytes() == weights and (out / "trainer_state.json").read_text() == state
    assert not (out / "checkpoint-3").exists()

    more = _train(tmp_path, *[f if f != "2" else "3" for f in flags])  # --max_steps 3: one more step, no more
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint-2'}" in more.stdout
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
    assert (out / "checkpoint-3").is_dir() and not (out / "checkpoint-4").exists()


def test_ctrl_c_keeps_a_checkpoint_and_prints_the_command_that_continues(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "srft_trl.cli", "train", "--config", "srft_quickstart", "--output_dir", str(out),
               "--max_steps", "40", "--save_steps", "1", "--eval_split", "none", "--disable_tqdm", "true"]
    # SIGINT as a terminal leaves it (a test runner started in the background would pass it on ignored)
    process = subprocess.Popen(command, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not list(out.glob("checkpoint-*/srft_checkpoint_complete")) and time.time() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: SIGINT to the whole foreground group
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout[-2000:] + stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    message = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(message) == 1, stderr[-3000:]
    kept = re.search(r"interrupted: kept (\S+) \(step (\d+)\); continue with: (.+)$", message[0])
    assert kept, message[0]
    assert Path(kept.group(1)).is_dir() and Path(kept.group(1)).name == f"checkpoint-{kept.group(2)}"
    assert kept.group(3).startswith("srft-trl train --config srft_quickstart") and str(out) in kept.group(3)
    assert not (out / "model.safetensors").exists()  # nothing pretends to be the final model


def test_the_package_does_not_import_the_benchmarks():
    """The quickstart's task lives in the package (`srft_trl.tasks.digit_chains`); benchmarks/ depends on it."""
    code = ("import sys; import srft_trl.train, srft_trl.tasks.digit_chains, srft_trl.tasks.tiny_math; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
    testbed = (ROOT / "benchmarks" / "testbed" / "settings.py").read_text()
    assert "from srft_trl.tasks.digit_chains import" in testbed  # the testbed uses the package's problems
