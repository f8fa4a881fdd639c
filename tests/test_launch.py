"""`srft-trl train`'s launcher checks (srft_trl/launch.py, srft_trl/cpu_fsdp.py): FSDP2 shards for real on CPU with
the DDP run's losses, the recipe's precision reaches the launcher, and every launch that would not get what it asked
for stops with one line before any process starts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from srft_trl import cli, cpu_fsdp
from srft_trl import launch as srft_launch
from srft_trl.recipes import RecipeError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEW_STEPS = ["--config", "srft_tiny_cpu", "--max_steps", "3", "--logging_steps", "1", "--eval_limit", "4",
             "--eval_max_new_tokens", "16"]


def _train(tmp_path: Path, name: str, *flags: str) -> tuple[str, list[float], Path]:
    out = tmp_path / name
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_DISABLED="true",
               HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"), TOKENIZERS_PARALLELISM="false")
    result = subprocess.run([str(BIN / "srft-trl"), "train", *FEW_STEPS, "--output_dir", str(out), *flags],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return result.stdout, [entry["loss"] for entry in history if "loss" in entry], out


@pytest.mark.slow
def test_fsdp2_shards_for_real_on_cpu_with_the_ddp_losses(tmp_path):
    from safetensors.torch import load_file

    ddp_output, ddp_losses, ddp_dir = _train(tmp_path, "ddp", "--num_processes", "2")
    output, losses, fsdp_dir = _train(tmp_path, "fsdp2", "--accelerate_config", "fsdp2", "--num_processes", "2")
    # The launcher was told the recipe's precision (bf16: false), not fsdp2.yaml's bf16.
    assert "--mixed_precision no" in output
    # Every parameter is a DTensor in both processes, each holding half of the elements.
    for rank in (0, 1):
        assert f"[srft-trl] process {rank}: FSDP, 26 of 26 parameters sharded (DTensor), 45,472 of 90,944" in output
    assert "not sharded" in ddp_output
    assert len(losses) == 3 and losses == pytest.approx(ddp_losses, abs=1e-6)
    ddp_weights, fsdp_weights = load_file(ddp_dir / "model.safetensors"), load_file(fsdp_dir / "model.safetensors")
    assert all((fsdp_weights[name] - ddp_weights[name]).abs().max() < 1e-6 for name in ddp_weights)
    # The held-out evaluation ran on the sharded model after training (every process generating in step).
    assert "held-out accuracy before:" in output and "/ after:" in output


def _fake_accelerator(kind: str, processes: int = 2):
    return SimpleNamespace(distributed_type=SimpleNamespace(name=kind), num_processes=processes,
                           device=SimpleNamespace(type="cpu"))


def test_a_run_that_asked_for_fsdp_and_got_ddp_is_refused(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(cpu_fsdp.DistributedTypeMismatch, match="asks for FSDP, but accelerate set up MULTI_CPU"):
        cpu_fsdp.check_distributed_type(_fake_accelerator("MULTI_CPU"))
    cpu_fsdp.check_distributed_type(_fake_accelerator("FSDP"))  # what was asked: no error
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(cpu_fsdp.DistributedTypeMismatch, match="DEEPSPEED, but accelerate set up NO with 1 process"):
        cpu_fsdp.check_distributed_type(_fake_accelerator("NO", processes=1))
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    cpu_fsdp.check_distributed_type(_fake_accelerator("MULTI_CPU"))  # nothing asked: nothing to check


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture()
def no_launch(monkeypatch):
    """`accelerate launch` is never reached in these tests (it would fail the test if it were)."""
    import accelerate.commands.launch as launch

    monkeypatch.setattr(launch, "launch_command", lambda args: pytest.fail(f"launched: {args}"))


def test_a_named_config_that_does_not_fit_the_machine_says_so(capsys, monkeypatch, no_launch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--accelerate_config", "ddp",
                                   "--output_dir", str(tmp_path / "o")])
    assert "ddp.yaml starts 8 processes" in err and "no GPU and 2 CPU cores" in err and "--num_processes 2" in err
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--num_processes", "3",
                                   "--output_dir", str(tmp_path / "o")])
    assert "--num_processes starts 3 processes" in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--accelerate_config", "fsdp2",
                                   "--output_dir", str(tmp_path / "o")])
    assert "8 processes, one per GPU, but this machine has 4 GPU(s): pass --num_processes 4" in err


def test_missing_optional_dependencies_name_their_install(capsys, monkeypatch, no_launch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("deepspeed", "vllm") else real_find_spec(name, *a))
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--accelerate_config", "zero3",
                                   "--num_processes", "2", "--output_dir", str(tmp_path / "o")])
    assert "DeepSpeed, which is not installed: pip install deepspeed" in err
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--use_vllm", "true",
                                   "--output_dir", str(tmp_path / "o")])
    assert "use_vllm: true needs vLLM" in err and "setup_gpu_paths_env.sh" in err


def test_vllm_server_mode_without_a_gpu_is_refused(capsys, monkeypatch, no_launch, tmp_path):
    import torch

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--use_vllm", "true", "--vllm_mode",
                                   "server", "--output_dir", str(tmp_path / "o")])
    assert "NCCL, which needs GPUs" in err and "vllm_mode: colocate" in err


def test_unknown_accelerate_config_is_one_line(capsys, no_launch, tmp_path):
    err = _one_line_error(capsys, ["train", "--config", "srft_tiny_cpu", "--accelerate_config", "fsdp3",
                                   "--output_dir", str(tmp_path / "o")])
    assert "fsdp3" in err and "This package ships: cpu_2proc, ddp, fsdp2" in err


def test_the_recipes_precision_reaches_the_launcher():
    fp32, bf16 = SimpleNamespace(bf16=False, fp16=False), SimpleNamespace(bf16=True, fp16=False)
    assert srft_launch.with_precision(["--config_file", "x"], fp32) == ["--config_file", "x", "--mixed_precision", "no"]
    assert srft_launch.with_precision([], bf16) == ["--mixed_precision", "bf16"]
    assert srft_launch.with_precision(["--mixed_precision", "bf16"], bf16) == ["--mixed_precision", "bf16"]
    with pytest.raises(RecipeError, match="--mixed_precision bf16 contradicts the recipe's precision"):
        srft_launch.with_precision(["--mixed_precision", "bf16"], fp32)


def test_a_single_machine_run_gets_a_free_port_and_a_multinode_one_keeps_its_own():
    launch = srft_launch.with_free_port(["--num_processes", "2"], {"num_machines": 1})
    port = int(launch[launch.index("--main_process_port") + 1])
    assert 1024 < port < 65536 and port != 29500
    assert srft_launch.with_free_port(["--main_process_port", "1234"], {}) == ["--main_process_port", "1234"]
    assert srft_launch.with_free_port([], {"num_machines": 2, "main_process_port": 29500}) == []


def test_models_load_without_hub_kernels_unless_asked(tiny_model_dir, tmp_path):
    """transformers loads with `use_kernels=True` by default, and a CUDA model's first `train()` then fetches kernels
    from the Hub (a crash offline, found on an H200): the CLI and `SRFTTrainer(model="id")` load without them."""
    from srft_trl.models import model_init_kwargs
    from srft_trl.recipes import parse_args

    args = parse_args(["--config", "srft_tiny_cpu", "--output_dir", str(tmp_path / "o")])
    assert model_init_kwargs(args.training, args.model)["use_kernels"] is False
    args.training.model_init_kwargs = {"use_kernels": True}
    assert model_init_kwargs(args.training, args.model)["use_kernels"] is True  # a recipe can ask for them

    from helpers import arithmetic_dataset, boxed_reward, config
    from srft_trl import SRFTTrainer

    trainer = SRFTTrainer(model=str(tiny_model_dir), reward_funcs=boxed_reward, args=config(tmp_path),
                          train_dataset=arithmetic_dataset())
    assert trainer.args.model_init_kwargs["use_kernels"] is False and trainer.model.use_kernels is False
