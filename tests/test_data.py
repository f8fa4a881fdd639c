"""Tests for srft_trl.data: the loaders, the length filter and the shipped tiny arithmetic set."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path

import datasets
import pytest
from math_verify import parse, verify

from srft_trl import tiny
from srft_trl.data import (
    SRFT_SYSTEM_PROMPT,
    TINY_MATH_SPLITS,
    filter_by_demo_length,
    load_openr1,
    load_prompt_demo_dataset,
    load_tiny_math,
)
from srft_trl.tasks.tiny_math import generate_arithmetic_problems, to_openr1_record

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "srft_trl" / "resources" / "tiny_math"
SPLIT_SIZES = {"train": 400, "test": 100, "ood": 100}


DEMO = "<think>\n2+2=4\n</think>\n\\boxed{4}"


def openr1_row(index: int, question: str = "What is 2+2?", demo: str = DEMO, answer="4"):
    """One row of the OpenR1 schema, with a system message like the Hub data set's."""
    return {
        "data_source": "openr1",
        "prompt": [
            {"role": "system", "content": "Think first."},
            {"role": "user", "content": question},
        ],
        "target": [{"role": "assistant", "content": demo}],
        "ability": "math",
        "reward_model": {"ground_truth": answer, "style": "rule"},
        "extra_info": {"index": index, "split": "default"},
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.build_tiny_tokenizer()


def tokenizer_opening_think(suffix: str):
    """The tiny tokenizer with a chat template whose generation prompt ends with `suffix`."""
    tok = tiny.build_tiny_tokenizer()
    generation_prompt = "'<|im_start|>assistant\n'"
    tok.chat_template = tiny.CHAT_TEMPLATE.replace(generation_prompt, generation_prompt[:-1] + suffix + "'")
    return tok


# --------------------------------------------------------------------------------------------
# load_openr1
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "save_to_disk"])
def test_load_openr1_local_formats(tmp_path, fmt):
    rows = [openr1_row(0), openr1_row(1, "What is 3*3?", "<think>\n3*3=9\n</think>\n\\boxed{9}", "9")]
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "data.jsonl", rows)
    elif fmt == "parquet":
        path = tmp_path / "data.parquet"
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))

    dataset = load_openr1(str(path))

    assert set(dataset.column_names) == set(rows[0]) | {"demo", "solution"}
    assert dataset["prompt"] == [row["prompt"] for row in rows]
    assert dataset["demo"] == [row["target"][0]["content"] for row in rows]
    assert dataset["solution"] == ["4", "9"]
    assert dataset["extra_info"] == [row["extra_info"] for row in rows]


def test_load_openr1_custom_column_names_and_dataset_dict_split(tmp_path):
    path = tmp_path / "dict"
    splits = {"train": [openr1_row(0)], "test": [openr1_row(7, answer="5")]}
    dataset_dict = datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})
    dataset_dict.save_to_disk(str(path))

    dataset = load_openr1(path, split="test", demo_column="reference", solution_column="answer")

    assert dataset["answer"] == ["5"] and dataset["reference"][0].startswith("<think>\n")
    with pytest.raises(ValueError, match="'validation'.*available splits"):
        load_openr1(path, split="validation")


def test_numeric_ground_truth_becomes_string(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [openr1_row(0, answer=4)])
    assert load_openr1(path)["solution"] == ["4"]


def test_missing_local_file_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_openr1(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("suffix", "expected_demo"),
    [
        ("<think>\n", "2+2=4\n</think>\n\\boxed{4}"),
        ("<think>", "\n2+2=4\n</think>\n\\boxed{4}"),
        ("", "<think>\n2+2=4\n</think>\n\\boxed{4}"),
    ],
)
def test_think_prefix_is_not_doubled(tmp_path, suffix, expected_demo):
    path = write_jsonl(tmp_path / "data.jsonl", [openr1_row(0)])
    tok = tokenizer_opening_think(suffix)

    row = load_openr1(path, tokenizer=tok)[0]

    assert row["demo"] == expected_demo
    full_text = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) + row["demo"]
    assert full_text.count("<think>") == 1
    assert full_text.endswith("<think>\n2+2=4\n</think>\n\\boxed{4}")
    # Without a tokenizer nothing is stripped.
    assert load_openr1(path)[0]["demo"].startswith("<think>\n")


def test_system_prompt_replaces_or_is_inserted(tmp_path):
    with_system = openr1_row(0)
    without_system = openr1_row(1)
    without_system["prompt"] = without_system["prompt"][1:]
    path = write_jsonl(tmp_path / "data.jsonl", [with_system, without_system])

    dataset = load_openr1(path, system_prompt=SRFT_SYSTEM_PROMPT)

    for prompt in dataset["prompt"]:
        assert prompt == [
            {"role": "system", "content": SRFT_SYSTEM_PROMPT},
            {"role": "user", "content": "What is 2+2?"},
        ]


