"""Upstream noise a user reads as breakage: the checkpointing-alias FutureWarnings TRL 1.16 triggers, and the
`missing keys ['lm_head.weight']` warning on resume (the weights do load, through the tie: checked here)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from helpers import arithmetic_dataset, boxed_reward, config
from srft_trl import SRFTTrainer
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer
from srft_trl.upstream_noise import missing_keys_not_tied


SCRIPT = """
import warnings
warnings.simplefilter("default")  # show every warning the package does not filter by name
from srft_trl import SRFTConfig
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer
from trl.models.utils import disable_gradient_checkpointing
SRFTConfig(output_dir=OUT, report_to="none", use_cpu=True)  # GRPOConfig sets `gradient_checkpointing`
model = build_tiny_model(build_tiny_tokenizer())
model.activation_checkpointing_enable()
with disable_gradient_checkpointing(model):  # what TRL 1.16 does around every generation
    assert not model.is_activation_checkpointing
assert model.is_activation_checkpointing
warnings.warn("`something_else` is deprecated and will be removed in v6.", FutureWarning)
"""


def test_trl_checkpointing_aliases_do_not_warn_but_other_future_warnings_do(tmp_path):
    # A fresh interpreter, as a user's script: pytest resets warning filters around each test.
    result = subprocess.run([sys.executable, "-c", f"OUT = {str(tmp_path)!r}\n" + SCRIPT],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gradient_checkpointing" not in result.stderr, result.stderr[-3000:]
    assert "something_else" in result.stderr  # the filter is precise


@pytest.fixture()
def transformers_warnings():
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    hf_logging.get_logger("transformers").addHandler(handler)
    yield records
    hf_logging.get_logger("transformers").removeHandler(handler)


def _trainer(tmp_path, tokenizer, seed, **overrides):
    args = config(tmp_path, max_steps=2, save_strategy="steps", save_steps=1, max_completion_length=16, **overrides)
    return SRFTTrainer(model=build_tiny_model(tokenizer, seed=seed), reward_funcs=boxed_reward, args=args,
                       train_dataset=arithmetic_dataset(8), processing_class=tokenizer)


def test_resume_loads_the_tied_lm_head_without_a_missing_keys_warning(tmp_path, transformers_warnings):
    tokenizer = build_tiny_tokenizer()
    _trainer(tmp_path, tokenizer, seed=0).train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    saved = load_file(checkpoint / "model.safetensors")
    assert "lm_head.weight" not in saved  # stored once: this is why transformers says "missing"

    fresh = _trainer(tmp_path, tokenizer, seed=1)  # different random weights
    assert not torch.equal(fresh.model.model.embed_tokens.weight, saved["model.embed_tokens.weight"])
    transformers_warnings.clear()
    fresh._load_from_checkpoint(str(checkpoint))  # what `train(resume_from_checkpoint=...)` does first

    state = fresh.model.state_dict()
    for name, tensor in saved.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(fresh.model.lm_head.weight, saved["model.embed_tokens.weight"], rtol=0, atol=0)
    assert not [m for m in transformers_warnings if "missing keys" in m], transformers_warnings


def test_a_really_missing_key_still_counts():
    tokenizer = build_tiny_tokenizer()
    tied = build_tiny_model(tokenizer)
    assert missing_keys_not_tied(tied, ["lm_head.weight"]) == []
    # Both names of one tied tensor missing: nothing loaded it.
    assert missing_keys_not_tied(tied, ["lm_head.weight", "model.embed_tokens.weight"]) == [
        "lm_head.weight", "model.embed_tokens.weight"]
    untied = build_tiny_model(tokenizer)
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.detach().clone())
    assert missing_keys_not_tied(untied, ["lm_head.weight"]) == ["lm_head.weight"]


@pytest.mark.parametrize("kind", ["sft", "sft_kl"])
def test_the_sft_baselines_resume_without_the_missing_keys_warning(tmp_path, tiny_model_dir, transformers_warnings,
                                                                    kind):
    """The `sft` / `sft_kl` recipes' trainers (what `srft-trl train` builds for them) resume quietly too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from srft_trl.data import to_sft_rows
    from srft_trl.sft_kl import SFTBaselineTrainer, SFTKLConfig, SFTKLTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = to_sft_rows(arithmetic_dataset(8).map(lambda row: {"demo": f"\\boxed{{{row['solution']}}}"}))
    trainer_class, config_class = (SFTBaselineTrainer, SFTConfig) if kind == "sft" else (SFTKLTrainer, SFTKLConfig)

    def build():
        args = config_class(output_dir=str(tmp_path / "out"), max_steps=2, save_strategy="steps", save_steps=1,
                            per_device_train_batch_size=4, learning_rate=1e-2, report_to="none", use_cpu=True,
                            bf16=False, dataset_num_proc=None)
        # From a path, as the CLI loads it (SFT-KL builds its frozen reference from the model's path).
        return trainer_class(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                             train_dataset=rows, processing_class=tokenizer)

    build().train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    saved = load_file(checkpoint / "model.safetensors")
    assert "lm_head.weight" not in saved
    fresh = build()  # the untrained weights: two steps at lr 1e-2 moved the saved ones away from them
    assert not torch.equal(fresh.model.model.embed_tokens.weight, saved["model.embed_tokens.weight"])
    transformers_warnings.clear()
    fresh._load_from_checkpoint(str(checkpoint))
    torch.testing.assert_close(fresh.model.lm_head.weight, saved["model.embed_tokens.weight"], rtol=0, atol=0)
    assert not [m for m in transformers_warnings if "missing keys" in m], transformers_warnings
