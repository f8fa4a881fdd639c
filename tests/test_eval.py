"""Tests for srft_trl.eval: metrics, benchmarks, multiple choice, the cache, the runner, the callback.

Everything runs on CPU with the tiny random model from `srft_trl.tiny` and local benchmark files
written in each benchmark's Hub schema; nothing is downloaded.
"""

from __future__ import annotations

import itertools
import json
import os
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from srft_trl import tiny
from srft_trl.eval import (
    BENCHMARKS,
    Backend,
    Benchmark,
    EvalCallback,
    TransformersBackend,
    avg_at_k,
    evaluate,
    load_items,
    pass_at_k,
    register_benchmark,
)
from srft_trl.eval.benchmarks import resolve_field
from srft_trl.eval.cache import GenerationCache
from srft_trl.eval.choices import shuffle_options
from srft_trl.eval.grade import grade_sample, grade_samples
from srft_trl.eval.metrics import default_ks, mean_pass_at_k
from srft_trl.eval.prompts import render_prompt, require_think
from srft_trl.eval.report import PAPER_TABLE2, markdown_report

# --------------------------------------------------------------------------- fixtures


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def aime_rows(count: int) -> list[dict]:
    return [{"id": 60 + i, "problem": f"What is {i} + {i}?", "solution": "...", "answer": str(2 * i), "url": "", "year": "2024"}
            for i in range(count)]


