"""Sampling responses with transformers `generate`: the one generation path of srft-trl.

Used by the held-out check of `srft-trl train`, the transformers backend of `srft-trl eval`, the
analysis toolkit, the notebooks and the benchmarks. Sampling follows the evaluation protocol
(paper Sec. 5.1): temperature and top-p only; no top-k, min-p or repetition penalty, whatever a
checkpoint's `generation_config.json` carries; greedy when the temperature is 0.

Two ways to seed:

* `seed` (default): prompts are batched (left padding, longest first, `batch_size` sequences per
  `generate` call) under one private RNG stream: fast, and reproducible for the same prompts.
* `seeds` (one per prompt): each prompt is generated on its own under its own stream, so its
  samples do not depend on which other prompts share the call (what the eval cache needs).

Both leave the caller's global RNG (a training run's) as it was, and the model in the mode it was in.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

__all__ = [
    "eos_token_ids", "generation_config", "render_prompt", "generate", "heldout_responses", "accuracy_of",
    "heldout_accuracy",
]


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every end-of-sequence id the checkpoint's generation config or the tokenizer names, once each."""
    ids: list[int] = []
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        for token in value if isinstance(value, (list, tuple)) else [value]:
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return ids


def pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generation_config(model, tokenizer, *, temperature: float, max_new_tokens: int, top_p: float = 1.0,
                      num_return_sequences: int = 1):
    """The model's generation config with exactly the protocol's settings (see the module docstring)."""
    sample = temperature > 0
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=0 if sample else None,
        min_p=None,
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        max_length=None,
        num_return_sequences=num_return_sequences,
        use_cache=True,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_id=eos_token_ids(model, tokenizer),
    )
    return config


def render_prompt(tokenizer, prompt: str | list[dict]) -> str:
    """A prompt as the model sees it: text as is, a message list through the chat template with
    the generation prompt appended."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def _token_ids(tokenizer, prompt: str | Sequence[int]) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return list(prompt)


def generate(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    num_samples: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    desc: str = "generating",
    synced_gpus: bool = False,
) -> list[list[str]]:
    """`num_samples` responses per prompt (rendered text or token ids), special tokens removed.

    `batch_size` is the most sequences per `generate` call. Without `seeds`, prompts are batched
    under `seed`; with `seeds` (one per prompt), each prompt is generated alone under its own.
    `synced_gpus`: every process of a sharded model (FSDP, ZeRO-3) keeps stepping until all are done, as
    each forward pass gathers parameters collectively (transformers' `generate(synced_gpus=True)`); every
    process must then call with the same prompts.
    """
    import torch
    from tqdm.auto import tqdm

    if temperature <= 0 and num_samples > 1:
        raise ValueError("greedy decoding (temperature 0) gives one response per prompt; set num_samples=1")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
    encoded = [_token_ids(tokenizer, p) for p in prompts]
    device = next(model.parameters()).device
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    pad = pad_token_id(tokenizer)
    responses: list[list[str]] = [[] for _ in prompts]

    configs: dict[int, Any] = {}  # one generation config per number of return sequences

    def run(batch: list[int], count: int) -> list[str]:
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            input_ids[row, width - len(encoded[index]) :] = torch.tensor(encoded[index], dtype=torch.long)
            mask[row, width - len(encoded[index]) :] = 1
        if count not in configs:
            configs[count] = generation_config(model, tokenizer, temperature=temperature, top_p=top_p,
                                               max_new_tokens=max_new_tokens, num_return_sequences=count)
        output = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                generation_config=configs[count], synced_gpus=synced_gpus)
        return tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)

    was_training = model.training
    model.eval()
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress, dynamic_ncols=True, leave=False)
    try:
        with torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
            if seeds is None:
                torch.manual_seed(seed)
                order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # less padding per call
                per_call = max(1, batch_size // num_samples)
                for start in range(0, len(order), per_call):
                    batch = order[start : start + per_call]
                    texts = run(batch, num_samples)
                    for row, index in enumerate(batch):
                        responses[index] = texts[row * num_samples : (row + 1) * num_samples]
                    bar.update(len(batch))
            else:
                for index, prompt_seed in enumerate(seeds):
                    torch.manual_seed(prompt_seed)
                    while len(responses[index]) < num_samples:
                        responses[index] += run([index], min(batch_size, num_samples - len(responses[index])))
                    bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return responses


def heldout_responses(model, tokenizer, dataset, *, max_new_tokens: int, temperature: float = 0.6,
                      batch_size: int = 64, seed: int = 0, synced_gpus: bool = False) -> list[str]:
    """One response per `dataset` row, to the row's own `prompt` (with the system prompt the model
    is trained with)."""
    prompts = [render_prompt(tokenizer, p) for p in dataset["prompt"]]
    responses = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                         batch_size=batch_size, seed=seed, synced_gpus=synced_gpus)
    return [samples[0] for samples in responses]


def accuracy_of(responses: Sequence[str], solutions: Sequence[str], grader: str = "oat") -> float:
    """Fraction of `responses` that `grader` finds equal to their solution.

    `grader` is `oat` (the OAT-style grader the paper reports its final numbers with, Sec. 5.1) or
    `math_verify` (Math-Verify alone, the training reward's verdict). A response must close its
    reasoning with `</think>`. Grading runs in bounded worker processes (`srft_trl.grading.grade_batch`).
    """
    from .grading import GRADERS, grade_batch

    if grader not in GRADERS:
        raise ValueError(f"grader={grader!r} must be one of {list(GRADERS)}")
    verdicts = grade_batch([("math", [r], gold, None) for r, gold in zip(responses, solutions)], require_think=True)
    return sum(bool(v[grader]) for (v,) in verdicts) / max(len(verdicts), 1)


def heldout_accuracy(model, tokenizer, dataset, *, max_new_tokens: int, grader: str = "oat", temperature: float = 0.6,
                     batch_size: int = 64, seed: int = 0, synced_gpus: bool = False) -> float:
    """Fraction of `dataset` rows (`prompt`, `solution`) answered correctly according to `grader`
    (`heldout_responses` graded by `accuracy_of`)."""
    responses = heldout_responses(model, tokenizer, dataset, max_new_tokens=max_new_tokens, temperature=temperature,
                                  batch_size=batch_size, seed=seed, synced_gpus=synced_gpus)
    return accuracy_of(responses, dataset["solution"], grader)
