"""The toy study's `--quick` mode end to end: base model, SFT / GRPO / SRFT runs, table, plots, JSON.

It is also an integration test of the product: every RL run goes through `SRFTTrainer` with the
method presets and the product's `math_accuracy_reward`.
"""

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_quick_study_produces_table_plots_and_json(tmp_path):
    from benchmarks.toy_study.__main__ import main

    out = tmp_path / "study"
    code = main(["--quick", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert code == 0

    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert set(results["runs"]) == {"sft", "grpo", "srft"}
    for name, runs in results["runs"].items():
        assert len(runs) == 1
        for run in runs:
            for key in ("test_accuracy", "ood_accuracy"):
                assert 0.0 <= run[key] <= 1.0, (name, key, run[key])
            assert run["history"], name
    for key in ("test_accuracy", "ood_accuracy"):
        assert 0.0 <= results["base"][key] <= 1.0
    # RL runs logged the curves the plots are drawn from; SRFT logged its weights.
    srft_steps = results["runs"]["srft"][0]["history"]
    assert all(math.isfinite(s["srft/entropy_rollout"]) for s in srft_steps)
    assert all(0 < s["srft/w_sft"] <= 0.5 for s in srft_steps)
    assert all("reward" in s and "completions/mean_length" in s for s in results["runs"]["grpo"][0]["history"])

    table = (out / "results.md").read_text()
    assert "| SRFT |" in table and "| RL (GRPO) |" in table and "| SFT |" in table
    assert "Table 2" in table and "Table 3" in table
    for png in ("fig6_training_dynamics.png", "fig6_ablations.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert (out / "command.txt").read_text().startswith("python -m benchmarks.toy_study --quick")

    # Resume: a second invocation finds every run done and only rebuilds the report.
    assert main(["--quick", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["summary"] == results["summary"]
