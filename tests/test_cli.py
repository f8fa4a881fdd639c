"""The `srft-trl` command: help, the tiny CPU recipe end to end (one process through `srft-trl
train`, two processes through `accelerate launch -m srft_trl.train`), and argument handling."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from srft_trl import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "srft_tiny_cpu.yaml"
BEFORE_AFTER = re.compile(r"held-out accuracy before: (\d\.\d+) / after: (\d\.\d+)")
BIN = Path(sys.executable).parent


def _run(command: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_DISABLED="true",
               HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"), TOKENIZERS_PARALLELISM="false")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _small_run(tiny_model_dir: Path, out: Path, eval_limit: int) -> list[str]:
    """Flags that shrink the tiny recipe to a few steps (and keep its outputs in the test's directory)."""
    return ["--config", str(TINY), "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out),
            "--max_steps", "2", "--eval_limit", str(eval_limit), "--eval_max_new_tokens", "16",
            "--logging_steps", "1"]


def test_help_lists_the_commands():
    result = subprocess.run([str(BIN / "srft-trl"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("train", "eval", "analyze"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), result.stdout
    assert not re.search(r"^\s+study\s", result.stdout, re.M), result.stdout  # benchmarks are not commands


def test_tiny_recipe_end_to_end_in_one_process(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    result = _run([str(BIN / "srft-trl"), "train", *_small_run(tiny_model_dir, out, eval_limit=8),
                   "--max_steps", "3"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = BEFORE_AFTER.search(result.stdout)
    assert match, result.stdout[-3000:]
    assert 0.0 <= float(match.group(1)) <= 1.0 and 0.0 <= float(match.group(2)) <= 1.0
    assert "process 0 of 1" in result.stdout
    assert (out / "model.safetensors").is_file() and (out / "recipe.yaml").read_text() == TINY.read_text()
    card = (out / "README.md").read_text()
    assert "SRFT" in card and "2506.19767" in card and "heldout_accuracy_after" in card
    assert "--max_steps 3" in card
    assert '"global_step": 3' in (out / "trainer_state.json").read_text()


def test_tiny_recipe_in_two_cpu_processes(tiny_model_dir, tmp_path):
    out = tmp_path / "run2"
    command = [str(BIN / "accelerate"), "launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_2proc.yaml"),
               "-m", "srft_trl.train", *_small_run(tiny_model_dir, out, eval_limit=4)]
    result = _run(command, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "process 0 of 2" in output and "process 1 of 2" in output
    assert BEFORE_AFTER.search(result.stdout), output[-3000:]
    assert (out / "model.safetensors").is_file()
    assert '"global_step": 2' in (out / "trainer_state.json").read_text()


def test_train_hands_launcher_options_to_accelerate(monkeypatch, tmp_path):
    import accelerate.commands.launch as launch

    captured = {}
    monkeypatch.setattr(launch, "launch_command", lambda args: captured.setdefault("args", args))
    status = cli.main(["train", "--config", str(TINY), "--accelerate_config", "cpu_2proc", "--max_steps", "2",
                       "--output_dir", str(tmp_path)])
    assert status == 0
    args = captured["args"]
    assert Path(args.config_file).resolve() == (ROOT / "recipes" / "accelerate" / "cpu_2proc.yaml").resolve()
    assert args.module and args.training_script == "srft_trl.train"
    assert args.training_script_args == ["--config", str(TINY), "--max_steps", "2", "--output_dir", str(tmp_path)]


def test_accelerate_config_names(tmp_path):
    assert cli.resolve_accelerate_config(["--accelerate_config", "fsdp2", "--num_processes", "4"]) == [
        "--config_file", str(ROOT / "srft_trl" / "resources" / "recipes" / "accelerate" / "fsdp2.yaml"),
        "--num_processes", "4"]
    path = tmp_path / "mine.yaml"
    path.write_text("distributed_type: 'NO'\n")
    assert cli.resolve_accelerate_config(["--accelerate_config", str(path)]) == ["--config_file", str(path)]
    with pytest.raises(ValueError, match="nonexistent"):
        cli.resolve_accelerate_config(["--accelerate_config", "nonexistent"])


def test_train_rejects_a_typo_naming_it(tmp_path, capsys):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(TINY.read_text() + "\nnum_generation: 4\n")
    assert cli.main(["train", "--config", str(recipe)]) == 2
    assert "num_generation" in capsys.readouterr().err


def test_other_commands_dispatch(monkeypatch, capsys):
    import types

    import srft_trl.eval.cli

    seen = []
    monkeypatch.setattr(srft_trl.eval.cli, "main", lambda argv: seen.append(("eval", argv)) or 0)
    assert cli.main(["eval", "--list-benchmarks"]) == 0
    analysis = types.SimpleNamespace(main=lambda argv: seen.append(("analyze", argv)) or 0)
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: analysis)
    assert cli.main(["analyze", "runs/x"]) == 0
    assert seen == [("eval", ["--list-benchmarks"]), ("analyze", ["runs/x"])]


def test_missing_optional_commands_say_so(monkeypatch, capsys):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["analyze"]) == 2
    assert "not part of this installation" in capsys.readouterr().err


def test_study_is_not_a_command(capsys):
    # The toy study lives outside the package (`python -m benchmarks.toy_study` in a checkout).
    with pytest.raises(SystemExit) as error:
        cli.main(["study"])
    assert error.value.code == 2
    assert "unknown command 'study'" in capsys.readouterr().err


def test_unknown_command_fails():
    with pytest.raises(SystemExit) as error:
        cli.main(["trian"])
    assert error.value.code == 2
