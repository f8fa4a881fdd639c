"""Generating responses to analyse, through `srft_trl.generation` (batched, reproducible from a seed)."""

from __future__ import annotations

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

    Generation is `srft_trl.generation.generate` (batched under `settings.seed`). Each example's
    `meta` keeps the prompt's own metadata plus `prompt_index` and `sample_index`. Special tokens
    are removed from the decoded responses. The global torch RNG is left as it was.
    """
    from ..generation import generate

    settings = settings or GenerationSettings()
    items = [p if isinstance(p, Example) else Example(p) for p in prompts]
    encoded = [encode_prompt(tokenizer, item.prompt, chat) for item in items]
    responses = generate(
        model, tokenizer, encoded, max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
        top_p=settings.top_p, num_samples=settings.num_samples, batch_size=settings.batch_size, seed=settings.seed,
        progress=progress, desc=desc,
    )
    out = []
    for index, (item, texts) in enumerate(zip(items, responses)):
        for sample_index, text in enumerate(texts):
            meta = {**item.meta, "prompt_index": index, "sample_index": sample_index}
            out.append(Example(item.prompt, text, meta))
    return out
