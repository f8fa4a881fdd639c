"""Generation backends behind one interface: transformers `generate` and (optionally) vLLM.

A backend takes `Request`s (an item id, the rendered prompt, the number of samples and a seed)
and yields `(request, samples, info)` as each request finishes, so the runner can cache results
as they arrive. Both backends sample with exactly the protocol's settings: temperature, top_p
and a new-token budget, and nothing else (no top-k, no repetition penalty, whatever defaults a
checkpoint's `generation_config.json` carries).

vLLM is imported only inside `VLLMBackend`, so this module imports on machines without it.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..models import rope_overrides
from .cache import model_fingerprint

__all__ = [
    "SamplingConfig",
    "Request",
    "Backend",
    "TransformersBackend",
    "VLLMBackend",
    "make_backend",
    "resolve_backend_name",
    "generation_budget",
    "ContextOverflowError",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings of the protocol (paper Sec. 5.1: temperature 0.6, 8,192 new tokens)."""

    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 8192

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """`n` samples for one prompt, drawn with a per-request `seed` (so a resumed run draws the
    same samples for an item as an uninterrupted one would have)."""

    id: str
    prompt: str
    n: int
    seed: int


class ContextOverflowError(ValueError):
    """A prompt (or prompt + budget) that the model's context window cannot hold."""


def generation_budget(prompt_len: int, max_new_tokens: int, context_len: int | None, overflow: str = "truncate") -> int:
    """The new-token budget for a prompt of `prompt_len` tokens in a `context_len` window.

    When prompt + `max_new_tokens` does not fit, `overflow="truncate"` shortens the budget to what
    fits and `"error"` raises. A prompt that fills the window on its own always raises.
    """
    if context_len is None:
        return max_new_tokens
    room = context_len - prompt_len
    if room <= 0:
        raise ContextOverflowError(f"prompt of {prompt_len} tokens does not fit the {context_len}-token context")
    if room >= max_new_tokens:
        return max_new_tokens
    if overflow == "error":
        raise ContextOverflowError(
            f"prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) exceeds the model's {context_len}-token "
            "context; raise it (--max-model-len / --hf-overrides, e.g. a RoPE-extended config) or allow truncation"
        )
    return room


class Backend(ABC):
    """The interface the runner uses. Subclasses set `name` and `tokenizer`."""

    name: str = "backend"
    tokenizer: Any = None
    max_model_len: int | None = None  # the context window; None: unbounded
    context_overflow: str = "truncate"

    @abstractmethod
    def generate(self, requests: Sequence[Request], sampling: SamplingConfig) -> Iterator[tuple[Request, list[str], dict]]:
        """Yield `(request, samples, info)` per request as it finishes; `info["max_new_tokens"]`
        is the budget actually used (smaller than asked when the context window forced it)."""

    def fingerprint(self) -> dict[str, Any] | None:
        """What identifies this backend's model for the generation cache; None disables caching
        (an in-memory model has no stable identity)."""
        return None

    def close(self) -> None:
        """Release resources (GPU memory, worker processes)."""


