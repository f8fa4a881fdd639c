"""Data loading for SRFT: prompts with a demonstration and a verifiable answer, as TRL rows.

Every loader returns a `datasets.Dataset` whose rows carry

* `prompt`: the prompt, conversational (a list of `{"role", "content"}` messages) or a string,
* a demonstration column (default `demo`): the assistant text SRFT puts into the group,
* a solution column (default `solution`): the ground truth the reward function verifies against,

plus whatever other columns the source had. Three entry points share one code path:

* `load_openr1`: the paper's training set (`Elliott/Openr1-Math-46k-8192`) or any local file of
  its schema (`prompt`, `target`, `reward_model`, ...);
* `load_tiny_math`: the tiny arithmetic set shipped with the package (same schema);
* `load_digit_chains`: the quickstart's digit-chain set shipped with the package (same schema);
* `load_prompt_demo_dataset`: any dataset with prompt / demo / answer columns named by the user.

The problems of the shipped sets are made in `srft_trl.tasks` (`tiny_math.generate_arithmetic_problems`,
`digit_chains`), where the tasks they serve are described.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import datasets

from .files import DATA_FILE_FORMATS, load_data_file

logger = logging.getLogger(__name__)

OPENR1_HUB_ID = "Elliott/Openr1-Math-46k-8192"

# The paper's system instruction (App. B, Fig. A3), verbatim from the paper text, up to
# "**Question:**". The quotes, the literal "\n" and the bold markers are as printed there; the
# Hub dataset ships its own system message, which `load_openr1` keeps unless told otherwise.
SRFT_SYSTEM_PROMPT = (
    "Your task is to follow a systematic, thorough reasoning process before providing the final "
    "solution. This involves analyzing, summarizing, exploring, reassessing, and refining your "
    "thought process through multiple iterations. Structure your response into two sections: "
    "**Thought** and **Solution**.\n\n"
    "In the **Thought** section, present your reasoning using the format: "
    "\u201c<think>\\n {thoughts}</think>\\n\u201d. Each thought should include detailed analysis, "
    "brainstorming, verification, and refinement of ideas.\n\n"
    "After \u201c</think>\\n\u201d in the **Solution** section, provide the final, logical, and "
    "accurate answer, clearly derived from the exploration in the **Thought** section.\n\n"
    "If applicable, include the Answer in `\\boxed{ }` for closed-form results like multiple "
    "choices or mathematical solutions."
)

THINK_TAG = "<think>"
TINY_MATH_SPLITS = ("train", "test", "ood")


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def load_openr1(
    path_or_id: str | os.PathLike = OPENR1_HUB_ID,
    split: str = "train",
    *,
    demo_column: str = "demo",
    solution_column: str = "solution",
    system_prompt: str | None = None,
    tokenizer=None,
    max_demo_tokens: int | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Load a dataset of the OpenR1 schema and return TRL rows with a demo and a solution column.

    Args:
        path_or_id: a Hub dataset id, a local `.json` / `.jsonl` / `.parquet` file, or a directory
            written by `save_to_disk`.
        split: the split to load (Hub datasets, `DatasetDict` directories, data-file folders).
        demo_column: output column for the demonstration, the content of `target[0]`.
        solution_column: output column for the ground truth, `reward_model["ground_truth"]`.
        system_prompt: if given, replaces the prompt's system message (or is inserted as one).
        tokenizer: if given, a leading `<think>` the generation prompt already ends with is
            removed from the demo, so prompt + demo never holds it twice.
        max_demo_tokens: if given, rows whose demo (+ EOS) is longer are dropped
            (see `filter_by_demo_length`; needs `tokenizer`).
        num_proc: processes for `Dataset.map` / `Dataset.filter`.

    The source columns are kept (`target`, `reward_model`, `extra_info`, ...). Malformed rows
    raise a `ValueError` naming the row (counted from 1) and the field.
    """
    dataset = _load_raw(path_or_id, split)
    _require_columns(dataset, ["prompt", "target", "reward_model"], path_or_id)

    def convert(row: dict, index: int) -> dict:
        number = index + 1  # rows counted from 1, as an editor counts the lines of a JSONL file
        return _prepare_row(
            row["prompt"],
            _openr1_demo(row["target"], number),
            _openr1_ground_truth(row["reward_model"], number),
            number,
            demo_column=demo_column,
            solution_column=solution_column,
            system_prompt=system_prompt,
            tokenizer=tokenizer,
        )

    dataset = dataset.map(convert, with_indices=True, num_proc=num_proc, desc="Preparing OpenR1 rows")
    return _maybe_filter(dataset, tokenizer, max_demo_tokens, demo_column, num_proc)


