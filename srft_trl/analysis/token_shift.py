"""Token probability shift between a base model and fine-tuned models (Sec. 3.1.1, Fig. 2 and A1 of the paper).

For a prompt x and a response y = (y_1, ..., y_T), the shift of token t is

    Δp_t = p_tuned(y_t | x, y_<t) − p_base(y_t | x, y_<t),

the change in the probability of the token actually in the response, given the same context. It
lies in [−1, 1]; it is 0 for every token when the two models are the same. The summary numbers are
taken over all response tokens of all responses (token-weighted) unless named `per_response`:

* `frac_changed`: the fraction of tokens with |Δp_t| > `threshold` (also `frac_changed_at` for a
  few fixed thresholds, and `frac_increased` / `frac_decreased` for Δp_t > threshold / < −threshold);
* `mean_abs_delta`: the mean of |Δp_t|; `mean_delta`, `median_abs_delta`, `rms_delta`, quantiles;
* `histogram`: counts of Δp_t in 80 equal bins on [−1, 1] (the data of Fig. 2b);
* `base_entropy_changed` / `_unchanged`: the mean entropy of the base model's next-token
  distribution at tokens that moved more / not more than the threshold (App. A.2: RL mostly
  moves high-entropy tokens).

Responses are supplied (JSONL of `{"prompt", "response"}`) or generated from prompts by the base
model or by each tuned model. Both models must tokenise the responses identically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write_json, atomic_write_jsonl, slugify, unique_labels
from .generation import GenerationSettings, generate_responses
from .models import ModelRef, loaded, model_label
from .scoring import EncodedExample, Example, TokenScores, as_examples, score_examples

__all__ = ["ResponseShift", "ShiftComparison", "TokenShiftResult", "shift_summary", "token_shift"]

FIXED_THRESHOLDS = (0.01, 0.05, 0.1, 0.2, 0.5)
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 80


@dataclass
class ResponseShift:
    """One response: its tokens (`pieces`, the text of each token), and both models' probabilities of them."""

    index: int
    prompt: Any
    response: str
    token_ids: np.ndarray
    pieces: list[str]
    p_base: np.ndarray
    p_tuned: np.ndarray
    base_entropy: np.ndarray | None = None
    truncated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> np.ndarray:
        return self.p_tuned - self.p_base

    def record(self, threshold: float) -> dict[str, Any]:
        delta = self.delta
        return {
            "index": self.index,
            **self.meta,
            "prompt": self.prompt,
            "response": self.response,
            "n_tokens": int(delta.size),
            "truncated": self.truncated,
            "mean_abs_delta": float(np.abs(delta).mean()) if delta.size else 0.0,
            "frac_changed": float((np.abs(delta) > threshold).mean()) if delta.size else 0.0,
            "tokens": self.pieces,
            "token_ids": self.token_ids.tolist(),
            "p_base": [round(float(p), 6) for p in self.p_base],
            "p_tuned": [round(float(p), 6) for p in self.p_tuned],
        }


def shift_summary(deltas: np.ndarray, threshold: float, base_entropy: np.ndarray | None = None) -> dict[str, Any]:
    """The summary numbers of the module docstring for a flat array of Δp."""
    deltas = np.asarray(deltas, dtype=np.float64)
    magnitude = np.abs(deltas)
    if deltas.size == 0:
        return {"n_tokens": 0}
    counts, edges = np.histogram(np.clip(deltas, -1, 1), bins=HISTOGRAM_BINS, range=(-1.0, 1.0))
    summary: dict[str, Any] = {
        "n_tokens": int(deltas.size),
        "threshold": threshold,
        "frac_changed": float((magnitude > threshold).mean()),
        "frac_increased": float((deltas > threshold).mean()),
        "frac_decreased": float((deltas < -threshold).mean()),
        "mean_abs_delta": float(magnitude.mean()),
        "mean_delta": float(deltas.mean()),
        "median_abs_delta": float(np.median(magnitude)),
        "rms_delta": float(np.sqrt((deltas**2).mean())),
        "max_abs_delta": float(magnitude.max()),
        "frac_changed_at": {f"{t:g}": float((magnitude > t).mean()) for t in FIXED_THRESHOLDS},
        "quantiles": {f"{q:g}": float(np.quantile(deltas, q)) for q in QUANTILES},
        "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()},
    }
    if base_entropy is not None and base_entropy.size == deltas.size:
        changed = magnitude > threshold
        summary["base_entropy_changed"] = float(base_entropy[changed].mean()) if changed.any() else None
        summary["base_entropy_unchanged"] = float(base_entropy[~changed].mean()) if (~changed).any() else None
    return summary


