"""The testbed's statistics (the training run as the unit) and its sweep rule, on hand-made numbers."""

import math

import pytest

from benchmarks.testbed.__main__ import pick_or_extend
from benchmarks.testbed.settings import FULL
from benchmarks.testbed.stats import (
    against_base,
    compare,
    format_interval,
    paired_interval,
    run_accuracy,
    t_cdf,
    t_quantile,
)


@pytest.mark.parametrize("df, expected", [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157),
                                          (29, 2.045230), (1000, 1.962339)])
def test_t_quantile_matches_the_printed_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-6)
    assert t_cdf(expected, df) == pytest.approx(0.975, abs=1e-7)


def test_t_quantile_rejects_bad_input():
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df must be"):
        t_quantile(0.9, 0)


def test_paired_interval_by_hand():
    # diffs 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), half-width t(0.975, 3) * sd / 2 = 3.182446 * 1.290994 / 2
    c = paired_interval([1.0, 2.0, 3.0, 4.0])
    assert (c["n"], c["mean"]) == (4, 2.5)
    assert c["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert c["half_width"] == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert c["low"] == pytest.approx(2.5 - c["half_width"]) and c["resolved"]
    crossing = paired_interval([-1.0, 1.0, 2.0])
    assert crossing["low"] < 0 < crossing["high"] and not crossing["resolved"]
    negative = paired_interval([-0.05, -0.04, -0.06, -0.05])
    assert negative["high"] < 0 and negative["resolved"]
    single = paired_interval([0.3])
    assert single["half_width"] is None and not single["resolved"]
    with pytest.raises(ValueError, match="no paired units"):
        paired_interval([])


def run(method, seed, accuracy, base_seed=0, outcomes=None):
    cell = {"accuracy": accuracy}
    if outcomes is not None:
        cell["outcomes"] = outcomes
    return {"method": method, "seed": seed, "base_seed": base_seed,
            "eval": {"test": {"id": cell, "zero": {"accuracy": 0.0}, "ood": {"accuracy": 0.0}}}}


def test_comparisons_pair_by_base_and_seed_and_read_the_outcomes():
    # The stored accuracy is ignored when outcomes exist: 3 of 4 right is 0.75, whatever "accuracy" says.
    assert run_accuracy(run("a", 0, 0.1, outcomes={"1+2": 1, "3+4": 1, "5+6": 0, "7+8": 1}), "id") == 0.75
    a = [run("a", s, 0.50 + 0.01 * s, base_seed=b) for b in (0, 1) for s in range(3)]
    b = [run("b", s, 0.40 + 0.01 * s + 0.02 * b, base_seed=b) for b in (0, 1) for s in range(3)]
    b.append(run("b", 7, 0.9))  # a unit method a did not run: not paired
    c = compare(a, b, "id")
    assert c["n"] == 6 and sorted(map(tuple, c["units"])) == [(bb, s) for bb in (0, 1) for s in range(3)]
    assert c["mean"] == pytest.approx(0.09)  # (0.10 * 3 + 0.08 * 3) / 6
    assert c["resolved"]
    per_base = compare(a, b, "id", base_seed=1)
    assert per_base["n"] == 3 and per_base["mean"] == pytest.approx(0.08) and per_base["sd"] == pytest.approx(0)
    assert compare(a, [run("b", 9, 0.5)], "id") is None


def test_against_base_uses_each_runs_own_base():
    runs = [run("a", 0, 0.30, base_seed=0), run("a", 1, 0.34, base_seed=0), run("a", 0, 0.50, base_seed=1)]
    bases = {0: run("base", 0, 0.20), 1: run("base", 0, 0.45)}
    c = against_base(runs, bases, "id")
    assert c["n"] == 3 and c["mean"] == pytest.approx((0.10 + 0.14 + 0.05) / 3)


def test_format_interval_says_not_resolved():
    assert format_interval(paired_interval([0.01, 0.02, 0.03, 0.04])) == "+2.5 [+0.4, +4.6] (n 4)"
    assert format_interval(paired_interval([-0.01, 0.01, 0.02])).endswith("(n 3, not resolved)")
    assert format_interval(None) == "—"


def sweep_results(scores: dict[float, float]) -> dict[float, dict]:
    return {lr: {"eval": {"val": {"id": {"accuracy": v}, "zero": {"accuracy": v}}}} for lr, v in scores.items()}


def test_a_sweep_extends_its_grid_until_the_best_rate_is_bracketed():
    grid = dict.fromkeys(FULL.sweep_lrs, 0.1)
    assert pick_or_extend(sweep_results({**grid, 1e-4: 0.3}), FULL) == (1e-4, None, "bracketed")
    assert pick_or_extend(sweep_results({**grid, 1e-3: 0.3}), FULL) == (1e-3, 3e-3, "extending up")
    assert pick_or_extend(sweep_results({**grid, 3e-5: 0.3}), FULL) == (3e-5, 1e-5, "extending down")
    assert pick_or_extend(sweep_results(grid), FULL)[:2] == (3e-5, 1e-5)  # ties: the smaller rate
    extended = {**grid, 3e-3: 0.2, 9e-3: 0.25, 2.7e-2: 0.3}  # three extensions up already
    assert pick_or_extend(sweep_results(extended), FULL) == (2.7e-2, None, "at the upper edge")


def test_sweeps_run_stage_by_stage_and_extend_until_bracketed(tmp_path, monkeypatch):
    """run_sweeps with a fake trainer: SFT → RL's RL stage is swept from its SFT stage's chosen rate, and a sweep
    whose best rate sits at the grid's edge gets the next rate beyond it until the best is bracketed."""
    import json

    import benchmarks.testbed.__main__ as study

    best = {"grpo": 1e-5, "sft_half": 3e-4, "sft_grpo": 1e-4}  # the fake validation optimum of each sweep
    calls = []

    def fake_jobs(jobs, workers, failures):
        for method, seed, lrs, path, settings, base_path in jobs:
            calls.append((method, dict(lrs)))
            score = 1.0 / (1.0 + abs(math.log(lrs[method] / best[method])))
            cell = {"accuracy": score}
            path.write_text(json.dumps({"learning_rates": lrs, "eval": {"val": {"id": cell, "zero": cell}}}))

    monkeypatch.setattr(study, "_run_jobs", fake_jobs)
    chosen, sweep, status = study.run_sweeps(FULL, ["grpo", "sft_grpo"], {}, tmp_path, tmp_path, [], run=True)
    assert chosen == pytest.approx(best)
    assert status == {"grpo": "bracketed", "sft_half": "bracketed", "sft_grpo": "bracketed"}
    assert set(map(float, sweep["grpo"])) == {1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3.33e-6}  # extended down twice
    stage2 = [lrs for method, lrs in calls if method == "sft_grpo"]
    assert stage2 and all(lrs["sft_half"] == 3e-4 for lrs in stage2)  # after stage 1 was chosen
    first_stage2 = next(i for i, (method, _) in enumerate(calls) if method == "sft_grpo")
    assert all(method != "sft_half" for method, _ in calls[first_stage2:])
