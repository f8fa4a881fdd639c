"""The quick step-cost benchmark runs and writes its report (no timing is asserted: CI machines vary)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_step_cost_benchmark_writes_report(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # `benchmarks` is a top-level package of the repository, not installed
    from benchmarks.perf.__main__ import main

    main(["--quick", "--out", str(tmp_path)])

    data = json.loads((tmp_path / "step_cost_quick.json").read_text())
    assert set(data["summary"]["per_method"]) == {"grpo", "srft"}
    run = data["runs"][0]
    for method in ("grpo", "srft"):
        assert run["train"][method], method
        assert run["gen"][method], method
        step = run["train"][method][0]
        assert {"forward", "backward", "optimizer", "peak_mb"} <= set(step)
    # SRFT generates num_generations - num_demos rows per prompt, GRPO all of them
    config = data["config"]
    assert run["gen"]["grpo"][0]["generated_rows"] == config["num_prompts"] * config["num_generations"]
    assert run["gen"]["srft"][0]["generated_rows"] == config["num_prompts"] * (
        config["num_generations"] - config["num_demos"]
    )
    report = (tmp_path / "report.md").read_text()
    assert "GRPO" in report and "SRFT" in report
    assert (tmp_path / "step_cost_quick.md").is_file()


def test_vllm_colocate_summary_and_report_from_recorded_steps():
    """`benchmarks.perf.vllm_colocate`'s arithmetic (the runs themselves need vLLM: tests/test_gpu_paths.py's
    environment; the committed figure is in benchmarks/results/perf/vllm_colocate.md)."""
    from benchmarks.perf import vllm_colocate

    def run(method, wall, generate):
        steps = [{"wall": 9.0, "cpu": 9.0, "generate": 9.0, "sync": 9.0}]  # a warm-up step, left out
        steps += [{"wall": wall, "cpu": wall / 2, "generate": generate, "sync": 0.01}] * 3
        return {"method": method, "steps": steps, "rows": 8, "rollout_rows": 6 if method == "srft" else 8}

    summary = vllm_colocate.summarise([run("grpo", 0.4, 0.3), run("srft", 0.3, 0.15)], warmup=1)
    assert summary["grpo"]["wall_s"] == 0.4 and summary["grpo"]["generation_share"] == 0.75
    assert summary["srft"]["rollout_rows"] == 6 and summary["srft"]["generation_share"] == 0.5
    assert summary["srft_over_grpo"] == {"wall": 0.75, "cpu": 0.75, "generate": 0.5}
    text = vllm_colocate.render({"summary": summary, "command": "c", "machine": "m", "seconds": 1, "warmup": 1})
    assert "| srft | 8 / 6 | 0.3 |" in text and "step wall 0.75x" in text
