"""Shared fixtures: a tiny local model and tokenizer, and a few-row dataset. Nothing is downloaded."""

import os

import pytest
import torch

# On small CPU machines, OpenMP threads spin against each other on tiny matrices: one thread is
# ~100x faster for the tiny model (measured: 0.01 ms vs 19 ms per 64x260 matmul on 2 cores).
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from srft_trl.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    from srft_trl.tiny import build_tiny_model

    return build_tiny_model(tiny_tokenizer, seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from srft_trl.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
