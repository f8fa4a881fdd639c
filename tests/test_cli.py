"""The `srft-trl` command: help, the tiny CPU recipe end to end (one process through `srft-trl
train`, two processes through `accelerate launch -m srft_trl.train`), and argument handling."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from srft_trl import cli
from srft_trl import launch as srft_launch
from srft_trl.checkpoints import COMPLETE_MARKER

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "srft_tiny_cpu.yaml"
BEFORE_AFTER = re.compile(r"held-out accuracy before: (\d\.\d+) / after: (\d\.\d+)")
BIN = Path(sys.executable).parent
OVERRIDDEN = {"model_name_or_path", "output_dir", "max_steps", "eval_limit", "eval_max_new_tokens", "logging_steps"}


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
    assert (out / "model.safetensors").is_file()
    # recipe.yaml holds the effective settings: the recipe with the command line applied, replayable as is
    saved, recipe = yaml.safe_load((out / "recipe.yaml").read_text()), yaml.safe_load(TINY.read_text())
    assert saved["max_steps"] == 3 and saved["output_dir"] == str(out) and saved["eval_limit"] == 8
    unchanged = set(recipe) - OVERRIDDEN - {"report_to"}  # report_to: none is parsed as []
    assert {k: saved[k] for k in unchanged} == {k: recipe[k] for k in unchanged}
    card = (out / "README.md").read_text()
    assert "SRFT" in card and "2506.19767" in card and "heldout_accuracy_after" in card
    assert "--max_steps 3" in card and "| max_steps | 3 |" in card  # the command line and the effective settings
    assert f"the local model `{tiny_model_dir}`" in card and "tiny_math" in card and "`srft` preset" in card
    for wrong in ("[None](https://huggingface.co/None)", 'model="None"', "licence: license"):
        assert wrong not in card
    assert re.search(r"## Training procedure\n\n\S", card)  # not empty
    assert '"global_step": 3' in (out / "trainer_state.json").read_text()
    from srft_trl.recipes import parse_args

    assert parse_args(["--config", str(out / "recipe.yaml")]).effective == saved  # replayable as is


def test_tiny_recipe_in_two_cpu_processes(tiny_model_dir, tmp_path):
    out = tmp_path / "run2"
    command = [str(BIN / "accelerate"), "launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_2proc.yaml"),
               "--main_process_port", str(srft_launch.free_port()),  # not 29500: other jobs may hold it
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
    assert srft_launch.resolve_accelerate_config(["--accelerate_config", "fsdp2", "--num_processes", "4"]) == [
        "--config_file", str(ROOT / "srft_trl" / "resources" / "recipes" / "accelerate" / "fsdp2.yaml"),
        "--num_processes", "4"]
    path = tmp_path / "mine.yaml"
    path.write_text("distributed_type: 'NO'\n")
    assert srft_launch.resolve_accelerate_config(["--accelerate_config", str(path)]) == ["--config_file", str(path)]
    with pytest.raises(ValueError, match="nonexistent"):
        srft_launch.resolve_accelerate_config(["--accelerate_config", "nonexistent"])


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
    # The testbed lives outside the package (`python -m benchmarks.testbed` in a checkout).
    with pytest.raises(SystemExit) as error:
        cli.main(["study"])
    assert error.value.code == 2
    assert "unknown command 'study'" in capsys.readouterr().err


def test_unknown_command_fails():
    with pytest.raises(SystemExit) as error:
        cli.main(["trian"])
    assert error.value.code == 2


# --------------------------------------------------------------------------------------------
# What a new user meets: safe defaults, errors they can act on (issue 15)
# --------------------------------------------------------------------------------------------


def _user_error(capsys, argv: list[str]) -> str:
    """Run `srft-trl ARGV`, expect exit status 2 and one or two lines on stderr; return them."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    message = err[err.index("srft-trl"):].strip()  # after any progress bar of `datasets`
    assert message.startswith(f"srft-trl {argv[0]}: error: ") and len(message.splitlines()) <= 2, err
    return message


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert re.fullmatch(r"srft-trl \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_train_without_a_recipe_asks_for_one_and_builds_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    err = _user_error(capsys, ["train", "--output_dir", str(tmp_path / "out")])
    assert "--config" in err and "--model_name_or_path" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_train_help_is_short_and_starts_with_config():
    result = subprocess.run([str(BIN / "srft-trl"), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 80 and "--config" in lines[0] and "--help-all" in result.stdout
    # no recipe's values are presented as defaults (the tiny recipe's lr 3e-3, sft_coef 100)
    assert "0.003" not in result.stdout and "3e-3" not in result.stdout.lower()
    full = subprocess.run([str(BIN / "srft-trl"), "train", "--help-all"], capture_output=True, text=True, timeout=120)
    assert full.returncode == 0 and "--num_demos" in full.stdout and len(full.stdout.splitlines()) > 500


@pytest.mark.parametrize("recipe_is_tiny", [True, False])
def test_mistyped_model_path_fails_naming_it(capsys, tmp_path, recipe_is_tiny):
    typo = tmp_path / "my-qwen-typo"
    recipe = ["--config", str(TINY)] if recipe_is_tiny else []
    err = _user_error(capsys, ["train", *recipe, "--model_name_or_path", str(typo), "--output_dir", str(tmp_path / "o")])
    assert str(typo) in err and "Repo id" not in err
    assert not typo.exists()  # no tiny model built at a path the user typed
    err = _user_error(capsys, ["eval", "--model", str(typo)])
    assert str(typo) in err and "Repo id" not in err


def _recipe(tmp_path, **changes) -> str:
    recipe = yaml.safe_load(TINY.read_text())
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_a_bad_value_in_a_recipe_names_the_recipe_and_key(capsys, tmp_path):
    path = _recipe(tmp_path, num_demos="two")
    err = _user_error(capsys, ["train", "--config", path])
    assert path in err and "num_demos" in err and "'two'" in err
    path = _recipe(tmp_path, num_demos=4, num_generations=4)
    err = _user_error(capsys, ["train", "--config", path])
    assert path in err and "num_demos" in err and "num_generations" in err
    err = _user_error(capsys, ["train", "--config", str(TINY), "--num_demos", "two"])
    assert "--num_demos" in err and "'two'" in err


def _data_error(capsys, tiny_model_dir, tmp_path, rows, *flags) -> str:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return _user_error(capsys, ["train", "--config", str(TINY), "--model_name_or_path", str(tiny_model_dir),
                                "--output_dir", str(tmp_path / "out"), "--dataset_name", str(data),
                                "--eval_split", "none", *flags])


def test_data_mistakes_name_the_file_row_and_column(capsys, tiny_model_dir, tmp_path):
    data = str(tmp_path / "data.jsonl")
    columns = ["--dataset_format", "columns"]
    err = _data_error(capsys, tiny_model_dir, tmp_path, [])
    assert data in err and "empty" in err
    row = {"prompt": "1+1?", "demo": "<think>1+1=2</think> \\boxed{2}", "solution": "2"}
    err = _data_error(capsys, tiny_model_dir, tmp_path, [row])  # the default format is OpenR1's
    assert data in err and "dataset_format: columns" in err
    err = _data_error(capsys, tiny_model_dir, tmp_path, [{"prompt": "1+1?", "solution": "2"}], *columns)
    assert data in err and "'demo'" in err
    err = _data_error(capsys, tiny_model_dir, tmp_path, [row, {**row, "demo": 7}], *columns)
    assert data in err and "row 2" in err and "'demo'" in err  # rows counted from 1, as an editor counts lines


def test_num_processes_on_a_cpu_machine_starts_that_many_processes(monkeypatch, tmp_path):
    import accelerate.commands.launch as launch
    import torch

    captured = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launch, "launch_command", lambda args: captured.setdefault("args", args))
    assert cli.main(["train", "--config", str(TINY), "--num_processes", "2", "--output_dir", str(tmp_path)]) == 0
    args = captured["args"]
    assert Path(args.config_file).name == "cpu_2proc.yaml" and args.num_processes == 2
    config = yaml.safe_load(Path(args.config_file).read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["use_cpu"] is True  # real processes over gloo


def test_rerun_resumes_the_same_run_and_refuses_another(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    command = ["train", "--config", str(TINY), "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out),
               "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1", "--eval_split", "none"]
    assert cli.main(command) == 0
    capsys.readouterr()
    for step in (1, 2):  # every checkpoint is complete and carries the model card
        assert (out / f"checkpoint-{step}" / COMPLETE_MARKER).is_file()
        assert "## Training recipe" in (out / f"checkpoint-{step}" / "README.md").read_text()
    weights = (out / "model.safetensors").read_bytes()

    err = _user_error(capsys, [*command, "--learning_rate", "1e-3"])
    assert str(out) in err and "learning_rate: 0.003 -> 0.001" in err and "--overwrite_output_dir" in err
    assert (out / "model.safetensors").read_bytes() == weights  # nothing overwritten

    # As after a crash between the last checkpoint and the end of the run: finished from checkpoint-2, no 3rd step.
    (out / "train_results.json").unlink()
    assert cli.main(command) == 0
    assert f"finishing the run from {out / 'checkpoint-2'}" in capsys.readouterr().out
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert not (out / "checkpoint-3").exists() and (out / "train_results.json").is_file()
    assert cli.main(command) == 0 and "nothing to do" in capsys.readouterr().out  # and now it is finished

    # As after Ctrl-C during step 2: the same command resumes from the last complete checkpoint.
    shutil.rmtree(out / "checkpoint-2")
    (out / "train_results.json").unlink()
    assert cli.main(command) == 0
    assert f"resuming from {out / 'checkpoint-1'}" in capsys.readouterr().out
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_an_output_dir_of_unknown_files_is_not_trained_into(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    err = _user_error(capsys, ["train", "--config", str(TINY), "--output_dir", str(out)])
    assert str(out) in err and "--overwrite_output_dir" in err
    assert (out / "notes.txt").read_text() == "mine"


def test_eval_split_none_is_accepted():
    from srft_trl.recipes import parse_args

    assert parse_args(["--config", str(TINY), "--eval_split", "none"]).script.eval_split is None
    assert parse_args(["--config", str(TINY)]).script.eval_split == "test"


def test_help_piped_into_a_pager_that_closes_early_ends_quietly():
    """`srft-trl train --help-all | head`: no BrokenPipeError traceback when the reader stops early."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "srft_trl.cli", "train", "--help-all"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(20)
    process.stdout.close()
    errors = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in errors and "BrokenPipeError" not in errors


# Every entry point: the console command's subcommands and the `python -m` modules.
PIPED_COMMANDS = [
    (["srft_trl.train", "--help"], "usage: srft-trl train --config RECIPE"),
    (["srft_trl.cli", "train", "--help"], "usage: srft-trl train --config RECIPE"),
    (["srft_trl.cli", "eval", "--list-benchmarks"], "aime24 "),
    (["srft_trl.eval", "--list-benchmarks"], "aime24 "),
    (["srft_trl.analysis", "--help"], "usage: srft-trl analyze"),
]


@pytest.mark.parametrize("command,first_line", PIPED_COMMANDS, ids=[" ".join(c) for c, _ in PIPED_COMMANDS])
def test_output_piped_into_head_prints_its_first_line_without_a_traceback(command, first_line):
    """`python -m srft_trl.train --help | head -1` as typed in a shell; then with the reader gone before the first
    write, so the closed pipe is met every time, not only when head wins the race."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    shell = f"{shlex.quote(sys.executable)} -m {shlex.join(command)} | head -1"
    piped = subprocess.run(["bash", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert piped.stdout.startswith(first_line) and piped.stdout.count("\n") == 1, piped.stdout
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        closed = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    for errors in (piped.stderr, closed.stderr):
        assert not any(word in errors for word in ("Traceback", "BrokenPipeError", "Exception ignored")), errors
    assert closed.returncode in (0, 1)  # not killed by SIGPIPE (-13): Python's default is kept for sockets


# --------------------------------------------------------------------------------------------
# Mistakes that used to end in a traceback: one line naming the thing, exit status 2, through the CLI
# --------------------------------------------------------------------------------------------


def _cli_error(tmp_path: Path, *args: str, cwd: Path | None = None, **env) -> str:
    """`srft-trl train ARGS` in a subprocess: exit status 2, exactly one line on stderr, no traceback."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT),
                       TOKENIZERS_PARALLELISM="false")
    environment.update(env)
    result = subprocess.run([sys.executable, "-m", "srft_trl.cli", "train", *args], cwd=cwd or tmp_path,
                            env=environment, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert lines[0].startswith("srft-trl train: error: ") and result.stdout == "", result.stderr
    return lines[0]


def test_a_misspelt_relative_model_path_is_named_as_missing(tmp_path):
    out = str(tmp_path / "out")
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--model_name_or_path", "models/nope", "--tiny_model",
                     "false", "--output_dir", out)
    assert "model_name_or_path models/nope: no such local folder" in err
    (tmp_path / "models").mkdir()  # next to a models/ folder it is plainly a path: named before anything loads
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--model_name_or_path", "models/nope", "--tiny_model",
                     "false", "--output_dir", out)
    assert "model_name_or_path models/nope: no such file or folder" in err


def test_recipe_file_mistakes_are_named(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer: srft\nmax_steps: [3\n  learning_rate: 2\n")
    err = _cli_error(tmp_path, "--config", str(broken))
    assert f"recipe {broken}: line 3, column 16: YAML syntax error" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    err = _cli_error(tmp_path, "--config", str(empty))
    assert f"recipe {empty} is empty" in err
    shaped = Path(_recipe(tmp_path, num_generations=[4]))
    err = _cli_error(tmp_path, "--config", str(shaped))
    assert f"{shaped}: num_generations: expected a single value, got a list ([4])" in err


def test_unknown_reward_function_is_named_before_the_model_loads(tmp_path):
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--reward_funcs", "acuracy", "--output_dir",
                     str(tmp_path / "o"))
    assert "--reward_funcs" in err and "'acuracy'" in err and "math_accuracy" in err
    recipe = _recipe(tmp_path, reward_funcs=["mymodule.nope"])
    err = _cli_error(tmp_path, "--config", recipe)
    assert f"{recipe}: reward_funcs" in err and "mymodule" in err
    assert not (tmp_path / "o").exists()


def test_command_line_values_are_blamed_on_the_command_line(tmp_path):
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--per_device_train_batch_size", "6")
    assert "command line (--per_device_train_batch_size 6)" in err and "srft_tiny_cpu.yaml" not in err
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--num_generations", "1")
    assert "command line (--num_generations 1)" in err and "generations" in err


def test_push_to_hub_without_a_reachable_hub_fails_before_any_work(tmp_path):
    out = tmp_path / "o"
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--push_to_hub", "true", "--output_dir", str(out))
    assert "push_to_hub" in err and "HF_HUB_OFFLINE=1" in err and f"hf upload YOUR_NAME/o {out}" in err
    err = _cli_error(tmp_path, "--config", "srft_tiny_cpu", "--push_to_hub", "true", "--hub_model_id", "me/run",
                     "--output_dir", str(out), HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="hf_x")
    assert "the Hub cannot be reached" in err and "hf upload me/run" in err
    assert not out.exists()


def test_train_help_imports_no_torch():
    code = ("import sys; from srft_trl import cli; cli.main(['train', '--help']); "
            "print(sorted(m for m in ('torch', 'trl', 'transformers', 'peft', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0 and "--config RECIPE" in result.stdout, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-500:]


def test_a_push_that_fails_after_training_keeps_the_saved_run_and_says_how_to_push(capsys, tiny_model_dir, tmp_path,
                                                                                 monkeypatch):
    """The Hub answers before training but not at the end: the trained model stays saved, one line says how to push."""
    from transformers import Trainer

    from srft_trl import train as train_module

    def unreachable(*args, **kwargs):
        raise ConnectionError("the Hub went away\nsecond line of a long error")

    monkeypatch.setattr(train_module, "check_hub", lambda training: None)  # reachable at the start
    monkeypatch.setattr(Trainer, "init_hf_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(Trainer, "_push_from_checkpoint", lambda self, *a, **k: None)
    monkeypatch.setattr(Trainer, "push_to_hub", unreachable)
    out = tmp_path / "run"
    err = _user_error(capsys, ["train", "--config", str(TINY), "--model_name_or_path", str(tiny_model_dir),
                               "--output_dir", str(out), "--max_steps", "1", "--eval_split", "none",
                               "--push_to_hub", "true", "--hub_model_id", "me/run"])
    assert "push_to_hub failed (ConnectionError: the Hub went away)" in err and f"saved in {out}" in err
    assert f'hf upload me/run {out} --exclude "checkpoint-*/*"' in err
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