def load_tiny_math(split: str = "train", **kwargs: Any) -> datasets.Dataset:
    """Load the tiny arithmetic set shipped with the package, through `load_openr1`.

    `split` is one of `TINY_MATH_SPLITS`; the keyword arguments are those of `load_openr1`.
    """
    if split not in TINY_MATH_SPLITS:
        raise ValueError(f"unknown tiny_math split {split!r}; choose one of {TINY_MATH_SPLITS}")
    resource = importlib.resources.files("srft_trl") / "resources" / "tiny_math" / f"{split}.jsonl"
    with importlib.resources.as_file(resource) as path:
        return load_openr1(path, **kwargs)


def load_digit_chains(split: str = "train", **kwargs: Any) -> datasets.Dataset:
    """Load the digit-chain set shipped with the package (`srft_trl.tasks.digit_chains`), through
    `load_openr1`: `train` (800 problems with demonstrations), `test` (500 4-5-term chains),
    `test_long` (500 6-term chains)."""
    from .tasks.digit_chains import data_file

    return load_openr1(data_file(split), **kwargs)


SHIPPED_DATASETS = {"tiny_math": load_tiny_math, "digit_chains": load_digit_chains}


def load_prompt_demo_dataset(
    path_or_id: str | os.PathLike,
    *,
    prompt_column: str,
    demo_column: str,
    solution_column: str,
    split: str = "train",
    system_prompt: str | None = None,
    conversational: bool = False,
    tokenizer=None,
    max_demo_tokens: int | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Load any dataset with a prompt, a demonstration and an answer column, as TRL rows.

    The prompt column is renamed to `prompt` (what TRL expects); the demo and solution columns
    keep their names (point the trainer and the reward function at them). A string prompt stays a
    string unless `conversational=True`, which turns it into a user message; `system_prompt`
    needs conversational prompts. `tokenizer`, `max_demo_tokens` and `num_proc` are as in
    `load_openr1`.
    """
    dataset = _load_raw(path_or_id, split)
    _require_columns(dataset, [prompt_column, demo_column, solution_column], path_or_id)

    def convert(row: dict, index: int) -> dict:
        prompt = row[prompt_column]
        if conversational and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return _prepare_row(
            prompt,
            row[demo_column],
            row[solution_column],
            index + 1,  # rows counted from 1, as an editor counts the lines of a JSONL file
            demo_column=demo_column,
            solution_column=solution_column,
            system_prompt=system_prompt,
            tokenizer=tokenizer,
            prompt_field=prompt_column,
        )

    remove = [prompt_column] if prompt_column != "prompt" else None
    dataset = dataset.map(
        convert, with_indices=True, remove_columns=remove, num_proc=num_proc, desc="Preparing rows"
    )
    return _maybe_filter(dataset, tokenizer, max_demo_tokens, demo_column, num_proc)


def filter_by_demo_length(
    dataset: datasets.Dataset,
    tokenizer,
    max_tokens: int,
    demo_column: str = "demo",
    num_proc: int | None = None,
) -> tuple[datasets.Dataset, int]:
    """Drop rows whose demo is longer than `max_tokens` tokens; return (dataset, number dropped).

    The demo is tokenised without special tokens and counted with one extra token for the EOS
    the trainer appends to it.
    """

    def fits(batch: dict) -> list[bool]:
        ids = tokenizer(batch[demo_column], add_special_tokens=False)["input_ids"]
        return [len(row_ids) + 1 <= max_tokens for row_ids in ids]

    filtered = dataset.filter(fits, batched=True, num_proc=num_proc, desc="Filtering demo length")
    dropped = len(dataset) - len(filtered)
    logger.info(
        "filter_by_demo_length: dropped %d of %d rows (demo + EOS > %d tokens)", dropped, len(dataset), max_tokens
    )
    return filtered, dropped


# --------------------------------------------------------------------------------------------
# Loader internals
# --------------------------------------------------------------------------------------------


def _load_raw(path_or_id: str | os.PathLike, split: str) -> datasets.Dataset:
    """Load one split from a local file, a `save_to_disk` directory, a data folder or the Hub."""
    path = Path(path_or_id)
    if path.is_file():
        return load_data_file(path)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise ValueError(f"split {split!r} not in {path}; available splits: {list(loaded)}")
                return loaded[split]
            return loaded
        return datasets.load_dataset(str(path), split=split)
    if path.suffix.lower() in DATA_FILE_FORMATS:
        raise FileNotFoundError(f"{path}: no such file")
    return datasets.load_dataset(str(path_or_id), split=split)


class MissingColumnsError(ValueError):
    """A data set lacks columns its format needs."""


def _require_columns(dataset: datasets.Dataset, columns: Iterable[str], source: Any) -> None:
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise MissingColumnsError(
            f"{source}: missing column(s) {missing}; available columns: {dataset.column_names}"
        )


def _openr1_demo(target: Any, index: int) -> str:
    """The demonstration of an OpenR1 row: the content of its single assistant `target` message."""
    if target is None:
        raise ValueError(f"row {index}: 'target' is missing")
    if not isinstance(target, list) or not target:
        raise ValueError(f"row {index}: 'target' must be a non-empty list of messages, got {target!r}")
    message = target[0]
    if not isinstance(message, dict) or "content" not in message:
        raise ValueError(f"row {index}: 'target[0]' must be a message with a 'content' field, got {message!r}")
    return _check_text(message["content"], index, "target[0]['content']")


def _openr1_ground_truth(reward_model: Any, index: int) -> str:
    if not isinstance(reward_model, dict):
        raise ValueError(f"row {index}: 'reward_model' must be a dict with 'ground_truth', got {reward_model!r}")
    return _answer_text(reward_model.get("ground_truth"), index, "reward_model['ground_truth']")


def _prepare_row(
    prompt: Any,
    demo: Any,
    solution: Any,
    index: int,
    *,
    demo_column: str,
    solution_column: str,
    system_prompt: str | None,
    tokenizer,
    prompt_field: str = "prompt",
) -> dict:
    """Validate one row and return its `prompt`, demo and solution columns."""
    prompt = _check_prompt(prompt, index, prompt_field)
    if system_prompt is not None:
        if isinstance(prompt, str):
            raise ValueError(
                f"row {index}: system_prompt needs a conversational prompt but '{prompt_field}' is a "
                "string; pass conversational=True"
            )
        prompt = [{"role": "system", "content": system_prompt}] + [m for m in prompt if m["role"] != "system"]
    demo = _check_text(demo, index, demo_column)
    if tokenizer is not None:
        demo = _strip_think_prefix(demo, _generation_prompt(tokenizer, prompt))
    return {
        "prompt": prompt,
        demo_column: demo,
        solution_column: _answer_text(solution, index, solution_column),
    }


def _check_prompt(prompt: Any, index: int, field: str) -> str | list[dict]:
    if isinstance(prompt, str):
        return _check_text(prompt, index, field)
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(
            f"row {index}: '{field}' must be a string or a non-empty list of messages, got {prompt!r}"
        )
    for position, message in enumerate(prompt):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"row {index}: '{field}[{position}]' must be a message with a string 'role'")
        _check_text(message.get("content"), index, f"{field}[{position}]['content']")
    return prompt


def _check_text(value: Any, index: int, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"row {index}: '{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"row {index}: '{field}' is empty")
    return value


def _answer_text(value: Any, index: int, field: str) -> str:
    """The ground truth as a string; plain numbers (as JSON may type them) are accepted."""
    if value is None:
        raise ValueError(f"row {index}: '{field}' is missing")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return _check_text(value, index, field)


def _generation_prompt(tokenizer, prompt: str | list[dict]) -> str:
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def _strip_think_prefix(demo: str, generation_prompt: str) -> str:
    """Drop the demo's leading `<think>` (and its newline) when the generation prompt ends with it."""
    if generation_prompt.endswith(THINK_TAG + "\n") and demo.startswith(THINK_TAG + "\n"):
        return demo[len(THINK_TAG) + 1 :]
    if generation_prompt.rstrip("\n").endswith(THINK_TAG) and demo.startswith(THINK_TAG):
        return demo[len(THINK_TAG) :]
    return demo


def _maybe_filter(dataset, tokenizer, max_demo_tokens, demo_column, num_proc) -> datasets.Dataset:
    if max_demo_tokens is None:
        return dataset
    if tokenizer is None:
        raise ValueError("max_demo_tokens needs a tokenizer")
    dataset, _ = filter_by_demo_length(dataset, tokenizer, max_demo_tokens, demo_column, num_proc=num_proc)
    return dataset


# --------------------------------------------------------------------------------------------
# A recipe's data: the splits it names, filtered once before training
# --------------------------------------------------------------------------------------------


def resolve_system_prompt(choice: str) -> str | None:
    """`srft` -> the paper's instruction; `none` -> None (prompts as in the dataset); else the text."""
    if choice == "srft":
        return SRFT_SYSTEM_PROMPT
    if choice == "none":
        return None
    return choice


def load_split(script, split: str, tokenizer, demo_column: str = "demo"):
    """One split as TRL rows: `prompt`, the demonstration in `demo_column`, the answer in `solution`."""
    system_prompt = resolve_system_prompt(script.system_prompt)
    common = dict(system_prompt=system_prompt, tokenizer=tokenizer)
    name = script.dataset_name
    if name in SHIPPED_DATASETS:
        return SHIPPED_DATASETS[name](split, demo_column=demo_column, solution_column="solution", **common)
    if script.dataset_format == "openr1":
        source = OPENR1_HUB_ID if name == "openr1" else name
        try:
            return load_openr1(source, split, demo_column=demo_column, solution_column="solution", **common)
        except MissingColumnsError as error:
            raise MissingColumnsError(
                f"{error}. dataset_format: openr1 (the default) reads the OpenR1 schema (prompt, target, "
                "reward_model); for a file with prompt / demo / solution columns set dataset_format: columns"
            ) from None
    dataset = load_prompt_demo_dataset(
        name,
        prompt_column=script.dataset_prompt_column,
        demo_column=script.dataset_demo_column,
        solution_column=script.dataset_solution_column,
        split=split,
        conversational=system_prompt is not None,
        **common,
    )
    renames = {script.dataset_demo_column: demo_column, script.dataset_solution_column: "solution"}
    renames = {old: new for old, new in renames.items() if old != new}
    clashes = [new for new in renames.values() if new in dataset.column_names]
    if clashes:
        dataset = dataset.remove_columns(clashes)
    return dataset.rename_columns(renames) if renames else dataset


def filter_prompt_length(dataset, tokenizer, max_tokens: int):
    """Drop rows whose chat-formatted prompt is longer than `max_tokens`; return (dataset, dropped)."""

    def length(prompt) -> int:
        if isinstance(prompt, str):
            return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        encoded = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
        return len(encoded["input_ids"])

    def fits(batch):
        return [length(prompt) <= max_tokens for prompt in batch["prompt"]]

    filtered = dataset.filter(fits, batched=True, desc="Filtering prompt length")
    return filtered, len(dataset) - len(filtered)


def build_datasets(script, training, tokenizer, demo_column: str = "demo", log=print):
    """The training split (filtered by demo and prompt length, with counts) and the held-out split."""
    with training.main_process_first(desc="loading the dataset"):
        train = load_split(script, script.dataset_train_split, tokenizer, demo_column)
        total = len(train)
        if script.max_demo_tokens is not None:
            train, dropped = filter_by_demo_length(train, tokenizer, script.max_demo_tokens, demo_column)
            log(f"max_demo_tokens={script.max_demo_tokens}: dropped {dropped} of {total} rows")
        if script.max_prompt_tokens is not None:
            before = len(train)
            train, dropped = filter_prompt_length(train, tokenizer, script.max_prompt_tokens)
            log(f"max_prompt_tokens={script.max_prompt_tokens}: dropped {dropped} of {before} rows")
        heldout = load_split(script, script.eval_split, tokenizer, demo_column) if script.eval_split else None
    if len(train) == 0:
        raise ValueError("no training rows left after filtering.")
    return train, heldout


def to_sft_rows(dataset, demo_column: str = "demo"):
    """Prompt-completion rows for TRL's `SFTTrainer` (loss on the demonstration only)."""

    def convert(row):
        completion = row[demo_column]
        if not isinstance(row["prompt"], str):
            completion = [{"role": "assistant", "content": completion}]
        return {"prompt": row["prompt"], "completion": completion}

    return dataset.map(convert, remove_columns=dataset.column_names, desc="Prompt-completion rows")