def test_srft_system_prompt_is_the_papers_instruction():
    assert SRFT_SYSTEM_PROMPT.startswith("Your task is to follow a systematic, thorough reasoning process")
    assert "**Thought** and **Solution**" in SRFT_SYSTEM_PROMPT
    assert SRFT_SYSTEM_PROMPT.endswith(
        "include the Answer in `\\boxed{ }` for closed-form results like multiple choices or mathematical solutions."
    )
    assert "Question:" not in SRFT_SYSTEM_PROMPT


def break_row(row: dict, how: str) -> dict:
    if how == "missing target":
        row["target"] = None
    elif how == "empty target":
        row["target"] = []
    elif how == "non-string content":
        row["target"] = [{"role": "assistant", "content": None}]
    elif how == "missing ground_truth":
        row["reward_model"] = {"style": "rule"}
    elif how == "empty demo":
        row["target"] = [{"role": "assistant", "content": "  "}]
    elif how == "empty prompt":
        row["prompt"] = []
    return row


@pytest.mark.parametrize(
    ("how", "field"),
    [
        ("missing target", "'target' is missing"),
        ("empty target", "'target' must be a non-empty list"),
        ("non-string content", "'target[0]['content']' must be a string, got NoneType"),
        ("missing ground_truth", "'reward_model['ground_truth']' is missing"),
        ("empty demo", "'target[0]['content']' is empty"),
        ("empty prompt", "'prompt' must be a string or a non-empty list"),
    ],
)
def test_malformed_rows_name_row_and_field(tmp_path, how, field):
    rows = [openr1_row(0), openr1_row(1), break_row(openr1_row(2), how)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(ValueError) as error:
        load_openr1(path)
    assert "row 3" in str(error.value) and field in str(error.value)  # the third row, counted from 1 like an editor


def test_non_string_content_in_a_typed_column(tmp_path):
    row = openr1_row(0)
    row["target"] = [{"role": "assistant", "content": 5}]
    with pytest.raises(ValueError, match=r"row 1: 'target\[0\]\['content'\]' must be a string, got int"):
        load_openr1(write_jsonl(tmp_path / "data.jsonl", [row]))


def test_missing_column_lists_available_columns(tmp_path):
    row = openr1_row(0)
    del row["target"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['target'\]; available columns: \[.*'reward_model'"):
        load_openr1(write_jsonl(tmp_path / "data.jsonl", [row]))


# --------------------------------------------------------------------------------------------
# Length filtering
# --------------------------------------------------------------------------------------------


def test_filter_by_demo_length_counts_eos(tokenizer, caplog):
    demos = ["a" * 5, "b" * 9, "c" * 10, "d" * 30]
    dataset = datasets.Dataset.from_dict({"demo": demos, "solution": ["1"] * 4})

    with caplog.at_level(logging.INFO, logger="srft_trl.data"):
        filtered, dropped = filter_by_demo_length(dataset, tokenizer, max_tokens=10)

    # One token per character plus one for EOS: 5+1 and 9+1 fit in 10, 10+1 and 30+1 do not.
    assert filtered["demo"] == demos[:2]
    assert dropped == 2
    assert "dropped 2 of 4" in caplog.text


def test_load_openr1_max_demo_tokens(tmp_path, tokenizer):
    demos = ["<think>\n1\n</think>\n\\boxed{1}", "<think>\n" + "x" * 50 + "\n</think>\n\\boxed{1}"]
    path = write_jsonl(tmp_path / "data.jsonl", [openr1_row(i, demo=demo) for i, demo in enumerate(demos)])

    dataset = load_openr1(path, tokenizer=tokenizer, max_demo_tokens=len(demos[0]) + 1)

    assert dataset["demo"] == demos[:1]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        load_openr1(path, max_demo_tokens=10)


# --------------------------------------------------------------------------------------------
# load_prompt_demo_dataset
# --------------------------------------------------------------------------------------------


COLUMNS = {"prompt_column": "question", "demo_column": "trace", "solution_column": "answer"}


@pytest.fixture
def generic_file(tmp_path):
    rows = [{"question": "1+1?", "trace": "<think>\n1+1=2\n</think>\n\\boxed{2}", "answer": "2", "level": 1}]
    return write_jsonl(tmp_path / "generic.jsonl", rows)


def test_generic_loader_keeps_string_prompts(generic_file):
    dataset = load_prompt_demo_dataset(generic_file, **COLUMNS)
    assert set(dataset.column_names) == {"prompt", "trace", "answer", "level"}
    assert dataset[0]["prompt"] == "1+1?" and dataset[0]["answer"] == "2"


def test_generic_loader_conversational_with_system_prompt(generic_file):
    tok = tokenizer_opening_think("<think>\n")
    dataset = load_prompt_demo_dataset(
        generic_file, **COLUMNS, conversational=True, system_prompt="Be brief.", tokenizer=tok
    )
    assert dataset[0]["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}]
    assert dataset[0]["trace"] == "1+1=2\n</think>\n\\boxed{2}"


def test_generic_loader_errors(generic_file):
    available = r"available columns: \['question', 'trace', 'answer', 'level'\]"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['solution'\]; " + available):
        load_prompt_demo_dataset(generic_file, **{**COLUMNS, "solution_column": "solution"})
    with pytest.raises(ValueError, match="row 1: system_prompt needs a conversational prompt but 'question' is a str"):
        load_prompt_demo_dataset(generic_file, **COLUMNS, system_prompt="x")


# --------------------------------------------------------------------------------------------
# The shipped tiny arithmetic set and its generator
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_splits():
    return {split: load_tiny_math(split) for split in TINY_MATH_SPLITS}


def test_tiny_math_split_sizes_and_schema(tiny_splits):
    assert {split: len(dataset) for split, dataset in tiny_splits.items()} == SPLIT_SIZES
    for split, dataset in tiny_splits.items():
        for row in dataset:
            assert row["ability"] == "math" and row["reward_model"]["style"] == "rule"
            assert row["extra_info"]["split"] == split
            assert [message["role"] for message in row["prompt"]] == ["user"]
            assert len(row["prompt"][0]["content"]) <= 50 and len(row["demo"]) <= 100
            assert row["demo"].startswith("<think>\n")
        assert dataset["extra_info"] == [{"index": i, "split": split} for i in range(len(dataset))]
    with pytest.raises(ValueError, match="unknown tiny_math split 'dev'"):
        load_tiny_math("dev")


def test_tiny_math_splits_do_not_overlap(tiny_splits):
    questions = {split: [prompt[-1]["content"] for prompt in data["prompt"]] for split, data in tiny_splits.items()}
    for split, texts in questions.items():
        assert len(set(texts)) == len(texts), split
    assert not set(questions["train"]) & set(questions["test"])
    assert not set(questions["train"]) & set(questions["ood"])
    assert all("(" in text for text in questions["ood"])
    assert not any("(" in text for text in questions["train"] + questions["test"])


def test_tiny_math_answers_are_boxed_integers_and_correct(tiny_splits):
    for dataset in tiny_splits.values():
        for row in dataset:
            gold = row["solution"]
            assert re.fullmatch(r"0|[1-9][0-9]*", gold)
            thought, solution = row["demo"].split("</think>\n")
            assert solution == "\\boxed{" + gold + "}"
            expression = re.fullmatch(r"Compute (.+)\.", row["prompt"][0]["content"]).group(1)
            assert eval(expression, {"__builtins__": {}}) == int(gold)  # generated text: digits, + - * ( )
            for line in thought.removeprefix("<think>\n").splitlines():
                left, right = line.split("=")
                assert eval(left, {"__builtins__": {}}) == int(right) >= 0
            assert verify(parse("$" + gold + "$"), parse(solution))


def test_tiny_math_through_a_think_template(tiny_splits):
    tok = tokenizer_opening_think("<think>\n")
    dataset = load_tiny_math("test", tokenizer=tok, system_prompt=SRFT_SYSTEM_PROMPT)
    assert len(dataset) == SPLIT_SIZES["test"]
    assert dataset["demo"] == [demo.removeprefix("<think>\n") for demo in tiny_splits["test"]["demo"]]
    assert all(prompt[0]["content"] == SRFT_SYSTEM_PROMPT for prompt in dataset["prompt"])


def test_generator_script_reproduces_shipped_files(tmp_path):
    # Import the script in-process (a subprocess would pay the package import again).
    spec = importlib.util.spec_from_file_location("make_tiny_data", ROOT / "scripts" / "make_tiny_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.write(tmp_path)
    shipped = sorted(path.name for path in SHIPPED.iterdir())
    assert shipped == ["README.md", "ood.jsonl", "test.jsonl", "train.jsonl"]
    assert sorted(path.name for path in tmp_path.iterdir()) == shipped
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_generate_arithmetic_problems_api():
    first = generate_arithmetic_problems(50, seed=3, difficulty="easy")
    assert first == generate_arithmetic_problems(50, seed=3, difficulty="easy")
    assert first != generate_arithmetic_problems(50, seed=4, difficulty="easy")
    assert {question.count(" ") // 2 for question in (p["question"] for p in first)} == {1, 2}

    excluded = {p["question"] for p in first[:10]}
    again = generate_arithmetic_problems(50, seed=3, difficulty="easy", exclude=excluded)
    assert not excluded & {p["question"] for p in again}

    record = to_openr1_record(first[0], index=5, split="pretrain")
    assert record["reward_model"] == {"ground_truth": first[0]["answer"], "style": "rule"}
    assert record["target"] == [{"role": "assistant", "content": first[0]["demo"]}]
    assert record["extra_info"] == {"index": 5, "split": "pretrain"}
