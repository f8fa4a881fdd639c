"""The term-balance benchmark's smoke run: every method runs through the product, logs its terms, resumes."""

import json
import math

from benchmarks import term_balance


def test_quick_run_reports_every_method_and_resumes(tmp_path, capsys):
    argv = ["--quick", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    assert term_balance.main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["runs"]) == set(term_balance.METHODS)
    assert math.isfinite(results["base_nll"]) and results["base_nll"] > 0
    for name, run in results["runs"].items():
        assert math.isfinite(run["nll_after"])
        if name != "sft":
            logged = run["logged_mean"]
            assert {"srft/loss_sft", "srft/loss_rollout", "srft/grad_sft", "srft/grad_rollout"} <= set(logged)
            assert logged["srft/grad_sft"] > 0
    assert "| srft_hpt |" in (tmp_path / "out" / "README.md").read_text()
    capsys.readouterr()
    assert term_balance.main(argv) == 0  # everything finished: nothing reruns
    assert capsys.readouterr().out.count("done earlier, skipped") == len(term_balance.METHODS)
