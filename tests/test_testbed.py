"""The testbed's `--quick` mode end to end, as a user runs it: base, sweep, runs, report, resume.

It is also an integration test of the product: every RL run goes through `SRFTTrainer` with the
method presets and a TRL reward function.
"""

import json
import math
import random

import pytest

pytestmark = pytest.mark.slow


def test_problems_are_distinct_held_out_and_demonstrate_the_procedure():
    from srft_trl.tasks.digit_chains import Problem
    from benchmarks.testbed.settings import QUICK, heldout_questions, train_problems

    problem = Problem((3, 5, 2, 7))
    assert problem.question == "3+5+2+7" and problem.answer == "17"
    assert problem.procedure() == "<think>\n3+5=8\n8+2=10\n10+7=17\n</think>\n\\boxed{17}"
    # The base's sloppy teacher drops carries (here every time), and the chain goes on from the wrong sum.
    sloppy = problem.procedure(carry_slip=1.0, rng=random.Random(0))
    assert sloppy == "<think>\n3+5=8\n8+2=0\n0+7=7\n</think>\n\\boxed{7}"
    train = train_problems(QUICK, 0, 40)
    questions = [p.question for p in train]
    assert len(set(questions)) == len(questions)
    assert not set(questions) & heldout_questions(QUICK)
    assert [len(p.terms) for p in train[:4]] == [4, 6, 5, 6]


