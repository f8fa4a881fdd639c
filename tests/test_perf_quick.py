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