@dataclass
class ShiftComparison:
    """The shift of one tuned model against the base, over its set of responses."""

    label: str
    path: str | None
    responses: list[ResponseShift]
    responses_from: str

    def deltas(self) -> np.ndarray:
        return np.concatenate([r.delta for r in self.responses]) if self.responses else np.zeros(0)

    def summary(self, threshold: float) -> dict[str, Any]:
        entropies = [r.base_entropy for r in self.responses]
        base_entropy = np.concatenate(entropies) if entropies and all(e is not None for e in entropies) else None
        out = {"n_responses": len(self.responses), **shift_summary(self.deltas(), threshold, base_entropy)}
        per_response = [np.abs(r.delta) for r in self.responses if r.delta.size]
        out["per_response"] = {
            "mean_abs_delta": float(np.mean([m.mean() for m in per_response])) if per_response else 0.0,
            "frac_changed": float(np.mean([(m > threshold).mean() for m in per_response])) if per_response else 0.0,
        }
        out["n_truncated"] = sum(r.truncated for r in self.responses)
        return out


@dataclass
class TokenShiftResult:
    """What `token_shift` computed; `summary()` is the content of `token_shift.json`."""

    base_label: str
    base_path: str | None
    threshold: float
    comparisons: list[ShiftComparison]
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "analysis": "token-shift",
            "definition": "delta_t = p_tuned(y_t | x, y_<t) - p_base(y_t | x, y_<t) for every response token y_t",
            "base": {"label": self.base_label, "path": self.base_path},
            "threshold": self.threshold,
            "settings": self.settings,
            "comparisons": [
                {
                    "label": c.label,
                    "path": c.path,
                    "responses_from": c.responses_from,
                    "summary": c.summary(self.threshold),
                }
                for c in self.comparisons
            ],
            "files": self.files,
        }

    def __getitem__(self, label: str) -> ShiftComparison:
        for comparison in self.comparisons:
            if comparison.label == label:
                return comparison
        raise KeyError(label)


def _aligned(base: EncodedExample, tuned: EncodedExample, where: str) -> int:
    """How many response tokens both encodings share; raises if the tokenisations differ."""
    common = min(len(base.response_ids), len(tuned.response_ids))
    if base.response_ids[:common] != tuned.response_ids[:common]:
        raise ValueError(
            f"{where}: the base and tuned tokenizers split the response differently; the token shift needs "
            "models that share a tokenizer"
        )
    return common


