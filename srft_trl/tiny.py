"""A tiny local model and tokenizer, built from nothing: the embedded default and the test fixture.

Nothing here touches the network. The tokenizer is byte level with no merges (every ASCII
character is one token) and is built with the `tokenizers` library; the model is a Qwen2
architecture with random weights and a few hundred thousand parameters, so that the whole SRFT
pipeline (generation, rewards, the SRFT loss, evaluation) runs on a laptop CPU in seconds.

The chat template follows Qwen's `<|im_start|>role ... <|im_end|>` layout, so conversational
prompts, `apply_chat_template(add_generation_prompt=True)` and the `<|im_end|>` end-of-turn token
behave as they do for the real Qwen2.5 models the paper trains.
"""

from __future__ import annotations

import os
from pathlib import Path

from .files import atomic_directory

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, UNK_TOKEN]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2's pre-tokenisation regex (the same text transformers' Qwen2Tokenizer uses).
QWEN_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def build_tiny_tokenizer():
    """Return a byte-level `PreTrainedTokenizerFast` with a Qwen-style chat template.

    The pipeline is Qwen2's (NFC, Qwen's split regex, byte-level BPE) with the 256 byte symbols
    as the whole vocabulary and no merges, so every ASCII character is one token and the saved
    tokenizer reloads identically through `AutoTokenizer` (which picks `Qwen2Tokenizer` for a
    Qwen2 model). Ids are stable: the special tokens first, then the byte alphabet in sorted order.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(symbol, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        unk_token=UNK_TOKEN,
        bos_token=None,
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(tokenizer, **overrides):
    """The `Qwen2Config` of the tiny model for `tokenizer`'s vocabulary; `overrides` change any
    field (sizes, `vocab_size`, `rope_theta`, ...). Weights tied, no BOS, the tokenizer's PAD and EOS."""
    from transformers import Qwen2Config

    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        # Head size 32 (64 / 2): vLLM's CPU attention refuses a head size of 16, and the tiny model must run every
        # generation path. Grouped-query attention (2 query heads per key/value head) as in Qwen2.5.
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    settings.update(overrides)
    return Qwen2Config(**settings)


def tiny_generation_config(tokenizer):
    """Sampling by default, the tokenizer's EOS and PAD, no BOS."""
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None, do_sample=True
    )


def build_tiny_model(tokenizer=None, *, seed: int = 0, **sizes):
    """Return a randomly initialised `Qwen2ForCausalLM` sized for CPU tests (float32).

    Args:
        tokenizer: the tokenizer whose vocabulary the model covers; `build_tiny_tokenizer()` if None.
        seed: torch seed used for the random initialisation, so two calls give identical weights.
        sizes: `tiny_config` overrides (`hidden_size`, `num_hidden_layers`, ...).
    """
    import torch
    from transformers import Qwen2ForCausalLM

    tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer()
    config = tiny_config(tokenizer, **sizes)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = tiny_generation_config(tokenizer)
    return model


def save_tiny_model(path: str | os.PathLike, *, seed: int = 0, **model_kwargs) -> Path:
    """Build the tiny model and tokenizer and save both to `path`, atomically.

    The files are written to a temporary sibling directory that is renamed into place, so a
    reader never sees a half-written model. Returns the path.
    """
    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=seed, **model_kwargs)
    with atomic_directory(path, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path


# The fields that make a saved tiny model the one `tiny_config` describes today.
_SHAPE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "tie_word_embeddings")


def ensure_tiny_model(path: str | os.PathLike, *, seed: int = 0, **model_kwargs) -> Path:
    """Return `path`, building the tiny model there first if no model is saved there yet, or if the one saved there
    has another shape than `tiny_config` gives today (a cache left by an older version)."""
    import json

    path = Path(path)
    config_file = path / "config.json"
    if config_file.is_file():
        saved = json.loads(config_file.read_text())
        wanted = tiny_config(build_tiny_tokenizer(), **model_kwargs).to_dict()
        if all(saved.get(name) == wanted.get(name) for name in _SHAPE_FIELDS):
            return path
    save_tiny_model(path, seed=seed, **model_kwargs)
    return path
