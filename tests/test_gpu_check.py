"""`python -m benchmarks.gpu_check`: what runs without a GPU (arguments, the functional parts' model, MFU
arithmetic, the report, the FSDP2 launch command, and the SRFT part on CPU with the transformers backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig

from benchmarks import gpu_check
from benchmarks.perf import step_cost
from srft_trl.shipped import accelerate_config_path


def test_arguments_default_to_every_part_and_name_a_wrong_one(capsys):
    args = gpu_check.build_parser().parse_args([])
    assert args.parts == list(gpu_check.PARTS) and args.out == gpu_check.DEFAULT_OUT
    assert gpu_check.build_parser().parse_args(["--parts", "lora, perf"]).parts == ["lora", "perf"]
    with pytest.raises(SystemExit):
        gpu_check.build_parser().parse_args(["--parts", "lora,fsdp"])
    assert "unknown part(s) fsdp" in capsys.readouterr().err


def test_without_a_gpu_it_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0] and "--cpu-smoke" in err[0]
    assert not any(tmp_path.iterdir())  # nothing written before the check


def test_check_model_is_a_local_qwen2_with_vllm_friendly_heads(tmp_path):
    path = gpu_check.save_check_model(tmp_path / "model")
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "qwen2" and config.hidden_size // config.num_attention_heads == 64
    assert config.num_hidden_layers == gpu_check.CHECK_MODEL["num_hidden_layers"]
    assert (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()


def test_perf_config_asks_for_long_completions_in_bf16():
    config = gpu_check.perf_config(gpu_check.build_parser().parse_args([]))
    assert config["shape"] == "qwen2.5-0.5b" and config["completion_len"] >= 4096 and config["bf16"]
    assert config["methods"] == ["grpo", "srft"] and config["num_generations"] == 8 and config["num_demos"] == 1


def test_mfu_arithmetic():
    assert gpu_check.mfu(4e12, 2.0, 1e13) == pytest.approx(0.2)
    assert gpu_check.mfu(4e12, 0.0, 1e13) is None and gpu_check.mfu(4e12, 1.0, None) is None


def _fake_step_cost(train_seconds: dict, peak_mb: dict, flops: float, peak_flops: float) -> dict:
    params = dict(shape="qwen2.5-0.5b", num_prompts=2, num_generations=8, num_demos=1, prompt_len=256,
                  completion_len=4096, bf16=True, methods=["grpo", "srft"])
    run = {"params": params, "train_flops": flops, "gen": {},
           "train": {m: [{"train": train_seconds[m], "peak_mb": peak_mb[m]}] * 3 for m in params["methods"]}}
    machine = {"device": "cuda", "matmul_peak_flops": peak_flops, "gpu": "NVIDIA H200"}
    return {"config": params, "machine": machine, "summary": step_cost.aggregate([run], machine)}


def test_perf_summary_reports_step_time_memory_mfu_and_ratios():
    data = _fake_step_cost({"grpo": 2.0, "srft": 2.5}, {"grpo": 1000.0, "srft": 1100.0}, flops=8e14, peak_flops=8e14)
    result = gpu_check.perf_summary(data)
    per = result["details"]["per_method"]
    assert per["grpo"]["mfu"] == pytest.approx(0.5) and per["srft"]["mfu"] == pytest.approx(0.4)
    assert per["srft"]["peak_memory_mb"] == 1100.0
    assert result["details"]["srft_over_grpo"]["train"] == pytest.approx(1.25)
    assert all(result["checks"].values())
    impossible = gpu_check.perf_summary(_fake_step_cost({"grpo": 0.5, "srft": 0.5}, {"grpo": 1.0, "srft": 1.0},
                                                        flops=8e14, peak_flops=8e14))
    assert impossible["checks"]["mfu_in_range"] is False  # MFU 2.0: a timing or FLOP-count bug, reported


def test_one_failing_part_does_not_hide_the_others_and_the_report_is_written(tmp_path):
    def broken():
        raise RuntimeError("vLLM is not installed")

    parts = [gpu_check.run_part("vllm_colocate", broken),
             gpu_check.run_part("lora", lambda: {"checks": {"loss_finite": True, "adapters_moved": False},
                                                 "details": {"loss": float("nan")}}),
             gpu_check.run_part("perf", lambda: {"checks": {"step_times_finite": True}, "details": {}})]
    assert [p["status"] for p in parts] == ["error", "fail", "pass"]
    report = {"command": "python -m benchmarks.gpu_check", "started": "now", "seconds": 1.0,
              "machine": gpu_check.machine(), "parts": parts}
    json_path, md_path = gpu_check.write_report(tmp_path, report)
    saved = json.loads(json_path.read_text())
    assert [p["status"] for p in saved["parts"]] == ["error", "fail", "pass"]
    assert "vLLM is not installed" in saved["parts"][0]["error"] and saved["parts"][1]["details"]["loss"] == "nan"
    markdown = md_path.read_text()
    assert "| `vllm_colocate` | **error**" in markdown and "adapters_moved: FAILED" in markdown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.md"]  # no temp files left


def test_worker_parts_run_in_their_own_processes_fsdp2_through_accelerate(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    args = gpu_check.build_parser().parse_args(["--steps", "2"])
    for part in ("vllm_colocate", "lora"):
        command = gpu_check.worker_command(part, args, tmp_path / "model", tmp_path / "result.json")
        assert command[1:3] == ["-m", "benchmarks.gpu_check"]
        worker = gpu_check.build_parser().parse_args(command[3:])
        assert worker.worker == part and worker.model == tmp_path / "model"
    command = gpu_check.worker_command("fsdp2", args, tmp_path / "model", tmp_path / "result.json")
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    launch = launch_command_parser().parse_args(command[3:])
    assert Path(launch.config_file) == accelerate_config_path("fsdp2") and launch.num_processes == 1
    assert launch.module and launch.training_script == "benchmarks.gpu_check"
    worker = gpu_check.build_parser().parse_args(launch.training_script_args)
    assert worker.worker == "fsdp2" and worker.steps == 2 and worker.out == tmp_path / "result.json"


def test_srft_part_on_cpu_with_the_transformers_backend(tmp_path, capsys):
    assert gpu_check.main(["--cpu-smoke", "--steps", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    (entry,) = report["parts"]
    assert entry["status"] == "pass", entry
    assert entry["details"]["demo_rows_per_batch"] == [2, 2]  # 2 prompts x 1 demonstration, each step
    assert set(gpu_check.REQUIRED_METRICS) <= set(entry["details"]["last_metrics"])
    assert entry["checks"]["demos_spliced"] and entry["checks"]["srft_metrics_finite"]


def test_lora_checks_on_cpu(tmp_path):
    model = gpu_check.save_check_model(tmp_path / "tiny", tiny=True)
    result = gpu_check.run_srft(model, tmp_path / "run", steps=2, use_vllm=False, peft=True)
    assert result["checks"]["only_adapters_trainable"] and result["checks"]["adapters_moved"]
    assert result["checks"]["base_weights_untouched"] and all(result["checks"].values()), result["checks"]