class TransformersBackend(Backend):
    """`model.generate` on one device: CPU, tests, small models, and the training callback.

    Args:
        model: a checkpoint path / Hub id (loaded on `device`: the GPU when there is one, else
            the CPU), or an already loaded `PreTrainedModel` (used where it is).
        tokenizer: required with a loaded model unless it can be loaded from `model.name_or_path`.
        max_model_len: the context window; the model's `max_position_embeddings` by default.
        batch_size: most sequences per `generate` call (the n samples of a request are split).
        context_overflow: `"truncate"` or `"error"` when prompt + budget exceeds the window.
        hf_overrides: config attributes set before loading (a path only).
        rope_theta: a new RoPE base (with `max_model_len`, also the new position window), for
            the paper's context extension of Qwen2.5-Math-7B.
    """

    name = "transformers"

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        batch_size: int = 32,
        revision: str | None = None,
        trust_remote_code: bool = False,
        hf_overrides: dict[str, Any] | None = None,
        rope_theta: float | None = None,
        context_overflow: str = "truncate",
    ):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.model_ref = None
        self.revision = revision
        self.hf_overrides = dict(hf_overrides or {})
        if isinstance(model, (str, os.PathLike)):
            self.model_ref = str(model)
            config = AutoConfig.from_pretrained(self.model_ref, revision=revision, trust_remote_code=trust_remote_code)
            if rope_theta is not None:
                self.hf_overrides.update(rope_overrides(config, rope_theta, max_model_len))
            for key, value in self.hf_overrides.items():
                setattr(config, key, value)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_ref, config=config, dtype=dtype, revision=revision, trust_remote_code=trust_remote_code
            )
            if device is None:
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            model = model.to(device)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(
                self.model_ref or model.name_or_path, revision=revision, trust_remote_code=trust_remote_code
            )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_model_len = max_model_len or getattr(model.config, "max_position_embeddings", None)
        self.context_overflow = context_overflow

    def fingerprint(self) -> dict[str, Any] | None:
        if self.model_ref is None:
            return None
        return {
            "model": model_fingerprint(self.model_ref, self.revision),
            "max_model_len": self.max_model_len,
            "hf_overrides": self.hf_overrides,
        }

    def generate(self, requests, sampling):
        """Through `srft_trl.generation.generate`: each request under its own seed (its samples do
        not depend on which other requests share a run: the cache relies on it); greedy requests
        with the same budget are batched across prompts, as the seed does not matter for them."""
        from ..generation import generate

        def budget_of(request):
            length = len(self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
            return generation_budget(length, sampling.max_new_tokens, self.max_model_len, self.context_overflow)

        options = dict(temperature=sampling.temperature, top_p=sampling.top_p, batch_size=self.batch_size)
        requests = list(requests)
        if sampling.temperature > 0:
            for request in requests:
                budget = budget_of(request)
                (samples,) = generate(self.model, self.tokenizer, [request.prompt], max_new_tokens=budget,
                                      num_samples=request.n, seeds=[request.seed], **options)
                yield request, samples, {"max_new_tokens": budget}
            return
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            budgets = [budget_of(request) for request in chunk]
            for budget in dict.fromkeys(budgets):
                group = [request for request, b in zip(chunk, budgets) if b == budget]
                responses = generate(self.model, self.tokenizer, [r.prompt for r in group], max_new_tokens=budget,
                                     **options)
                for request, samples in zip(group, responses):
                    yield request, samples * request.n, {"max_new_tokens": budget}


class VLLMBackend(Backend):
    """vLLM offline inference (optional extra `srft-trl[vllm]`; GPU machines only).

    The engine is built on first use. Its context window is `max_model_len` when given, else the
    model's native window (from its config after `hf_overrides`); a prompt whose prompt + budget
    does not fit gets its budget shortened (`context_overflow="truncate"`, the count is reported)
    or raises (`"error"`). Qwen2.5-Math-7B's native window is 4,096 tokens: evaluate the
    RoPE-extended variant the paper trains (rope_theta 40,000, 16,384 positions), either as a
    checkpoint whose config says so or with `rope_theta=40000, max_model_len=16384` (which set
    the config's RoPE base and window through vLLM's `hf_overrides`).
    Requests are submitted in chunks of `chunk_size` prompts, so finished chunks reach the cache
    while later ones are still generating.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float | None = None,
        dtype: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        hf_overrides: dict[str, Any] | None = None,
        rope_theta: float | None = None,
        enforce_eager: bool = False,
        chunk_size: int = 512,
        context_overflow: str = "truncate",
        seed: int = 0,
        **llm_kwargs,
    ):
        from transformers import AutoConfig, AutoTokenizer

        self.model_ref = str(model)
        self.revision = revision
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_ref, revision=revision, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(self.model_ref, revision=revision, trust_remote_code=trust_remote_code)
        self.hf_overrides = dict(hf_overrides or {})
        if rope_theta is not None:
            self.hf_overrides.update(rope_overrides(config, rope_theta, max_model_len))
        native = self.hf_overrides.get("max_position_embeddings", getattr(config, "max_position_embeddings", None))
        self.max_model_len = max_model_len or native
        if max_model_len and native and max_model_len > native:
            # vLLM refuses a window longer than the config's unless told the user means it
            # (e.g. a RoPE-scaled checkpoint whose config still states the native length).
            os.environ.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
            logger.warning("max_model_len %d exceeds the model's native %d positions", max_model_len, native)
        self.chunk_size = chunk_size
        self.context_overflow = context_overflow
        self.llm_kwargs = dict(
            model=self.model_ref,
            tokenizer=self.model_ref,
            revision=revision,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=(default_memory_fraction() if gpu_memory_utilization is None
                                    else gpu_memory_utilization),
            dtype=dtype,
            enforce_eager=enforce_eager,
            seed=seed,
            **({"max_model_len": self.max_model_len} if self.max_model_len else {}),
            **({"hf_overrides": self.hf_overrides} if self.hf_overrides else {}),
            **llm_kwargs,
        )
        self._llm = None

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": model_fingerprint(self.model_ref, self.revision),
            "max_model_len": self.max_model_len,
            "hf_overrides": self.hf_overrides,
        }

    @property
    def llm(self):
        if self._llm is None:
            from vllm import LLM  # lazy: optional dependency, GPU only

            self._llm = LLM(**self.llm_kwargs)
        return self._llm

    def generate(self, requests, sampling):
        from vllm import SamplingParams

        requests = list(requests)
        for start in range(0, len(requests), self.chunk_size):
            chunk = requests[start : start + self.chunk_size]
            prompts, params, budgets = [], [], []
            for request in chunk:
                ids = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
                budget = generation_budget(len(ids), sampling.max_new_tokens, self.max_model_len, self.context_overflow)
                prompts.append({"prompt_token_ids": ids})
                budgets.append(budget)
                params.append(
                    SamplingParams(
                        n=request.n,
                        temperature=sampling.temperature,
                        top_p=sampling.top_p,
                        max_tokens=budget,
                        seed=request.seed,
                    )
                )
            outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
            for request, output, budget in zip(chunk, outputs, budgets):
                yield request, [completion.text for completion in output.outputs], {"max_new_tokens": budget}

    def close(self) -> None:
        self._llm = None
        try:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def default_memory_fraction() -> float:
    """vLLM's `gpu_memory_utilization` when none is given: 0.9 of a GPU's memory (vLLM's own default), but 0.05 of
    the system's memory on a machine without a GPU, where vLLM's CPU build reads the same setting as a fraction of
    RAM for its KV cache (0.9 reserved 20 of 24 GiB and took 77 s to start; 0.05 is plenty for evaluation there)."""
    import torch

    return 0.9 if torch.cuda.is_available() else 0.05


def resolve_backend_name(name: str) -> str:
    """`auto` means vLLM when it is installed and a GPU is visible, else transformers."""
    if name != "auto":
        return name
    import importlib.util

    import torch

    return "vllm" if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available() else "transformers"


def make_backend(name: str, model, **kwargs) -> Backend:
    """Build a backend by name (`transformers`, `vllm` or `auto`), dropping options the other one takes."""
    name = resolve_backend_name(name)
    if name == "transformers":
        allowed = {"tokenizer", "device", "dtype", "max_model_len", "batch_size", "revision", "trust_remote_code",
                   "hf_overrides", "rope_theta", "context_overflow"}
        return TransformersBackend(model, **{k: v for k, v in kwargs.items() if k in allowed and v is not None})
    if name == "vllm":
        allowed = {"tensor_parallel_size", "max_model_len", "gpu_memory_utilization", "dtype", "revision",
                   "trust_remote_code", "hf_overrides", "rope_theta", "enforce_eager", "chunk_size", "context_overflow", "seed"}
        return VLLMBackend(model, **{k: v for k, v in kwargs.items() if k in allowed and v is not None})
    raise ValueError(f"unknown backend {name!r} (transformers or vllm)")