def test_quick_study_writes_results_and_resumes(tmp_path, capsys):
    from benchmarks.testbed.__main__ import main

    out, cache = tmp_path / "study", tmp_path / "cache"
    assert main(["--quick", "--out", str(out), "--cache", str(cache)]) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert set(results["runs"]) == {"sft", "grpo", "srft"}
    assert set(results["learning_rates"]) == {"sft", "grpo", "srft"}
    (kept,) = (out / "bases").iterdir()  # the base is kept with the results, with its weights' hash
    sha = (kept / "weights.sha256").read_text().strip()
    for method, runs in results["runs"].items():
        (run,) = runs
        assert run["optimizer_steps"] == 3 and run["problems_seen"] == 6, method
        assert run["base_sha256"] == sha and run["base_seed"] == 0
        assert {"python", "torch", "transformers", "trl", "accelerate", "peft"} <= set(run["versions"])
        for family in ("id", "zero", "ood"):
            cell = run["eval"]["test"][family]
            assert cell["n"] == 40 and 0.0 <= cell["accuracy"] <= 1.0
        # Per-problem outcomes live in runs/ (results.json stays slim) and give back the accuracy.
        stored = json.loads(next((out / "runs").glob(f"{method}-*.json")).read_text())["eval"]["test"]["id"]
        assert len(stored["outcomes"]) == 40 and sum(stored["outcomes"].values()) / 40 == stored["accuracy"]
    srft_history = next(iter(json.loads(p.read_text()) for p in (out / "runs").glob("srft-*.json")))["history"]
    for key in ("srft/w_sft", "srft/w_rl", "srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout"):
        assert all(math.isfinite(step[key]) for step in srft_history), key
    table = (out / "results.md").read_text()
    assert "Table 2" in table and "Table 3" in table and "| SRFT (paper) |" in table and "nan" not in table
    assert "| SRFT (paper) | SFT | +" in table or "| SRFT (paper) | SFT | -" in table
    assert "(n 1, no interval)" in table  # one unit: a difference but no interval, never a z value
    assert " z " not in table
    for png in ("fig6_training_dynamics.png", "srft_terms.png", "sft_learning_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Without --resume an existing study is never touched: one line naming the folder.
    with pytest.raises(SystemExit):
        main(["--quick", "--out", str(out), "--cache", str(cache)])
    assert "--resume" in capsys.readouterr().err

    # With --resume every finished run is skipped and the numbers are unchanged; the kept base is reused, not
    # rebuilt, even with the cache gone.
    import shutil

    shutil.rmtree(cache)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert main(["--quick", "--resume", "--out", str(out), "--cache", str(cache)]) == 0
    assert "reusing kept" in capsys.readouterr().out and not cache.exists()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == mtimes
    assert json.loads((out / "results.json").read_text())["summary"] == results["summary"]

    # Re-running a finished configuration on the kept base gives the same per-problem outcomes (the command a
    # reader types), and the stored run is left as it was.
    from benchmarks.testbed import rerun

    finished_path = next((out / "runs").glob("srft-*.json"))
    stored = finished_path.read_bytes()
    assert rerun.main([str(finished_path), "--keep", str(tmp_path / "again.json")]) == 0
    printed = capsys.readouterr().out
    assert "reproduced: every test outcome is the same" in printed and "40/40 outcomes identical" in printed
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["eval"]["test"] == json.loads(stored)["eval"]["test"] and finished_path.read_bytes() == stored
    # A changed outcome is reported, with the problem, and exits 1.
    tampered = json.loads(stored)
    question, ok = next(iter(tampered["eval"]["test"]["id"]["outcomes"].items()))
    tampered["eval"]["test"]["id"]["outcomes"][question] = 1 - ok
    (out / "runs" / "tampered.json").write_text(json.dumps(tampered))
    assert rerun.main([str(out / "runs" / "tampered.json")]) == 1
    printed = capsys.readouterr().out
    assert "39/40 outcomes identical" in printed and question in printed and "NOT reproduced" in printed
    (out / "runs" / "tampered.json").unlink()
    # Mistakes: a base's result is not a training run; a run whose settings this checkout no longer has.
    assert rerun.main([str(next((out / "runs").glob("base-*.json")))]) == 2
    assert "not a v3 training run" in capsys.readouterr().err
    (tmp_path / "stale.json").write_text(json.dumps({**json.loads(stored), "settings_key": "0123456789"}))
    assert rerun.main([str(tmp_path / "stale.json")]) == 2
    err = capsys.readouterr().err
    assert "matches no regime" in err and "Traceback" not in err

    # A kept base whose weights no longer match their hash is a one-line error, never a silent rebuild.
    (kept / "weights.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(SystemExit):
        main(["--quick", "--resume", "--out", str(out), "--cache", str(cache)])
    err = capsys.readouterr().err
    assert "restore it from git" in err and "Traceback" not in err


def test_bad_learning_rate_is_one_line_before_any_work(tmp_path, capsys):
    from benchmarks.testbed.__main__ import main

    with pytest.raises(SystemExit):
        main(["--quick", "--out", str(tmp_path / "x"), "--lr", "srft=fast"])
    err = capsys.readouterr().err
    assert "--lr srft=fast" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_the_base_teacher_drops_carries_at_its_rate_and_the_demonstrations_never_do():
    import re

    from benchmarks.testbed.base import BaseSettings, pretrain_texts
    from srft_trl.tasks.digit_chains import in_study_pool
    from benchmarks.testbed.settings import FULL, train_problems
    from srft_trl.tiny import build_tiny_tokenizer

    def lines(text):
        return [tuple(map(int, m)) for m in re.findall(r"^(\d+)\+(\d)=(\d+)$", text, flags=re.M)]

    settings = BaseSettings()
    carries = slips = 0
    chains = 0
    for prompt, answer in pretrain_texts(build_tiny_tokenizer(), settings, 3000):
        question = re.search(r"user\n(.*?)<", prompt, flags=re.S).group(1).strip()
        if "=" not in answer:  # a single n+d fact, answered directly and correctly
            a, d = map(int, question.split("+"))
            assert answer.startswith(f"<think>\n</think>\n\\boxed{{{a + d}}}")
            continue
        chains += 1
        assert not in_study_pool(question) and 2 <= question.count("+") + 1 <= settings.max_terms
        for a, d, written in lines(answer):
            if a % 10 + d >= 10:
                carries += 1
                slips += written == a + d - 10
                assert written in (a + d, a + d - 10)
            else:
                assert written == a + d  # only carries slip
    assert chains > 1500 and carries > 1000
    assert abs(slips / carries - settings.carry_slip) < 0.05
    for problem in train_problems(FULL, 0, 200):  # demonstrations: every line right
        assert all(written == a + d for a, d, written in lines(problem.procedure()))


def test_the_report_shows_parameter_space_term_sizes_when_a_run_logged_them():
    from benchmarks.testbed.report import _terms_table

    # 30 steps: the SFT term's norm is 1 in the first and last 10 and 4 in between, so the whole-run mean is 2.
    history = [{"step": s, "srft/w_sft": 0.4, "srft/param_grad_sft": 4.0 if 10 < s <= 20 else 1.0,
                "srft/param_grad_demo_rl": 0.5, "srft/param_grad_rollout": 0.25, "grad_norm": 2.0} for s in range(1, 31)]
    plain = [{k: v for k, v in h.items() if "param_grad" not in k} for h in history]
    table = _terms_table({"runs": {"srft": [{"history": plain}], "srft_param_grads": [{"history": history}]}})
    assert "parameter space" in table
    row = next(line for line in table.splitlines() if line.startswith("| SRFT, per-term parameter gradients"))
    assert "| 1 → 1 (2) | 0.5 → 0.5 (0.5) | 0.25 → 0.25 (0.25) | — | 2 → 2 (2) |" in row
    assert "parameter space" not in _terms_table({"runs": {"srft": [{"history": plain}]}})
    assert "two halves" not in table  # no halves logged, no table of them
    # With the cosines logged, a table of them: which terms pull together, and which one the update follows.
    cosines = [{**h, "srft/param_cos_sft_vs_rollout": -0.5, "srft/param_cos_rollout_vs_total": 0.75} for h in history]
    table = _terms_table({"runs": {"srft": [{"history": plain}], "srft_param_grads": [{"history": cosines}]}})
    row = [line for line in table.splitlines() if line.startswith("| SRFT, per-term parameter gradients")][-1]
    assert "Cosines" in table and "| -0.5 → -0.5 (-0.5) |" in row and row.endswith("| 0.75 → 0.75 (0.75) |")
    # Eq. 12's halves (logged since issue 21) get their own table.
    halves = [{**h, "srft/param_grad_rollout_success": 0.1, "srft/param_grad_rollout_failure": 0.3,
               "srft/param_cos_rollout_failure_vs_total": 0.6} for h in cosines]
    table = _terms_table({"runs": {"srft": [{"history": plain}], "srft_param_grads": [{"history": halves}]}})
    row = table.splitlines()[-1]
    assert "two halves" in table and row.startswith("| SRFT, per-term parameter gradients logged | 0.1 → 0.1 (0.1) | 0.3 → 0.3")
    assert "| 0.6 → 0.6 (0.6) |" in row
