"""Demonstrations in rollout groups: which slots they take, how they are tokenised, how rows are checked.

Kept apart from the trainer so each rule can be read and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

# Status of a demonstration slot. Dropped slots keep their place in the group (shapes stay fixed)
# but carry no loss and no reward.
OK, TRUNCATED, DROPPED_MISSING, DROPPED_OVERLENGTH = "ok", "truncated", "dropped_missing", "dropped_overlength"


def demo_slot_mask(num_rows: int, first_row: int, num_generations: int, num_demos: int) -> list[bool]:
    """Which of `num_rows` consecutive rows, starting at global row `first_row`, are demonstration slots.

    The sampler lays each prompt out `num_generations` times in a row, so global row `g` is slot
    `g % num_generations` of its group. Demonstration slots are spread evenly over the group
    (Bresenham: slot `s` is a demo when `floor((s + 1) d / G) > floor(s d / G)`), which puts exactly
    `num_demos` in every group *and* the same number in every process's contiguous share of the
    batch whenever `rows_per_process * num_demos` is divisible by `num_generations`. Equal per-process
    counts are what TRL's collectives (and vLLM server mode's `prompts[::n]` de-duplication) need.
    """
    mask = []
    for row in range(first_row, first_row + num_rows):
        slot = row % num_generations
        mask.append((slot + 1) * num_demos // num_generations > slot * num_demos // num_generations)
    return mask


def demo_text(value) -> str | None:
    """The demonstration as text: a string, or the content of the last message of a message list.

    Returns None for a missing demonstration; raises `TypeError` for a value of another type (map-style
    datasets are checked up front by `validate_rows`; rows of an iterable dataset are checked here).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[-1], dict):
        content = value[-1].get("content")
        if content is None or isinstance(content, str):
            return content
    raise TypeError(f"A demonstration must be a string or a list of messages, got {_preview(value)}.")


@dataclass
class DemoSlot:
    """A demonstration ready to be spliced into a group."""

    text: str  # what the reward functions score (the full demonstration)
    ids: list[int]  # what the loss trains on
    status: str  # OK, TRUNCATED, DROPPED_MISSING or DROPPED_OVERLENGTH

    @property
    def dropped(self) -> bool:
        return self.status in (DROPPED_MISSING, DROPPED_OVERLENGTH)


def tokenize_demo(value, tokenizer, *, eos_token_ids: list[int], max_length: int, overlength: str) -> DemoSlot:
    """Tokenise one demonstration as LUFFY does: no special tokens, then the tokenizer's EOS appended.

    EOS is not appended twice when the text already ends with an EOS token (e.g. `<|im_end|>`).
    A missing or empty demonstration, or one longer than `max_length` with `overlength="drop"`, is
    dropped; the returned slot then holds a single EOS token as a placeholder completion.
    """
    eos = tokenizer.eos_token_id
    text = demo_text(value)
    if text is None or not text.strip():
        return DemoSlot(text="", ids=[eos], status=DROPPED_MISSING)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids or ids[-1] not in eos_token_ids:
        ids = ids + [eos]
    if len(ids) <= max_length:
        return DemoSlot(text=text, ids=ids, status=OK)
    if overlength == "truncate":
        return DemoSlot(text=text, ids=ids[:max_length], status=TRUNCATED)
    return DemoSlot(text=text, ids=[eos], status=DROPPED_OVERLENGTH)


def validate_rows(dataset, *, demo_column: str, conversational: bool | None = None, max_rows: int | None = None):
    """Check the prompt and demonstration columns of a map-style dataset before training starts.

    Raises a `ValueError` naming the first bad row and field. Missing or empty demonstrations are
    allowed (their slot is dropped, see `SRFTConfig.demo_overlength`); the number of such rows is
    returned so the caller can report it.
    """
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        for column in ("prompt", demo_column):
            if column not in columns and column == demo_column:
                raise ValueError(
                    f"The training dataset has no {column!r} column (columns: {columns}): SRFT puts a demonstration "
                    f"from it into every group. Add your demonstrations as a {column!r} column (or name your column "
                    "with SRFTConfig(demo_column=...)), or pass args=SRFTConfig(method=\"grpo\") to train exactly as "
                    "GRPOTrainer does, without demonstrations."
                )
            if column not in columns:
                raise ValueError(
                    f"The training dataset has no {column!r} column (columns: {columns}). SRFTTrainer needs a "
                    f"'prompt' column and the demonstration column named by SRFTConfig.demo_column={demo_column!r}."
                )
    prompts = dataset["prompt"] if columns is not None else [row["prompt"] for row in dataset]
    demos = dataset[demo_column] if columns is not None else [row[demo_column] for row in dataset]
    missing = 0
    for index, (prompt, demo) in enumerate(zip(prompts, demos)):
        if max_rows is not None and index >= max_rows:
            break
        _check_prompt(index, prompt)
        if demo is None or (isinstance(demo, str) and not demo.strip()):
            missing += 1
            continue
        if isinstance(demo, str):
            continue
        if isinstance(demo, (list, tuple)):
            if not demo or not all(isinstance(m, dict) for m in demo):
                raise ValueError(
                    f"dataset[{index}]: field {demo_column!r} must be a string or a non-empty list of message dicts, "
                    f"got {_preview(demo)}."
                )
            last = demo[-1]
            if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
                raise ValueError(
                    f"dataset[{index}]: field {demo_column!r} must end with an assistant message whose 'content' is a "
                    f"string, got {_preview(last)}."
                )
            if not last["content"].strip():
                missing += 1
            continue
        raise ValueError(
            f"dataset[{index}]: field {demo_column!r} must be a string or a list of messages, got "
            f"{type(demo).__name__}: {_preview(demo)}."
        )
    return missing


def _check_prompt(index: int, prompt) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(f"dataset[{index}]: field 'prompt' is empty.")
        return
    if isinstance(prompt, (list, tuple)) and prompt:
        for message in prompt:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise ValueError(
                    f"dataset[{index}]: field 'prompt' must be a string or a list of {{'role', 'content'}} messages, "
                    f"got {_preview(message)}."
                )
        return
    raise ValueError(
        f"dataset[{index}]: field 'prompt' must be a non-empty string or list of messages, got "
        f"{type(prompt).__name__}: {_preview(prompt)}."
    )


def _preview(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
