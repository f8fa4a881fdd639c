"""Generating responses to analyse: batched `model.generate`, left-padded, reproducible from a seed."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .scoring import Example, encode_prompt

__all__ = ["GenerationSettings", "generate_responses"]


@dataclass
class GenerationSettings:
    """Sampling settings; the defaults are the paper's evaluation protocol (temperature 0.6, top-p 1.0).

    `temperature=0` is greedy decoding. `num_samples` responses are drawn per prompt.
    """

    max_new_tokens: int = 1024
    temperature: float = 0.6
    top_p: float = 1.0
    num_samples: int = 1
    batch_size: int = 16
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _eos_ids(model, tokenizer) -> list[int]:
    ids: list[int] = []
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        for token in value if isinstance(value, (list, tuple)) else [value]:
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return ids


def generate_responses(
    model,
    tokenizer,
    prompts: Sequence[Example | str | list],
    settings: GenerationSettings | None = None,
    *,
    chat: str = "auto",
    progress: bool = True,
    desc: str = "generating",
) -> list[Example]:
    """Sample `settings.num_samples` responses per prompt; returns one `Example` per response, in prompt order.

    Each example's `meta` keeps the prompt's own metadata plus `prompt_index` and `sample_index`.
    Special tokens are removed from the decoded responses. The global torch RNG is left as it was.
    """
    import torch
    from tqdm.auto import tqdm

    settings = settings or GenerationSettings()
    if settings.temperature <= 0 and settings.num_samples > 1:
        raise ValueError("greedy decoding (temperature 0) gives one response per prompt; set num_samples=1")
    items = [p if isinstance(p, Example) else Example(p) for p in prompts]
    encoded = [encode_prompt(tokenizer, item.prompt, chat) for item in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sample = settings.temperature > 0
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=sample,
        temperature=settings.temperature if sample else None,
        top_p=settings.top_p if sample else None,
        top_k=0 if sample else None,
        min_p=None,
        repetition_penalty=1.0,
        max_new_tokens=settings.max_new_tokens,
        max_length=None,
        num_return_sequences=settings.num_samples,
        pad_token_id=pad,
        eos_token_id=_eos_ids(model, tokenizer),
    )
    device = next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: -len(encoded[i]))
    prompts_per_batch = max(1, settings.batch_size // settings.num_samples)
    responses: dict[int, list[str]] = {}
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(items), desc=desc, unit="prompt", disable=not progress, dynamic_ncols=True, leave=False)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
            torch.manual_seed(settings.seed)
            for start in range(0, len(order), prompts_per_batch):
                batch = order[start : start + prompts_per_batch]
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    input_ids[row, width - len(encoded[index]) :] = torch.tensor(encoded[index])
                    mask[row, width - len(encoded[index]) :] = 1
                output = model.generate(
                    input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=config
                )
                texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
                for row, index in enumerate(batch):
                    responses[index] = texts[row * settings.num_samples : (row + 1) * settings.num_samples]
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    out = []
    for index, item in enumerate(items):
        for sample_index, text in enumerate(responses[index]):
            meta = {**item.meta, "prompt_index": index, "sample_index": sample_index}
            out.append(Example(item.prompt, text, meta))
    return out
