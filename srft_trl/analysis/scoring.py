"""Batched, memory-aware scoring: the log-probability a causal LM assigns to each token of given responses.

For a prompt x and a response y = (y_1, ..., y_T), `score_encoded` returns, per response token,

    log p_M(y_t | x, y_<t)          and, optionally, the entropy  H_t = -sum_v p_M(v | x, y_<t) log p_M(v | x, y_<t)

of model M. The prompt and the response are tokenised separately and concatenated (as TRL does for
prompt and completion), so the response tokens are exactly `tokenizer(response)` and two models
with one tokenizer score the same tokens.

Memory: examples are sorted by length and packed into micro-batches of at most `batch_size`
sequences and `max_batch_tokens` padded tokens. Sequences are left-padded, so every response ends
at the last position and the model is asked only for the logits of the last K+1 positions
(`logits_to_keep`, K the longest response in the micro-batch); the log-softmax is then taken one
row at a time and reduced to the gathered token. No vocabulary-sized tensor outlives its
micro-batch, and none covers prompt positions when the model supports `logits_to_keep`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EncodedExample",
    "as_examples",
    "Example",
    "TokenScores",
    "encode_examples",
    "encode_prompt",
    "load_examples",
    "plan_batches",
    "render_prompt",
    "score_encoded",
    "score_examples",
]

CHAT_MODES = ("auto", "always", "never")
_ROW_CHUNK = 1024  # positions per float32 log-softmax: bounds the transient copy to 1024 x vocabulary


def _concat(parts) -> np.ndarray:
    import torch

    return (torch.cat(parts) if parts else torch.zeros(0)).numpy().astype(np.float32)


@dataclass
class Example:
    """A prompt (a string, or a list of chat messages) and, once known, a response string."""

    prompt: str | list[dict[str, Any]]
    response: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {**self.meta, "prompt": self.prompt, "response": self.response}


@dataclass
class EncodedExample:
    """Token ids of one example under one tokenizer; `pieces[i]` is the response text of token i (for display)."""

    prompt_ids: list[int]
    response_ids: list[int]
    pieces: list[str] | None = None
    truncated: bool = False


@dataclass
class TokenScores:
    """Per response token: its id, `log p(y_t | x, y_<t)`, and (when asked for) the next-token entropy there."""

    token_ids: np.ndarray
    logprobs: np.ndarray
    entropies: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.logprobs.astype(np.float64))

    def __len__(self) -> int:
        return len(self.token_ids)


def _response_text(value: Any) -> str:
    # TRL's conversational completion: [{"role": "assistant", "content": ...}]
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    if not isinstance(value, str):
        raise ValueError(f"a response must be a string or a list of messages, got {type(value).__name__}")
    return value


def _check_prompt(prompt: Any, where: str) -> None:
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        return
    raise ValueError(f"{where}: 'prompt' must be a string or a list of {{'role', 'content'}} messages")


def example_from_record(record: dict[str, Any], where: str = "record", require_response: bool = True) -> Example:
    """An `Example` from one JSON record (the format `load_examples` reads)."""
    if "prompt" not in record:
        raise ValueError(f"{where}: no 'prompt'")
    _check_prompt(record["prompt"], where)
    response = record.get("response", record.get("completion"))
    if response is None and require_response:
        raise ValueError(f"{where}: no 'response'")
    meta = {k: v for k, v in record.items() if k not in ("prompt", "response", "completion")}
    return Example(record["prompt"], _response_text(response) if response is not None else None, meta)


def load_examples(path, *, require_response: bool = True) -> list[Example]:
    """Read examples from a JSONL (or JSON list) file.

    Each record has `"prompt"` (a string, or chat messages `[{"role": ..., "content": ...}]`) and,
    for a responses file, `"response"` (a string; TRL's `"completion"`, a string or assistant
    messages, is read as well). Other fields are kept in `Example.meta` and written back out.
    """
    from .files import read_records

    examples = [
        example_from_record(record, f"{path}: record {number}", require_response)
        for number, record in enumerate(read_records(path), start=1)
    ]
    if not examples:
        raise ValueError(f"{path}: no records")
    return examples


def as_examples(value, *, require_response: bool = True) -> list[Example]:
    """Examples from a JSONL path, or a sequence of `Example`s, records (dicts) or bare prompts."""
    if isinstance(value, (str, os.PathLike)):
        return load_examples(value, require_response=require_response)
    out = []
    for number, item in enumerate(value, start=1):
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, dict):
            out.append(example_from_record(item, f"example {number}", require_response))
        else:
            _check_prompt(item, f"example {number}")
            if require_response:
                raise ValueError(f"example {number}: no response")
            out.append(Example(item))
    return out


def render_prompt(tokenizer, prompt: str | list[dict], chat: str = "auto") -> tuple[str, bool]:
    """The prompt as text, and whether it came from the chat template.

    `chat="auto"`: messages go through the tokenizer's chat template (with the generation prompt),
    a string is used as it is; `"always"`: a string is first wrapped as one user message;
    `"never"`: strings only.
    """
    if chat not in CHAT_MODES:
        raise ValueError(f"chat must be one of {CHAT_MODES}, got {chat!r}")
    if isinstance(prompt, str) and chat != "always":
        return prompt, False
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if chat == "never":
        raise ValueError("chat='never' but the prompt is a list of messages")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the prompt is a list of messages but the tokenizer has no chat template")
    from ..generation import render_prompt as render_messages

    return render_messages(tokenizer, prompt), True


def encode_prompt(tokenizer, prompt, chat: str = "auto") -> list[int]:
    """Token ids of the rendered prompt (`render_prompt`); never empty, so the first response token has a context."""
    text, templated = render_prompt(tokenizer, prompt, chat)
    # A chat template writes its own BOS; a raw prompt gets the tokenizer's special tokens, minus a trailing EOS.
    ids = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    if (
        not templated
        and ids
        and tokenizer.eos_token_id is not None
        and ids[-1] == tokenizer.eos_token_id
        and not text.endswith(str(tokenizer.eos_token))
    ):
        ids = ids[:-1]
    if not ids:  # the first response token needs a context; use the model's start-of-text token
        start = next(
            (t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None), None
        )
        if start is None:
            raise ValueError("empty prompt and the tokenizer has no BOS/EOS/PAD token to start from")
        ids = [start]
    return list(ids)


def _encode_response(tokenizer, response: str, with_pieces: bool) -> tuple[list[int], list[str] | None]:
    if not with_pieces:
        return list(tokenizer(response, add_special_tokens=False)["input_ids"]), None
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
        ids, pieces, end = list(encoded["input_ids"]), [], 0
        for _, stop in encoded["offset_mapping"]:
            # Each character goes to the first token that reaches it: byte tokens inside one character
            # get "" and gaps the offsets skip (e.g. SentencePiece's leading space) go to the next token.
            pieces.append(response[end:stop] if stop > end else "")
            end = max(end, stop)
        if pieces:
            pieces[-1] += response[end:]
        return ids, pieces
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return ids, [tokenizer.decode([i]) for i in ids]


def encode_examples(
    tokenizer,
    examples: Sequence[Example],
    *,
    chat: str = "auto",
    max_length: int | None = None,
    with_pieces: bool = False,
) -> list[EncodedExample]:
    """Tokenise prompt and response separately; a pair longer than `max_length` loses the end of its response."""
    encoded = []
    for example in examples:
        if example.response is None:
            raise ValueError("an example to score has no response")
        prompt_ids = encode_prompt(tokenizer, example.prompt, chat)
        response_ids, pieces = _encode_response(tokenizer, example.response, with_pieces)
        truncated = False
        if max_length is not None and len(prompt_ids) + len(response_ids) > max_length:
            keep = max(0, max_length - len(prompt_ids))
            response_ids, truncated = response_ids[:keep], True
            pieces = pieces[:keep] if pieces is not None else None
        encoded.append(EncodedExample(prompt_ids, response_ids, pieces, truncated))
    return encoded


def plan_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group indices into micro-batches, longest first: at most `batch_size` rows and `max_batch_tokens` padded tokens.

    A sequence longer than `max_batch_tokens` gets a micro-batch of its own.
    """
    if batch_size < 1 or max_batch_tokens < 1:
        raise ValueError("batch_size and max_batch_tokens must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches:
            batch = batches[-1]
            width = lengths[batch[0]]  # the longest of the batch: it came first
            if len(batch) < batch_size and (len(batch) + 1) * width <= max_batch_tokens:
                batch.append(index)
                continue
        batches.append([index])
    return batches


def _forward_arguments(model) -> set[str]:
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    parameters = inspect.signature(target.forward).parameters
    return set(parameters)


def _max_length(model) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def score_encoded(
    model,
    encoded: Sequence[EncodedExample],
    *,
    batch_size: int = 16,
    max_batch_tokens: int = 8192,
    with_entropy: bool = False,
    pad_token_id: int = 0,
    progress: bool = True,
    desc: str = "scoring",
) -> list[TokenScores]:
    """Score encoded examples with `model` (see the module docstring); results come back in input order."""
    import torch
    from tqdm.auto import tqdm

    accepted = _forward_arguments(model)
    keep_arg = (
        "logits_to_keep"
        if "logits_to_keep" in accepted
        else "num_logits_to_keep"
        if "num_logits_to_keep" in accepted
        else None
    )
    pass_positions = "position_ids" in accepted
    device = next(model.parameters()).device
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in encoded]
    results: list[TokenScores | None] = [None] * len(encoded)
    bar = tqdm(total=len(encoded), desc=desc, unit="resp", disable=not progress, dynamic_ncols=True, leave=False)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in plan_batches(lengths, batch_size, max_batch_tokens):
                width = lengths[batch[0]]
                keep = max(len(encoded[i].response_ids) for i in batch)
                if keep == 0:  # nothing to score in this micro-batch
                    for index in batch:
                        results[index] = TokenScores(
                            np.zeros(0, np.int64),
                            np.zeros(0, np.float32),
                            np.zeros(0, np.float32) if with_entropy else None,
                        )
                    bar.update(len(batch))
                    continue
                input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids = encoded[index].prompt_ids + encoded[index].response_ids
                    input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                    mask[row, width - len(ids) :] = 1
                kwargs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "use_cache": False}
                if pass_positions:  # left padding: positions count real tokens only
                    kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
                if keep_arg:
                    kwargs[keep_arg] = keep + 1
                logits = model(**kwargs).logits[:, -(keep + 1) : -1]  # the K positions that predict response tokens
                targets = input_ids[:, width - keep :].to(device)
                for row, index in enumerate(batch):
                    count = len(encoded[index].response_ids)
                    logprobs, entropies = [], []
                    for start in range(keep - count, keep, _ROW_CHUNK):
                        chunk = logits[row, start : start + _ROW_CHUNK].float()
                        normaliser = torch.logsumexp(chunk, dim=-1)
                        chosen = chunk.gather(-1, targets[row, start : start + _ROW_CHUNK].unsqueeze(-1)).squeeze(-1)
                        logprobs.append((chosen - normaliser).cpu())
                        if with_entropy:
                            entropies.append((normaliser - (torch.softmax(chunk, dim=-1) * chunk).sum(-1)).cpu())
                        del chunk
                    results[index] = TokenScores(
                        np.asarray(encoded[index].response_ids, dtype=np.int64),
                        _concat(logprobs),
                        _concat(entropies) if with_entropy else None,
                    )
                del logits
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return results  # type: ignore[return-value]


def score_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    *,
    chat: str = "auto",
    max_length: int | None = None,
    with_pieces: bool = False,
    **score_kwargs,
) -> tuple[list[EncodedExample], list[TokenScores]]:
    """Encode `examples` with `tokenizer` and score them with `model`; returns the encodings and the scores.

    `max_length` defaults to the model's `max_position_embeddings`. Other keyword arguments go to
    `score_encoded`.
    """
    encoded = encode_examples(
        tokenizer, examples, chat=chat, max_length=max_length or _max_length(model), with_pieces=with_pieces
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    return encoded, score_encoded(model, encoded, pad_token_id=pad, **score_kwargs)