def token_shift(
    base: ModelRef,
    tuned: ModelRef | Sequence[ModelRef],
    examples: str | os.PathLike | Sequence[Example] | None = None,
    *,
    prompts: str | os.PathLike | Sequence | None = None,
    generate_with: str = "base",
    labels: Sequence[str] | None = None,
    base_label: str | None = None,
    threshold: float = 0.1,
    generation: GenerationSettings | None = None,
    chat: str = "auto",
    max_length: int | None = None,
    batch_size: int = 16,
    max_batch_tokens: int = 8192,
    device: str | None = "auto",
    dtype: str | None = "auto",
    tokenizer=None,
    trust_remote_code: bool = False,
    output_dir: str | os.PathLike | None = None,
    num_heatmaps: int = 8,
    max_html_responses: int = 200,
    vmax: float = 1.0,
    progress: bool = True,
) -> TokenShiftResult:
    """Per-token probability change of one or more tuned models against `base` (see the module docstring).

    Args:
        base, tuned: model references (paths, Hub ids, `checkpoint-N` folders, PEFT adapters, or
            `(model, tokenizer)` pairs); `tuned` may be a list, each compared with `base`.
        examples: the responses to score, a JSONL path or `Example`s; or else
        prompts: prompts to generate responses for, by `generate_with="base"` (one set, shared)
            or `"tuned"` (each tuned model on its own responses), with `generation` settings.
        threshold: |Δp| above which a token counts as changed.
        max_length: prompt + response tokens kept (default: the model's position limit).
        batch_size, max_batch_tokens: micro-batch limits for scoring (sequences, padded tokens).
        output_dir: when given, writes `token_shift.json`, `histogram.png`, and per tuned model
            `<label>/heatmap.html`, `<label>/heatmaps/response_NNN.png` (the first
            `num_heatmaps`), `<label>/tokens.jsonl`; generated responses go to
            `responses_<model>.jsonl`.
    """
    tuned_refs = [tuned] if isinstance(tuned, (str, os.PathLike, tuple)) else list(tuned)
    if not tuned_refs:
        raise ValueError("no tuned model given")
    if (examples is None) == (prompts is None):
        raise ValueError("give either examples (responses) or prompts to generate responses for")
    if generate_with not in ("base", "tuned"):
        raise ValueError("generate_with must be 'base' or 'tuned'")
    labels = unique_labels(list(labels) if labels else [model_label(r) for r in tuned_refs])
    if len(labels) != len(tuned_refs):
        raise ValueError(f"{len(labels)} labels for {len(tuned_refs)} tuned models")
    base_label = base_label or model_label(base)
    generation = generation or GenerationSettings()
    load = {"device": device, "dtype": dtype, "tokenizer": tokenizer, "trust_remote_code": trust_remote_code}
    score = {
        "batch_size": batch_size,
        "max_batch_tokens": max_batch_tokens,
        "progress": progress,
        "max_length": max_length,
        "chat": chat,
    }
    out = Path(output_dir) if output_dir is not None else None
    files: dict[str, str] = {}

    def save_generated(name: str, generated: list[Example]) -> None:
        if out is not None:
            target = out / f"responses_{slugify(name)}.jsonl"
            atomic_write_jsonl(target, [e.to_record() for e in generated])
            files[f"responses_{name}"] = target.name

    # Example sets: key "shared" (supplied or base-generated) or the tuned index (tuned-generated).
    sets: dict[Any, list[Example]] = {}
    tuned_scored: dict[int, tuple[list[EncodedExample], list[TokenScores]]] = {}
    if examples is not None:
        sets["shared"] = as_examples(examples)
    prompt_items = as_examples(prompts, require_response=False) if prompts is not None else None
    if prompt_items is not None and generate_with == "tuned":
        for j, ref in enumerate(tuned_refs):
            with loaded(ref, **load) as (model, tok):
                sets[j] = generate_responses(
                    model, tok, prompt_items, generation, chat=chat, progress=progress, desc=f"generating ({labels[j]})"
                )
                save_generated(labels[j], sets[j])
                tuned_scored[j] = score_examples(model, tok, sets[j], desc=f"scoring ({labels[j]})", **score)

    base_scored: dict[Any, tuple[list[EncodedExample], list[TokenScores]]] = {}
    with loaded(base, **load) as (model, tok):
        if prompt_items is not None and generate_with == "base":
            sets["shared"] = generate_responses(
                model, tok, prompt_items, generation, chat=chat, progress=progress, desc=f"generating ({base_label})"
            )
            save_generated(base_label, sets["shared"])
        for key, items in sets.items():
            base_scored[key] = score_examples(
                model, tok, items, with_pieces=True, with_entropy=True, desc=f"scoring ({base_label})", **score
            )

    for j, ref in enumerate(tuned_refs):
        if j not in tuned_scored:
            with loaded(ref, **load) as (model, tok):
                tuned_scored[j] = score_examples(model, tok, sets["shared"], desc=f"scoring ({labels[j]})", **score)

    comparisons = []
    for j, ref in enumerate(tuned_refs):
        key = j if j in sets else "shared"
        base_encoded, base_scores = base_scored[key]
        tuned_encoded, tuned_scores = tuned_scored[j]
        responses = []
        for i, example in enumerate(sets[key]):
            n = _aligned(base_encoded[i], tuned_encoded[i], f"response {i} ({labels[j]})")
            b, t = base_scores[i], tuned_scores[i]
            responses.append(
                ResponseShift(
                    index=i,
                    prompt=example.prompt,
                    response=example.response or "",
                    token_ids=b.token_ids[:n],
                    pieces=(base_encoded[i].pieces or [])[:n],
                    p_base=b.probs[:n],
                    p_tuned=t.probs[:n],
                    base_entropy=b.entropies[:n] if b.entropies is not None else None,
                    truncated=base_encoded[i].truncated or tuned_encoded[i].truncated,
                    meta=example.meta,
                )
            )
        source = "supplied" if examples is not None else (base_label if generate_with == "base" else labels[j])
        comparisons.append(ShiftComparison(labels[j], None if isinstance(ref, tuple) else str(ref), responses, source))

    settings = {
        "chat": chat,
        "max_length": max_length,
        "generate_with": None if examples is not None else generate_with,
        "generation": generation.to_dict() if examples is None else None,
    }
    result = TokenShiftResult(
        base_label, None if isinstance(base, tuple) else str(base), threshold, comparisons, settings, files
    )
    if out is not None:
        write_token_shift(result, out, num_heatmaps=num_heatmaps, max_html_responses=max_html_responses, vmax=vmax)
    return result


