"""`srft-trl eval` offline: the shipped sample rows and a user's own file without an id column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srft_trl import cli, tiny
from srft_trl.eval.benchmarks import BENCHMARKS, SAMPLES, load_items, samples_dir

PAPER_BENCHMARKS = ["aime24", "amc", "math500", "minerva", "olympiad", "arc_c", "gpqa_diamond", "mmlu_pro"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny.save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def test_a_sample_ships_for_every_paper_benchmark_in_its_hub_schema():
    assert set(PAPER_BENCHMARKS) <= set(BENCHMARKS)
    for name in PAPER_BENCHMARKS:
        assert (samples_dir() / f"{name}.jsonl").is_file(), name
        items = load_items(name, SAMPLES)
        assert len(items) == 3 and all(item.question and item.gold for item in items), name
        assert len({item.id for item in items}) == 3, name  # ids come from the schema's id field or the row
    (amc,) = [i for i in load_items("amc", SAMPLES) if i.id == "1"]
    assert amc.gold == "142"  # AMC's float answers (`142.0`) read as integers


def test_eval_on_the_shipped_samples_runs_offline(model_dir, tmp_path, monkeypatch, capsys):
    # The command docs/eval.md prints, run from an unrelated directory.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    status = cli.main(["eval", "--model", str(model_dir), "--data-dir", "samples", "--benchmarks",
                       ",".join(PAPER_BENCHMARKS), "--backend", "transformers", "--n", "1", "--max-new-tokens", "8",
                       "--output-dir", str(out), "--no-progress"])
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["benchmarks"]) == set(PAPER_BENCHMARKS)
    for name in PAPER_BENCHMARKS:
        lines = (out / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == 3, name
    assert "math500" in capsys.readouterr().out


def test_a_math500_file_with_only_problem_and_answer(model_dir, tmp_path):
    # The documented fields, no `unique_id`: ids are the row numbers (used to key the cache and shuffles).
    data = tmp_path / "mine.jsonl"
    data.write_text('{"problem": "What is 1 + 1?", "answer": "2"}\n{"problem": "What is 2 + 3?", "answer": "5"}\n')
    out = tmp_path / "out"
    status = cli.main(["eval", "--model", str(model_dir), "--benchmarks", "math500", "--data", f"math500={data}",
                       "--backend", "transformers", "--max-new-tokens", "8", "--output-dir", str(out), "--no-progress"])
    assert status == 0
    rows = [json.loads(line) for line in (out / "math500.jsonl").read_text().splitlines()]
    assert [(row["id"], row["gold"]) for row in rows] == [("0", "2"), ("1", "5")]


def test_a_missing_data_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"math500: data path .*nope\.jsonl does not exist"):
        load_items("math500", tmp_path / "nope.jsonl")
