"""What `srft-trl train` hands to `accelerate launch`, checked before any process starts.

* `--accelerate_config NAME|PATH` becomes `--config_file PATH` (this package's configs, else TRL's names).
* No GPU and `--num_processes N > 1` without a config: the shipped `cpu_2proc` config (real processes over gloo).
* The process count must fit the machine: one process per GPU, or at most one per CPU core without a GPU.
* The recipe's precision reaches the launcher (`--mixed_precision no|bf16|fp16`): otherwise a config's
  `mixed_precision: bf16` reaches every process through the environment and turns on bf16 autocast in a run whose
  recipe says `bf16: false`.
* A single-machine run gets a free rendezvous port, so it does not collide with another job on 29500.
* An optional dependency the run needs (DeepSpeed for a DeepSpeed config, vLLM for `use_vllm`) is named with its
  install command.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import Any, Sequence

from .recipes import RecipeError
from .shipped import accelerate_config_path, shipped_accelerate_configs

VLLM_INSTALL = ('pip install -e ".[vllm]" on a GPU machine; on CPU, vLLM\'s CPU build: '
                ". scripts/setup_gpu_paths_env.sh (README, \"vLLM on CPU\")")


def flag(launch_args: Sequence[str], *names: str) -> str | None:
    """The value of the first of `names` in `launch_args` (`--flag value` or `--flag=value`), else None."""
    for index, token in enumerate(launch_args):
        for name in names:
            if token == name and index + 1 < len(launch_args):
                return launch_args[index + 1]
            if token.startswith(name + "="):
                return token.split("=", 1)[1]
    return None


def resolve_accelerate_config(launch_args: list[str]) -> list[str]:
    """Turn `--accelerate_config NAME|PATH` into `--config_file PATH` for `accelerate launch`.

    A path, or a name shipped with this package (`srft_trl.shipped.accelerate_config_path`: `fsdp2`
    is always ours), else a name TRL ships (`multi_gpu`, `zero2`, ...: TRL's own resolver).
    """
    if "--accelerate_config" in launch_args:
        index = launch_args.index("--accelerate_config")
        value = launch_args[index + 1] if index + 1 < len(launch_args) else None
        try:
            ours = accelerate_config_path(value) if value is not None else None
        except ValueError:
            ours = None  # not a file nor one of ours: TRL's names (multi_gpu, zero2, ...) below
        if ours is not None:
            return ["--config_file", str(ours)] + launch_args[:index] + launch_args[index + 2 :]
    from trl.cli.accelerate_config import resolve_accelerate_config_argument

    try:
        return resolve_accelerate_config_argument(launch_args)
    except ValueError as error:
        raise RecipeError(f"accelerate_config: {error} This package ships: "
                          f"{', '.join(shipped_accelerate_configs())}.") from None


def read_config(launch_args: Sequence[str]) -> dict[str, Any]:
    """The accelerate config file named by `--config_file` (empty without one)."""
    import yaml

    path = flag(launch_args, "--config_file", "--config-file")
    if path is None:
        return {}
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"accelerate config {path}: {error}") from None


def num_processes(launch_args: Sequence[str], config: dict[str, Any]) -> int:
    value = flag(launch_args, "--num_processes", "--num-processes")
    return int(value if value is not None else config.get("num_processes", 1))


def cpu_processes(launch_args: list[str], has_gpu: bool) -> list[str]:
    """On a machine without a GPU, `--num_processes N` (N > 1) and no config file: start N real
    processes over gloo with the shipped `cpu_2proc` config (`distributed_type: MULTI_GPU`,
    `use_cpu: true`). accelerate's own CPU path (`--cpu`, `MULTI_CPU`) would quietly start one."""
    if "--config_file" in launch_args or num_processes(launch_args, {}) <= 1 or has_gpu:
        return launch_args
    print(f"srft-trl: no GPU: {num_processes(launch_args, {})} processes on the CPU over gloo (accelerate config "
          "cpu_2proc)", flush=True)
    return ["--config_file", str(accelerate_config_path("cpu_2proc")), *launch_args]


def check_processes_fit(launch_args: Sequence[str], config: dict[str, Any], gpus: int, cores: int) -> None:
    """A single-machine run starts one process per GPU, or at most one per CPU core on a machine without a GPU."""
    if int(flag(launch_args, "--num_machines", "--num-machines") or config.get("num_machines", 1)) > 1:
        return  # processes over several machines: this one cannot judge
    count = num_processes(launch_args, config)
    source = "--num_processes" if flag(launch_args, "--num_processes", "--num-processes") else (
        f"the accelerate config {flag(launch_args, '--config_file')}")
    if gpus and count > gpus:
        raise RecipeError(f"{source} starts {count} processes, one per GPU, but this machine has {gpus} GPU(s): "
                          f"pass --num_processes {gpus}.")
    if not gpus and count > cores:
        raise RecipeError(f"{source} starts {count} processes, but this machine has no GPU and {cores} CPU cores: "
                          f"pass --num_processes {max(1, min(2, cores))} (one process per core at most).")


def recipe_precision(training) -> str:
    return "bf16" if getattr(training, "bf16", False) else "fp16" if getattr(training, "fp16", False) else "no"


def with_precision(launch_args: list[str], training) -> list[str]:
    """Pass the recipe's precision to the launcher; a launcher precision that contradicts the recipe is refused."""
    wanted = recipe_precision(training)
    given = flag(launch_args, "--mixed_precision", "--mixed-precision")
    if given is None:
        return [*launch_args, "--mixed_precision", wanted]
    if given != wanted:
        raise RecipeError(f"--mixed_precision {given} contradicts the recipe's precision ({wanted}: bf16="
                          f"{getattr(training, 'bf16', False)}, fp16={getattr(training, 'fp16', False)}); "
                          "set bf16/fp16 in the recipe instead.")
    return launch_args


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_free_port(launch_args: list[str], config: dict[str, Any]) -> list[str]:
    """A single-machine run without an explicit port gets a free one (torch's default 29500 collides with any other
    job on the machine); a multi-machine run keeps its configured `main_process_port`."""
    machines = int(flag(launch_args, "--num_machines", "--num-machines") or config.get("num_machines", 1))
    if machines > 1 or flag(launch_args, "--main_process_port", "--main-process-port") or config.get(
            "main_process_port"):
        return launch_args
    return [*launch_args, "--main_process_port", str(free_port())]


def check_optional_dependencies(args, config: dict[str, Any] | None = None) -> None:
    """One line naming the install command when the run needs DeepSpeed or vLLM and it is missing, or naming what
    cannot run on this machine (vLLM server mode without a GPU)."""
    import torch

    config = config or {}
    if config.get("distributed_type") == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise RecipeError("the accelerate config uses DeepSpeed, which is not installed: pip install deepspeed")
    if not getattr(args.training, "use_vllm", False):
        return
    if importlib.util.find_spec("vllm") is None:
        raise RecipeError(f"use_vllm: true needs vLLM, which is not installed: {VLLM_INSTALL}")
    if args.training.vllm_mode == "server" and not torch.cuda.is_available():
        raise RecipeError("vllm_mode: server sends the weights to the vLLM server over NCCL, which needs GPUs; on a "
                          "machine without a GPU use vllm_mode: colocate.")


def launch_arguments(args) -> list[str]:
    """The complete `accelerate launch` options for a parsed recipe (`srft_trl.recipes.ParsedArgs`)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    launch = cpu_processes(resolve_accelerate_config(args.launch), has_gpu=bool(gpus))
    config = read_config(launch)
    check_optional_dependencies(args, config)
    check_processes_fit(launch, config, gpus=gpus, cores=os.cpu_count() or 1)
    launch = with_precision(launch, args.training)
    return with_free_port(launch, config)
