"""vLLM server mode as the docs and recipes print it, checked as far as a CPU allows (vLLM is not
installed here): the `vllm serve` commands carry every flag TRL 1.16's own launcher adds, no data
parallelism, the recipe's model and context length; the `srft-trl train` commands parse, name
shipped files and keep the paper's batch."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from trl.scripts.vllm_serve import ScriptArguments, build_command

from srft_trl import cli
from srft_trl import launch as srft_launch
from srft_trl.shipped import accelerate_config_path, recipe_path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "docs" / "recipes.md", ROOT / "README.md"]
SERVER_RECIPES = ["srft_qwen7b", "grpo_qwen7b", "luffy_qwen7b", "sft_then_rl_stage2_grpo_qwen7b"]


@pytest.fixture(autouse=True)
def _bf16_allowed(monkeypatch):
    # The 7B recipes ask for bf16, which TrainingArguments refuses without a GPU: parse as a GPU machine would.
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda *a, **k: True)


def _join_continued(lines: list[str]) -> list[str]:
    commands, current = [], ""
    for line in lines:
        current += line.rstrip().rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            commands.append(current.strip())
            current = ""
    return [command for command in commands if command]


def doc_commands() -> list[tuple[str, str]]:
    """(source, command) for every command in the docs' bash blocks and in the recipes' comments."""
    found = []
    for path in DOC_FILES:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            found += [(path.name, command) for command in _join_continued(lines)]
    for name in SERVER_RECIPES:
        lines, continued = [], False
        for line in recipe_path(name).read_text().splitlines():
            if line.startswith("#   CUDA_VISIBLE_DEVICES") or (continued and line.startswith("#")):
                lines.append(line[1:].strip())
                continued = line.endswith("\\")
        found += [(f"{name}.yaml", command) for command in _join_continued(lines)]
    return found


def split_env(command: str) -> tuple[dict[str, str], list[str]]:
    tokens = shlex.split(command.rstrip("&").strip())
    env = {}
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    return env, tokens


def flags(tokens: list[str]) -> dict[str, str]:
    return {tokens[i]: tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") else ""
            for i in range(len(tokens)) if tokens[i].startswith("--")}


def serve_commands():
    return [(source, *split_env(c)) for source, c in doc_commands() if "vllm serve" in c or "vllm-serve" in c]


def test_every_recipe_and_doc_prints_a_server_command():
    sources = {source for source, _, _ in serve_commands()}
    assert {"recipes.md"} | {f"{name}.yaml" for name in SERVER_RECIPES} <= sources


def test_no_deprecated_launcher_and_no_data_parallel_anywhere():
    for source, command in doc_commands():
        assert "trl vllm-serve" not in command, (source, command)
        assert "data_parallel_size" not in command and "data-parallel-size" not in command, (source, command)


def test_serve_commands_carry_the_flags_trls_launcher_adds():
    # TRL 1.16's (deprecated) `trl vllm-serve` builds the `vllm serve` command the trainer needs: the docs'
    # commands must carry the same weight-transfer and log-prob settings, in dev mode.
    reference = flags(build_command(ScriptArguments(model="m")))
    for source, env, tokens in serve_commands():
        assert tokens[:2] == ["vllm", "serve"], (source, tokens)
        assert env.get("VLLM_SERVER_DEV_MODE") == "1", source
        ours = flags(tokens)
        assert json.loads(ours["--weight-transfer-config"]) == json.loads(reference["--weight-transfer-config"])
        for flag in ("--logprobs-mode", "--max-logprobs"):
            assert ours[flag] == reference[flag], (source, flag)
        gpus = env["CUDA_VISIBLE_DEVICES"].split(",")
        assert int(ours["--tensor-parallel-size"]) == len(gpus), source  # one tensor-parallel server


@pytest.mark.parametrize("name", SERVER_RECIPES)
def test_recipe_server_command_serves_the_model_the_recipe_trains(name):
    recipe = yaml.safe_load(recipe_path(name).read_text())
    ((_, env, tokens),) = [entry for entry in serve_commands() if entry[0] == f"{name}.yaml"]
    served = tokens[2]
    if "rope_theta" in recipe:  # the RoPE-extended copy, outside output_dir (a non-empty output_dir is refused)
        assert not served.startswith(recipe["output_dir"]) and served != recipe["model_name_or_path"]
        trains = [flags(argv) for source, _, argv in train_commands() if source == f"{name}.yaml"]
        assert trains and all(options["--model_name_or_path"] == served for options in trains)
    else:
        assert served == recipe["model_name_or_path"]
    assert int(flags(tokens)["--max-model-len"]) == recipe["vllm_max_model_length"]


def train_commands():
    for source, command in doc_commands():
        env, tokens = split_env(command)
        if tokens[:2] == ["srft-trl", "train"] and "server" in tokens:
            yield source, env, tokens[2:]


def test_server_mode_train_commands_parse_and_keep_the_batch(tmp_path, monkeypatch):
    from srft_trl.train import parse_args

    monkeypatch.chdir(tmp_path)  # as on the training machine: outputs/ holds only what the commands wrote

    commands = list(train_commands())
    assert {source for source, _, _ in commands} >= {"recipes.md"} | {f"{name}.yaml" for name in SERVER_RECIPES}
    for source, env, argv in commands:
        options = flags(argv)
        assert recipe_path(options["--config"]).is_file() and accelerate_config_path(options["--accelerate_config"])
        launch = srft_launch.resolve_accelerate_config(["--accelerate_config", options["--accelerate_config"]])
        assert Path(launch[1]).parent.name == "accelerate" and "trl" not in Path(launch[1]).parts
        args = parse_args(argv)
        training = args.training
        assert training.vllm_mode == "server" and training.use_vllm, source
        processes = int(options["--num_processes"])
        assert processes == len(env["CUDA_VISIBLE_DEVICES"].split(","))
        per_step = training.per_device_train_batch_size * processes
        # The paper's batch: 128 prompts x 8 per generation, 64 prompts x 8 per optimiser step.
        assert per_step * training.steps_per_generation == 1024, source
        assert per_step * training.gradient_accumulation_steps == 512, source
        assert training.vllm_server_port == 8000


def test_the_printed_python_snippets_call_what_the_package_has():
    import ast
    import importlib
    import inspect

    snippets = [split_env(command)[1][2] for _, command in doc_commands() if command.startswith("python -c ")]
    assert any("extend_context" in code for code in snippets)
    for code in snippets:
        tree = ast.parse(code)
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                imported.update({alias.asname or alias.name: getattr(module, alias.name) for alias in node.names})
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
                parameters = inspect.signature(imported[node.func.id]).parameters
                assert {keyword.arg for keyword in node.keywords} <= set(parameters), code