ARC_ROWS = [
    {"id": "Mercury_1", "question": "Which is a mammal?",
     "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
    {"id": "NYSED_2", "question": "Which is a gas at room temperature?",
     "choices": {"text": ["iron", "water", "oxygen", "salt"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"},
    {"id": "ACTAAP_3", "question": "What do plants need for photosynthesis?",
     "choices": {"text": ["sand", "light", "plastic", "noise"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny.save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir)


class CountingBackend(Backend):
    """Wraps a real backend: records every request it generates, and can crash after K items."""

    def __init__(self, inner: Backend, fail_after: int | None = None):
        self.inner, self.fail_after = inner, fail_after
        self.name, self.tokenizer = inner.name, inner.tokenizer
        self.generated: list[str] = []

    def fingerprint(self):
        return self.inner.fingerprint()

    def generate(self, requests, sampling):
        for request, samples, info in self.inner.generate(requests, sampling):
            if self.fail_after is not None and len(self.generated) >= self.fail_after:
                raise RuntimeError("simulated interruption")
            self.generated.append(request.id)
            yield request, samples, info


def run(backend, data, out, **kwargs):
    """`evaluate` with small settings; `data` is the AIME24-schema file or a name -> file mapping."""
    settings = dict(benchmarks=["aime24"], data=data if isinstance(data, dict) else {"aime24": data}, n=2,
                    max_new_tokens=8, output_dir=out, progress=False)
    settings.update(kwargs)
    return evaluate(backend=backend, **settings)


# --------------------------------------------------------------------------- metrics


def brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of the k-subsets of n samples (c of them correct) that hold a correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in subset) for subset in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumeration_over_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(brute_force_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n_and_validates_arguments():
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4)
    assert pass_at_k(1024, 0, 512) == 0.0
    assert pass_at_k(1024, 600, 512) == 1.0
    assert 0.0 < pass_at_k(5000, 3, 100) < 1.0
    for bad in [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_avg_at_k_is_the_mean_fraction_correct_and_equals_pass_at_1():
    counts = [0, 8, 16, 32]
    assert avg_at_k(counts, 32) == pytest.approx((0 + 0.25 + 0.5 + 1) / 4)
    assert avg_at_k(counts, 32) == pytest.approx(mean_pass_at_k(32, counts, 1))
    with pytest.raises(ValueError):
        avg_at_k([33], 32)
    assert default_ks(32) == [1, 2, 4, 8, 16, 32]
    assert default_ks(1) == [1]
    assert default_ks(6) == [1, 2, 4, 6]


# --------------------------------------------------------------------------- benchmarks


def test_the_papers_eight_benchmarks_are_registered_with_its_protocol():
    assert list(BENCHMARKS)[:8] == ["aime24", "amc", "math500", "minerva", "olympiad", "arc_c", "gpqa_diamond", "mmlu_pro"]
    assert {name for name, b in BENCHMARKS.items() if b.n == 32} == {"aime24", "amc"}
    assert BENCHMARKS["aime24"].metric == "avg@32" and BENCHMARKS["math500"].metric == "pass@1"
    assert {name for name, b in BENCHMARKS.items() if b.group == "ood"} == {"arc_c", "gpqa_diamond", "mmlu_pro"}
    assert all(BENCHMARKS[name].kind == "mc" for name in ("arc_c", "gpqa_diamond", "mmlu_pro"))
    assert BENCHMARKS["olympiad"].config == "OE_TO_maths_en_COMP"
    with pytest.raises(ValueError):
        register_benchmark(BENCHMARKS["aime24"])
    with pytest.raises(ValueError):
        Benchmark("bad", "Bad", "mc", "x/y", question="q", gold="a", gold_from="label")  # no options


def test_math_gold_fields_follow_each_schema(tmp_path):
    minerva = write_jsonl(tmp_path / "minerva.jsonl", [
        {"problem": "Compute x.", "solution": "So $x = 3$, hence \\boxed{\\frac{1}{2}} is it... final \\boxed{5 \\mathrm{~m}}", "type": "t", "idx": 0}])
    olympiad = write_jsonl(tmp_path / "olympiad.jsonl", [
        {"id": 2231, "question": "Find n.", "final_answer": ["$12$"], "solution": ["..."]}])
    amc = write_jsonl(tmp_path / "amc.jsonl", [{"id": 0, "problem": "How many?", "answer": 142.0, "url": "u"}])
    assert load_items("minerva", minerva)[0].gold == "5 \\mathrm{~m}"
    [item] = load_items("olympiad", olympiad)
    assert (item.id, item.question, item.gold) == ("2231", "Find n.", "$12$")
    assert load_items("amc", amc)[0].gold == "142"
    assert resolve_field({"a": {"b": [1, 2]}}, "a.b.1") == 2


def test_a_new_benchmark_is_only_an_entry(tmp_path, tiny_backend):
    entry = register_benchmark(Benchmark(
        "tiny_sums", "Sums", "math", "nobody/none", question="q", gold="meta.ans", n=2), overwrite=True)
    try:
        data = write_jsonl(tmp_path / "sums.jsonl", [{"q": "1+1?", "meta": {"ans": 2}}, {"q": "2+2?", "meta": {"ans": 4}}])
        summary = evaluate(backend=tiny_backend, benchmarks=["tiny_sums"], data={"tiny_sums": data},
                           max_new_tokens=4, output_dir=tmp_path / "out", progress=False)
        result = summary["benchmarks"]["tiny_sums"]
        assert (result["n"], result["num_items"], result["metric"]) == (2, 2, "avg@2")
        assert entry.title in (tmp_path / "out" / "results.md").read_text()
    finally:
        BENCHMARKS.pop("tiny_sums")


# --------------------------------------------------------------------------- multiple choice


def test_mc_options_are_shuffled_per_item_and_the_gold_letter_follows(tmp_path):
    path = write_jsonl(tmp_path / "arc_c.jsonl", ARC_ROWS)
    items = load_items("arc_c", path, seed=0)
    correct_texts = ["whale", "oxygen", "light"]
    for item, row, correct in zip(items, ARC_ROWS, correct_texts):
        assert item.letters == "ABCD"
        assert sorted(item.options) == sorted(row["choices"]["text"])
        assert item.options[item.letters.index(item.gold)] == correct
        assert [row["choices"]["text"][p] for p in item.permutation] == item.options
    # ARC's numeric labels (1-4) are handled: item 2's gold is the third option, "oxygen".
    assert items[1].options[items[1].letters.index(items[1].gold)] == "oxygen"
    again = load_items("arc_c", path, seed=0)
    assert [i.permutation for i in again] == [i.permutation for i in items]
    unshuffled = load_items("arc_c", path, shuffle=False)
    assert all(i.permutation == [0, 1, 2, 3] for i in unshuffled) and unshuffled[0].gold == "B"


def test_permutations_depend_on_the_item_and_the_seed():
    options = [f"option {i}" for i in range(10)]
    perms = {tuple(shuffle_options(options, 0, seed=0, key=f"bench/{i}")[1]) for i in range(20)}
    assert len(perms) > 1  # different items, different orders
    same = {tuple(shuffle_options(options, 0, seed=0, key="bench/7")[1]) for _ in range(3)}
    assert len(same) == 1  # same item and seed, same order
    by_seed = {tuple(shuffle_options(options, 0, seed=s, key="bench/7")[1]) for s in range(5)}
    assert len(by_seed) > 1
    shown, perm, gold = shuffle_options(options, 3, seed=1, key="k")
    assert shown["ABCDEFGHIJ".index(gold)] == "option 3" and shown == [options[p] for p in perm]


def test_gpqa_and_mmlu_pro_schemas(tmp_path):
    gpqa = write_jsonl(tmp_path / "gpqa.jsonl", [{
        "Record ID": "rec1", "Question": "Which particle is charged?", "Correct Answer": "electron",
        "Incorrect Answer 1": "neutron", "Incorrect Answer 2": "photon", "Incorrect Answer 3": "neutrino"}])
    [item] = load_items("gpqa_diamond", gpqa, seed=3)
    assert item.id == "rec1" and item.options[item.letters.index(item.gold)] == "electron"
    options = [f"choice {i}" for i in range(10)]
    mmlu = write_jsonl(tmp_path / "mmlu.jsonl", [{
        "question_id": 70, "question": "Pick choice 4.", "options": options, "answer": "E", "answer_index": 4,
        "cot_content": "", "category": "math", "src": "x"}])
    [item] = load_items("mmlu_pro", mmlu, seed=0)
    assert item.letters == "ABCDEFGHIJ" and item.options[item.letters.index(item.gold)] == "choice 4"


def test_mc_letters_are_extracted_boxed_first_then_anchored_answer():
    def grade(response, gold="C", letters="ABCD", think=False):
        return grade_sample({"kind": "mc", "response": response, "gold": gold, "letters": letters,
                             "require_think": think})

    assert grade("The answer is \\boxed{C}.")["correct"]
    assert grade("Answer: C")["extracted"] == "C"
    assert grade("I think A is wrong. \\boxed{C}")["extracted"] == "C"
    assert not grade("\\boxed{B}")["correct"]
    assert grade("Answer: Z")["extracted"] is None  # outside the item's letters
    assert grade("<think>maybe A</think> \\boxed{C}", think=True)["correct"]
    assert not grade("no closing tag \\boxed{C}", think=True)["correct"]
    # E is a letter here, not Euler's number; letters stay within the item's options.
    assert grade("\\boxed{E}", gold="E", letters="ABCDEFGHIJ")["correct"]
    assert grade("\\boxed{E}", gold="E", letters="ABCD")["extracted"] is None


def test_mc_is_never_graded_through_the_math_path(monkeypatch):
    import srft_trl.grading.verdict
    import srft_trl.grading as grading

    def boom(*args, **kwargs):
        raise AssertionError("multiple choice went through the math grader")

    monkeypatch.setattr(grading.verdict, "grade_math", boom)
    monkeypatch.setattr(grading.verdict, "math_verify_check", boom)
    verdict = grade_sample({"kind": "mc", "response": "\\boxed{E}", "gold": "E", "letters": "ABCDE",
                            "require_think": False})
    assert verdict["correct"] and "math_verify" not in verdict and "oat" not in verdict


def test_math_samples_are_graded_by_both_graders_in_workers():
    results = grade_samples("math", ["<think>x</think> \\boxed{\\frac{1}{2}}", "<think>x</think> \\boxed{3}", "\\boxed{0.5}"],
                            "\\frac12", require_think=True, timeout_s=30)
    assert [r["math_verify"] for r in results] == [True, False, False]
    assert [r["oat"] for r in results] == [True, False, False]
    assert results[0]["extracted"] == "\\frac{1}{2}"
    relaxed = grade_samples("math", ["\\boxed{0.5}"], "\\frac12", require_think=False, timeout_s=30)
    assert relaxed[0]["correct"]


def test_a_sample_whose_grading_times_out_is_incorrect_and_flagged(monkeypatch):
    import srft_trl.grading.bounded as bounded
    from srft_trl.grading.bounded import TaskOutcome

    def fake_run(fn, tasks, timeout_s):
        return [TaskOutcome("timeout", f"exceeded {timeout_s:g} s") if "slow" in t["response"] else TaskOutcome("ok", fn(t))
                for t in tasks]

    monkeypatch.setattr(bounded, "run_bounded_status", fake_run)
    fast, slow = grade_samples("math", ["\\boxed{2}", "slow \\boxed{2}"], "2", require_think=False, timeout_s=3)
    assert fast["correct"] and not fast.get("grading_error")
    assert not slow["correct"] and not slow["oat"] and slow["grading_error"] == "timeout: exceeded 3 s"


def test_think_policy_follows_the_template():
    assert require_think("srft") and not require_think("qwen_math") and not require_think("own")
    assert require_think("own", "require") and not require_think("srft", "optional")
    with pytest.raises(ValueError):
        require_think("srft", "sometimes")


def test_templates_render_through_the_chat_template(tmp_path):
    from srft_trl.data import SRFT_SYSTEM_PROMPT

    tokenizer = tiny.build_tiny_tokenizer()
    [item] = load_items("arc_c", write_jsonl(tmp_path / "arc.jsonl", ARC_ROWS[:1]))
    srft = render_prompt(item, "srft", tokenizer)
    assert SRFT_SYSTEM_PROMPT in srft and srft.endswith("<|im_start|>assistant\n")
    assert "\nA. " in srft and "\nD. " in srft
    assert "Please reason step by step" in render_prompt(item, "qwen_math", tokenizer)
    assert "<|im_start|>system" not in render_prompt(item, "own", tokenizer)
    assert render_prompt(item, "none", tokenizer).startswith("Which is a mammal?")


# --------------------------------------------------------------------------- cache and resume


def test_an_interrupted_run_resumes_without_regenerating_finished_items(tmp_path, tiny_backend):
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(5))
    first = CountingBackend(tiny_backend, fail_after=2)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run(first, data, tmp_path / "out")
    assert len(first.generated) == 2

    second = CountingBackend(tiny_backend)
    summary = run(second, data, tmp_path / "out")
    assert not set(first.generated) & set(second.generated)  # nothing generated twice
    assert sorted(first.generated + second.generated) == [str(60 + i) for i in range(5)]
    assert summary["benchmarks"]["aime24"]["num_items"] == 5

    third = CountingBackend(tiny_backend)
    run(third, data, tmp_path / "out")
    assert third.generated == []  # a finished run is served from the cache entirely


def test_the_resumed_samples_equal_an_uninterrupted_run(tmp_path, tiny_backend):
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(3))
    with pytest.raises(RuntimeError):
        run(CountingBackend(tiny_backend, fail_after=1), data, tmp_path / "a")
    run(tiny_backend, data, tmp_path / "a")
    run(tiny_backend, data, tmp_path / "b")

    def samples(out):
        return [row["sample"] for row in map(json.loads, (out / "aime24.jsonl").read_text().splitlines())]

    assert samples(tmp_path / "a") == samples(tmp_path / "b")


@pytest.mark.parametrize("change", [{"temperature": 0.9}, {"n": 3}, {"seed": 1}, {"template": "qwen_math"},
                                    {"max_new_tokens": 6}, {"top_p": 0.9}])
def test_changed_settings_never_reuse_a_stale_cache(tmp_path, tiny_backend, change):
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(2))
    run(tiny_backend, data, tmp_path / "out")
    counting = CountingBackend(tiny_backend)
    summary = run(counting, data, tmp_path / "out", **change)
    assert counting.generated == ["60", "61"]
    assert summary["benchmarks"]["aime24"]["n"] == change.get("n", 2)


def test_changed_items_are_regenerated_and_unchanged_ones_reused(tmp_path, tiny_backend):
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(2))
    run(tiny_backend, data, tmp_path / "out")
    rows = aime_rows(3)
    rows[0]["problem"] = "What is 100 + 1?"
    write_jsonl(data, rows)
    counting = CountingBackend(tiny_backend)
    run(counting, data, tmp_path / "out")
    assert counting.generated == ["60", "62"]


def test_cache_skips_a_torn_last_line_and_appends_after_it(tmp_path):
    cache = GenerationCache(tmp_path, "bench", {"n": 1})
    cache.append({"id": "a", "prompt": "p", "samples": ["x"]})
    with open(cache.path, "a") as handle:
        handle.write('{"id": "b", "prompt": "p", "sam')  # a write cut short by a crash
    assert set(cache.load()) == {"a"}
    resumed = GenerationCache(tmp_path, "bench", {"n": 1})
    resumed.append({"id": "c", "prompt": "p", "samples": ["y"]})
    assert set(resumed.load()) == {"a", "c"}
    assert GenerationCache(tmp_path, "bench", {"n": 2}).dir != cache.dir
    assert json.loads((cache.dir / "settings.json").read_text()) == {"benchmark": "bench", "n": 1}


def test_a_changed_checkpoint_gets_a_new_cache_key(tmp_path):
    from srft_trl.eval.cache import model_fingerprint

    model = tiny.save_tiny_model(tmp_path / "m")
    before = model_fingerprint(str(model))
    tiny.save_tiny_model(tmp_path / "m", seed=1)
    assert model_fingerprint(str(model)) != before
    assert model_fingerprint("org/name", "main") == {"hub_id": "org/name", "revision": "main"}


# --------------------------------------------------------------------------- outputs


def test_outputs_per_sample_rows_summary_and_report(tmp_path, tiny_backend):
    data = write_jsonl(tmp_path / "arc_c.jsonl", ARC_ROWS)
    summary = evaluate(backend=tiny_backend, benchmarks=["arc_c"], data={"arc_c": data}, n=2, max_new_tokens=4,
                       output_dir=tmp_path / "out", progress=False, pass_k=[1, 2, 8])
    rows = [json.loads(line) for line in (tmp_path / "out" / "arc_c.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert {"prompt", "sample", "extracted", "gold", "choice", "correct", "permutation", "options"} <= set(rows[0])
    result = summary["benchmarks"]["arc_c"]
    assert set(result["pass_at_k"]) == {"1", "2"}  # k > n is skipped
    assert result["metric"] == "avg@2" and result["group"] == "ood"
    assert summary["averages"]["ood"]["complete"] is False
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["benchmarks"]["arc_c"]["score"] == result["score"]


def test_markdown_report_has_the_papers_rows_and_the_model_row():
    summary = {"model": "my-model", "benchmarks": {
        name: {"score": 0.5, "metric": "pass@1", "n": 1, "num_items": 10, "group": BENCHMARKS[name].group,
               "accuracy": {"oat": 0.5, "math_verify": 0.4}, "grader_agreement": 0.9, "pass_at_k": {"1": 0.5}}
        for name in ["aime24", "amc", "math500", "minerva", "olympiad", "arc_c", "gpqa_diamond", "mmlu_pro"]}}
    report = markdown_report(summary)
    assert "| AIME24 | AMC | MATH500 | Minerva | Olympiad | Avg. | ARC-C | GPQA-D | MMLU-Pro | Avg. |" in report
    assert "| SRFT (paper) | 35.3 | 74.3 | 89.8 | 39.7 | 58.3 | 59.5 | 85.3 | 46.4 | 55.9 | 62.5 |" in report
    assert "| **my-model** | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 |" in report
    assert "†" not in report
    assert len(PAPER_TABLE2) == 14 and {r["model"] for r in PAPER_TABLE2} >= {"Qwen2.5-Math", "LUFFY", "ReLIFT"}


# --------------------------------------------------------------------------- training callback


class StubTrainer:
    def __init__(self):
        self.logged: list[dict] = []

    def log(self, logs):
        self.logged.append(logs)


def test_eval_callback_evaluates_every_n_steps_and_logs_through_the_trainer():
    from transformers import TrainerControl, TrainerState

    tokenizer = tiny.build_tiny_tokenizer()
    model = tiny.build_tiny_model(tokenizer)
    model.train()
    problems = [{"question": "What is 1 + 1?", "answer": "2"}, {"problem": "What is 2 + 3?", "answer": "5"}]
    trainer = StubTrainer()
    callback = EvalCallback(problems, eval_steps=2, n=2, max_new_tokens=4, tokenizer=tokenizer, trainer=trainer)
    state, control = TrainerState(), TrainerControl()
    rng = torch.random.get_rng_state()

    state.global_step = 1
    callback.on_step_end(None, state, control, model=model)
    assert trainer.logged == []
    state.global_step = 2
    callback.on_step_end(None, state, control, model=model)
    assert len(trainer.logged) == 1
    metrics = trainer.logged[0]
    assert set(metrics) == {"eval_heldout_accuracy", "eval_heldout_math_verify", "eval_heldout_oat",
                            "eval_heldout_grader_agreement"}
    assert 0.0 <= metrics["eval_heldout_accuracy"] <= 1.0
    assert model.training  # train mode restored
    assert torch.equal(torch.random.get_rng_state(), rng)  # the training RNG stream is untouched
    callback.on_evaluate(None, state, control, model=model)  # same step: not evaluated twice
    assert len(trainer.logged) == 1


def test_eval_callback_without_a_trainer_writes_the_log_history(tmp_path):
    from transformers import TrainerControl, TrainerState

    tokenizer = tiny.build_tiny_tokenizer()
    model = tiny.build_tiny_model(tokenizer)
    data = write_jsonl(tmp_path / "arc_c.jsonl", ARC_ROWS[:2])
    callback = EvalCallback("arc_c", data=str(data), eval_steps=None, name="arc", max_new_tokens=4)
    state = TrainerState()
    state.global_step = 5
    callback.on_step_end(None, state, TrainerControl(), model=model, processing_class=tokenizer)
    assert state.log_history == []  # eval_steps=None: only on evaluate
    callback.on_evaluate(None, state, TrainerControl(), model=model, processing_class=tokenizer)
    assert state.log_history[-1]["step"] == 5 and "eval_arc_choice" in state.log_history[-1]


# --------------------------------------------------------------------------- backends and context windows


def test_generation_budget_truncates_or_fails():
    from srft_trl.eval.backends import generation_budget

    assert generation_budget(100, 8192, 16384) == 8192
    assert generation_budget(100, 8192, 4096) == 3996
    assert generation_budget(100, 8192, None) == 8192
    with pytest.raises(ValueError, match="exceeds"):
        generation_budget(100, 8192, 4096, overflow="error")
    with pytest.raises(ValueError, match="does not fit"):
        generation_budget(5000, 10, 4096)


def test_a_short_context_window_clips_the_budget_and_says_so(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(2))
    prompt_len = len("What is 1 + 1?")  # one token per character with the tiny tokenizer
    backend = TransformersBackend(tiny_model_dir, max_model_len=prompt_len + 3)
    summary = run(backend, data, tmp_path / "out", template="none")
    assert summary["benchmarks"]["aime24"]["clipped_items"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "aime24.jsonl").read_text().splitlines()]
    assert {row["max_new_tokens"] for row in rows} == {3}
    strict = TransformersBackend(tiny_model_dir, max_model_len=prompt_len + 3, context_overflow="error")
    with pytest.raises(ValueError, match="exceeds"):
        run(strict, data, tmp_path / "strict", template="none")


def test_rope_theta_override_extends_the_context_like_the_paper(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, rope_theta=40000, max_model_len=2048)
    config = backend.model.config
    assert config.rope_parameters["rope_theta"] == 40000 and config.max_position_embeddings == 2048
    assert backend.max_model_len == 2048
    default = TransformersBackend(tiny_model_dir)
    assert default.max_model_len == 1024
    assert not torch.equal(backend.model.model.rotary_emb.inv_freq, default.model.model.rotary_emb.inv_freq)
    assert backend.fingerprint() != default.fingerprint()  # a different cache


class FakeVLLM:
    """Stands in for the `vllm` module: records engine arguments and requests."""

    def __init__(self):
        self.engines = []
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.__dict__.update(kwargs)

        class LLM:
            def __init__(self, **kwargs):
                self.kwargs, self.calls = kwargs, []
                fake.engines.append(self)

            def generate(self, prompts, sampling_params=None, use_tqdm=True):
                from types import SimpleNamespace

                self.calls.append((prompts, sampling_params))
                return [SimpleNamespace(outputs=[SimpleNamespace(text=f"<think>t</think> \\boxed{{{i}}}")
                                                 for i in range(params.n)])
                        for params in sampling_params]

        self.LLM, self.SamplingParams = LLM, SamplingParams


def test_vllm_backend_is_lazy_and_drives_the_engine_as_documented(tmp_path, tiny_model_dir, monkeypatch):
    import sys

    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "unset")  # restored after the test
    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN")
    data = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(3))
    settings = dict(benchmarks=["aime24"], data={"aime24": data}, n=2, backend="vllm", output_dir=tmp_path / "out",
                    progress=False, max_new_tokens=512,
                    backend_kwargs={"chunk_size": 2, "tensor_parallel_size": 2, "rope_theta": 40000, "max_model_len": 4096})
    summary = evaluate(str(tiny_model_dir), **settings)
    [engine] = fake.engines
    assert engine.kwargs["tensor_parallel_size"] == 2 and engine.kwargs["max_model_len"] == 4096
    assert engine.kwargs["hf_overrides"]["rope_parameters"]["rope_theta"] == 40000
    assert engine.kwargs["hf_overrides"]["max_position_embeddings"] == 4096
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" not in os.environ  # the config now says 4096
    assert [len(prompts) for prompts, _ in engine.calls] == [2, 1]  # chunks reach the cache one by one
    params = [p for _, chunk in engine.calls for p in chunk]
    assert {(p.n, p.temperature, p.top_p, p.max_tokens) for p in params} == {(2, 0.6, 1.0, 512)}
    assert len({p.seed for p in params}) == 3  # one seed per item
    assert all("prompt_token_ids" in prompt for prompts, _ in engine.calls for prompt in prompts)
    assert summary["benchmarks"]["aime24"]["pass_at_k"]["2"] >= summary["benchmarks"]["aime24"]["score"]

    evaluate(str(tiny_model_dir), **settings)  # cached: the engine is never built again
    assert len(fake.engines) == 1

    from srft_trl.eval import VLLMBackend

    native = VLLMBackend(str(tiny_model_dir))
    assert native.max_model_len == 1024 and "hf_overrides" not in native.llm_kwargs
    VLLMBackend(str(tiny_model_dir), max_model_len=4096)  # longer than the config says, no RoPE change
    assert os.environ["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] == "1"


def test_separate_runs_with_the_same_settings_accumulate_in_one_summary(tmp_path, tiny_backend):
    aime = write_jsonl(tmp_path / "aime24.jsonl", aime_rows(1))
    arc = write_jsonl(tmp_path / "arc_c.jsonl", ARC_ROWS[:1])
    data = {"aime24": aime, "arc_c": arc}
    run(tiny_backend, data, tmp_path / "out")
    summary = run(tiny_backend, data, tmp_path / "out", benchmarks=["arc_c"])
    assert list(summary["benchmarks"]) == ["aime24", "arc_c"]
    assert set(summary["averages"]) == {"in_distribution", "ood"}
    assert "| ARC-C |" in (tmp_path / "out" / "results.md").read_text()
    other = run(tiny_backend, data, tmp_path / "out", benchmarks=["arc_c"], temperature=1.0)
    assert list(other["benchmarks"]) == ["arc_c"]  # different settings: earlier results are not mixed in


def test_generation_paths_are_reproducible_and_leave_the_caller_alone():
    import torch

    from srft_trl.generation import generate

    tokenizer = tiny.build_tiny_tokenizer()
    model = tiny.build_tiny_model(tokenizer)
    model.train()
    prompts = ["What is 2 + 2?", "Name a prime."]
    options = dict(max_new_tokens=6, temperature=1.0, num_samples=2)
    rng = torch.random.get_rng_state()
    together = generate(model, tokenizer, prompts, seeds=[11, 12], **options)
    alone = generate(model, tokenizer, prompts[1:], seeds=[12], **options)
    assert together[1] == alone[0]  # a prompt's samples do not depend on the other prompts (the eval cache)
    assert generate(model, tokenizer, prompts, seed=3, **options) == generate(model, tokenizer, prompts, seed=3, **options)
    assert torch.equal(rng, torch.random.get_rng_state()) and model.training  # the caller's RNG and mode
    assert [len(samples) for samples in together] == [2, 2]
