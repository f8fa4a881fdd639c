"""End-to-end tests of `srft-trl eval` (`srft_trl.eval.cli.main`) on the tiny local model.

Benchmarks are read from local files written in their Hub schemas; nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from srft_trl import tiny
from srft_trl.eval.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny.save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    write_jsonl(data / "aime24.jsonl", [
        {"id": 60, "problem": "What is 2 + 2?", "solution": "", "answer": "4", "url": "", "year": "2024"},
        {"id": 61, "problem": "What is 3 + 3?", "solution": "", "answer": "6", "url": "", "year": "2024"},
    ])
    write_jsonl(data / "math500.jsonl", [
        {"problem": "Simplify 2/4.", "solution": "\\boxed{\\frac12}", "answer": "\\frac{1}{2}", "subject": "Algebra",
         "level": 1, "unique_id": "test/algebra/1.json"},
    ])
    write_jsonl(data / "arc_c.jsonl", [
        {"id": "Mercury_1", "question": "Which is a mammal?",
         "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
        {"id": "NYSED_2", "question": "Which is a gas?",
         "choices": {"text": ["iron", "water", "oxygen", "salt"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"},
    ])
    return data


def test_cli_end_to_end_writes_jsonl_summary_and_table(model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--model", str(model_dir), "--benchmarks", "aime24,math500,arc_c", "--data-dir", str(data_dir),
            "--backend", "transformers", "--n", "2", "--max-new-tokens", "16", "--output-dir", str(out),
            "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "aime24: avg@2 =" in printed and str(out) in printed

    rows = [json.loads(line) for line in (out / "aime24.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {row["sample_index"] for row in rows} == {0, 1}
    assert {"prompt", "sample", "extracted", "gold", "math_verify", "oat", "correct"} <= set(rows[0])
    assert "**Thought**" in rows[0]["prompt"]  # the paper's training template by default
    mc = [json.loads(line) for line in (out / "arc_c.jsonl").read_text().splitlines()]
    assert all(sorted(row["permutation"]) == [0, 1, 2, 3] for row in mc)
    assert "math_verify" not in mc[0] and "choice" in mc[0]

    summary = json.loads((out / "summary.json").read_text())
    settings = summary["settings"]
    assert (settings["temperature"], settings["top_p"], settings["max_new_tokens"]) == (0.6, 1.0, 16)
    assert settings["template"] == "srft" and settings["backend"] == "transformers"
    assert summary["benchmarks"]["aime24"]["n"] == 2 and summary["benchmarks"]["math500"]["num_items"] == 1
    assert {"math_verify", "oat"} == set(summary["benchmarks"]["aime24"]["accuracy"])
    assert 0.0 <= summary["benchmarks"]["aime24"]["grader_agreement"] <= 1.0
    assert set(summary["averages"]) == {"in_distribution", "ood"}

    table = (out / "results.md").read_text()
    assert "| Model | AIME24 | AMC | MATH500 | Minerva | Olympiad | Avg. | ARC-C | GPQA-D | MMLU-Pro | Avg. |" in table
    for paper_row in ("| Qwen2.5-Math |", "| LUFFY |", "| SRFT (paper) |"):
        assert paper_row in table
    assert f"| **{model_dir}** |" in table and "†" in table  # partial averages are flagged

    # A second identical run is served from the cache and writes the same scores.
    assert main(argv) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["benchmarks"] == summary["benchmarks"]


def test_cli_defaults_follow_the_paper():
    args = build_parser().parse_args(["--model", "m"])
    assert (args.temperature, args.top_p, args.max_new_tokens) == (0.6, 1.0, 8192)
    assert args.n is None and args.template == "srft" and args.think_policy == "auto"
    assert args.benchmarks == ["aime24", "amc", "math500", "minerva", "olympiad", "arc_c", "gpqa_diamond", "mmlu_pro"]
    args = build_parser().parse_args(["--model", "m", "--backend", "vllm", "--tensor-parallel-size", "4",
                                      "--max-model-len", "16384", "--hf-overrides", '{"rope_theta": 40000}'])
    assert args.tensor_parallel_size == 4 and args.hf_overrides == {"rope_theta": 40000}
    import importlib.util

    import torch

    from srft_trl.eval.backends import resolve_backend_name

    has_vllm_gpu = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    assert resolve_backend_name("auto") == ("vllm" if has_vllm_gpu else "transformers")
    assert resolve_backend_name("transformers") == "transformers"


def test_cli_rejects_unknown_benchmarks_and_lists_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "m", "--benchmarks", "aime24,nonsense"])
    assert main(["--list-benchmarks"]) == 0
    listing = capsys.readouterr().out
    assert "gpqa_diamond" in listing and "Idavidrein/gpqa" in listing and "n=32" in listing


def test_cli_reads_single_files_and_other_templates(model_dir, data_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["--model", str(model_dir), "--benchmarks", "arc_c", "--data", f"arc_c={data_dir / 'arc_c.jsonl'}",
                 "--backend", "transformers", "--max-new-tokens", "8", "--template", "qwen_math",
                 "--output-dir", str(out), "--no-progress", "--no-cache", "--no-shuffle"]) == 0
    rows = [json.loads(line) for line in (out / "arc_c.jsonl").read_text().splitlines()]
    assert "Please reason step by step" in rows[0]["prompt"]
    assert [row["permutation"] for row in rows] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert not (out / "cache").exists()


def test_python_dash_m_entry_point_without_importing_vllm():
    # -X importtime lists every module the process imports (on stderr).
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "srft_trl.eval", "--list-benchmarks"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mmlu_pro" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "srft_trl.eval.cli" in imported
    assert not any(name == "vllm" or name.startswith("vllm.") for name in imported)


def test_cli_takes_snake_case_flags_like_train(model_dir, monkeypatch):
    import srft_trl.eval.cli as eval_cli

    seen = []
    monkeypatch.setattr(eval_cli, "_evaluate", lambda args, sources, kwargs: seen.append(args) or
                        {"benchmarks": {}, "output_dir": "x"})
    for flags in (["--max-new-tokens", "7", "--top-p", "0.5"], ["--max_new_tokens", "7", "--top_p=0.5"]):
        assert main(["--model", str(model_dir), "--benchmarks", "math500", *flags]) == 0
    assert [(a.max_new_tokens, a.top_p) for a in seen] == [(7, 0.5), (7, 0.5)]


def test_cli_names_a_missing_model_or_data_path_in_one_line(model_dir, tmp_path, capsys):
    assert main(["--model", str(tmp_path / "my-qwen-typo")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"srft-trl eval: error: --model {tmp_path / 'my-qwen-typo'}: no such file or folder " \
                  "(a local path; Hub ids look like org/name)"
    assert main(["--model", str(model_dir), "--benchmarks", "math500", "--data", "math500=" + str(tmp_path / "no.jsonl"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no.jsonl" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# The quickstart's base (a 256-token context) on prompts it cannot hold: one line, before any generation
# --------------------------------------------------------------------------------------------


def _eval_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`srft-trl eval ARGS` as a user types it, in a subprocess, offline."""
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT),
               HF_DATASETS_CACHE=str(tmp_path / "datasets-cache"), TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "srft_trl.cli", "eval", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("srft-trl eval: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_prompts_longer_than_the_quickstart_base_context_fail_in_one_line(tmp_path):
    # The paper's template alone is longer than the base's 256 positions (one token per byte).
    out = tmp_path / "out"
    result = _eval_command(tmp_path, "--model", "digit_chains_base", "--benchmarks", "aime24", "--data-dir", "samples",
                           "--backend", "transformers", "--n", "1", "--no-progress", "--output-dir", str(out))
    error = _error_line(result)
    assert "the model's 256-token context" in error and "aime24 row 1 (id 1) of " in error
    assert "eval_samples/aime24.jsonl" in error and "this model cannot evaluate this set" in error
    assert int(re.search(r": (\d+) tokens with --template srft", error).group(1)) > 256
    assert not (out / "aime24.jsonl").exists() and not (out / "cache").exists()


def test_the_context_is_checked_for_every_benchmark_before_any_generation(tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "math500.jsonl", [{"problem": "1+2", "answer": "3"}])
    write_jsonl(data / "aime24.jsonl", [{"id": 7, "problem": "2+2", "answer": "4"},
                                        {"id": 8, "problem": "+".join(["1"] * 200), "answer": "200"}])
    out = tmp_path / "out"
    result = _eval_command(tmp_path, "--model", "digit_chains_base", "--benchmarks", "math500,aime24",
                           "--data-dir", str(data), "--template", "none", "--backend", "transformers",
                           "--max-new-tokens", "8", "--no-progress", "--output-dir", str(out))
    error = _error_line(result)
    assert f"aime24 row 2 (id 8) of {data / 'aime24.jsonl'}: 399 tokens" in error and "256-token" in error
    assert "shorter --template" not in error  # already the shortest
    assert not (out / "math500.jsonl").exists()  # the benchmark that fits was not generated either


def test_context_overflow_error_names_the_budget_that_fits_and_that_budget_runs(tmp_path):
    common = ["--model", "digit_chains_base", "--benchmarks", "math500", "--data-dir", "samples", "--template", "none",
              "--backend", "transformers", "--n", "1", "--no-progress", "--context-overflow", "error",
              "--output-dir", str(tmp_path / "out")]
    error = _error_line(_eval_command(tmp_path, *common))
    assert "+ --max-new-tokens 8192 exceeds the model's 256-token context" in error and "math500 row" in error
    budget = re.search(r"lower --max-new-tokens to (\d+)", error).group(1)
    result = _eval_command(tmp_path, *common, "--max-new-tokens", budget)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "math500.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and max(row["max_new_tokens"] for row in rows) == int(budget)


def test_a_budget_past_the_context_is_cut_with_a_warning_up_front(tmp_path):
    result = _eval_command(tmp_path, "--model", "digit_chains_base", "--benchmarks", "math500", "--data-dir", "samples",
                           "--template", "none", "--backend", "transformers", "--n", "1", "--max-new-tokens", "300",
                           "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"math500: prompt \+ 300 new tokens exceeds the model's 256-token context for 3 of 3 prompts",
                     result.stderr)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["benchmarks"]["math500"]["clipped_items"] == 3