def write_token_shift(
    result: TokenShiftResult,
    output_dir: str | os.PathLike,
    *,
    num_heatmaps: int = 8,
    max_html_responses: int = 200,
    vmax: float = 1.0,
) -> dict[str, str]:
    """Write the figures, the HTML heat maps, the per-token data and `token_shift.json`; returns the files written."""
    from .plots import plot_shift_histogram, plot_token_heatmap, write_heatmap_html

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = result.files
    plot_shift_histogram(
        {c.label: c.deltas() for c in result.comparisons}, out / "histogram.png", threshold=result.threshold
    )
    files["histogram"] = "histogram.png"
    slugs = unique_labels(slugify(c.label) for c in result.comparisons)
    for slug, comparison in zip(slugs, result.comparisons):
        folder = out / slug
        summary = comparison.summary(result.threshold)
        header = (
            f"<p>{summary['n_responses']} responses, {summary.get('n_tokens', 0)} tokens; "
            f"mean |Δp| = {summary.get('mean_abs_delta', 0):.4f}; "
            f"{100 * summary.get('frac_changed', 0):.1f}% of tokens moved by more than {result.threshold:g}.</p>"
        )
        shown = []
        for r in comparison.responses[:max_html_responses]:
            magnitude = np.abs(r.delta)
            mean = magnitude.mean() if magnitude.size else 0.0
            moved = 100 * (magnitude > result.threshold).mean() if magnitude.size else 0.0
            shown.append(
                {
                    "heading": f"Response {r.index}",
                    "stats": f"{magnitude.size} tokens, mean |Δp| = {mean:.4f}, "
                    f"{moved:.1f}% moved > {result.threshold:g}" + (" (truncated)" if r.truncated else ""),
                    "prompt": _prompt_display(r.prompt),
                    "pieces": r.pieces,
                    "p_base": r.p_base,
                    "p_tuned": r.p_tuned,
                }
            )
        write_heatmap_html(
            shown,
            folder / "heatmap.html",
            title=f"Token probability shift: {comparison.label} vs {result.base_label}",
            header=header,
            vmax=vmax,
        )
        for r in comparison.responses[:num_heatmaps]:
            plot_token_heatmap(
                r.pieces,
                r.delta,
                folder / "heatmaps" / f"response_{r.index:03d}.png",
                title=f"{comparison.label} vs {result.base_label}: response {r.index}",
                vmax=vmax,
            )
        atomic_write_jsonl(folder / "tokens.jsonl", (r.record(result.threshold) for r in comparison.responses))
        files[f"{comparison.label}/heatmap_html"] = f"{slug}/heatmap.html"
        files[f"{comparison.label}/heatmaps"] = f"{slug}/heatmaps"
        files[f"{comparison.label}/tokens"] = f"{slug}/tokens.jsonl"
    atomic_write_json(out / "token_shift.json", result.summary())
    return files


def _prompt_display(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m.get('role')}] {m.get('content')}" for m in prompt)
