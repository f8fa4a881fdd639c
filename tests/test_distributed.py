"""Two CPU processes (DDP over gloo) against one process on the same global batch.

accelerate 1.15 starts a single process for `--cpu --num_processes 2`; a config with
`distributed_type: MULTI_GPU`, `use_cpu: true`, `num_processes: 2` starts two (reference §8).
Each group of 8 (6 rollouts + 2 demonstrations) straddles the two processes.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("distributed_run.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(path: Path) -> Path:
    path.write_text(
        "compute_environment: LOCAL_MACHINE\n"
        "distributed_type: MULTI_GPU\n"
        "use_cpu: true\n"
        "num_processes: 2\n"
        "num_machines: 1\n"
        "machine_rank: 0\n"
        "mixed_precision: 'no'\n"
        "rdzv_backend: static\n"
        "same_network: true\n"
        f"main_process_port: {free_port()}\n"
    )
    return path


def run(command, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def test_two_processes_match_one_process(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir(), double.mkdir()
    one = run([sys.executable, str(SCRIPT), "--out", str(single), "--per_device_train_batch_size", "8"])
    assert one.returncode == 0, one.stderr[-3000:]
    two = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(accelerate_config(tmp_path / "cpu2.yaml")), str(SCRIPT), "--out", str(double),
               "--per_device_train_batch_size", "4"])
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = torch.load(single / "result.pt"), torch.load(double / "result.pt")
    assert (a["processes"], b["processes"]) == (1, 2)
    assert len(a["losses"]) == len(b["losses"]) == 2
    torch.testing.assert_close(torch.tensor(a["losses"]), torch.tensor(b["losses"]), rtol=1e-4, atol=1e-5)
    assert not torch.equal(a["parameters"], b["parameters"] * 0)
    # float32 sums in another order (one process vs an all-reduce of two) times SGD's lr 0.5: a few elements of the
    # tiny model (head size 32 since vLLM's CPU kernels need it) differ by up to 2e-5 after two steps.
    torch.testing.assert_close(a["parameters"], b["parameters"], rtol=1e-4, atol=5e-5)


def test_a_failing_rank_stops_the_whole_run(tmp_path):
    out = tmp_path / "fail"
    out.mkdir()
    result = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                  str(accelerate_config(tmp_path / "cpu2.yaml")), str(SCRIPT), "--out", str(out),
                  "--per_device_train_batch_size", "4", "--fail_on_rank", "1"], timeout=300)
    assert result.returncode != 0
    assert "injected failure on rank 1" in result.stderr + result.stdout
    assert not (out / "result.pt").exists()
