"""Numerical extremes: entropy at 0 and log V, degenerate groups, empty rows, bf16. Loss and gradients stay finite."""

import math

import pytest
import torch

from helpers import arithmetic_dataset, trainer
from srft_trl.losses import aggregate, demo_rl_loss, entropy_weight, self_rollout_loss, sft_loss
from srft_trl.trainer import DEMO, ROLLOUT

VOCAB = 151936  # Qwen2.5's vocabulary: the largest entropy a real run can see is log(VOCAB)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("entropy", [0.0, math.log(VOCAB)])
def test_terms_are_finite_at_entropy_extremes(dtype, entropy):
    logps = torch.full((3, 4), -30.0, dtype=dtype, requires_grad=True)  # p ~ 1e-13: the tail of a huge vocabulary
    entropies = torch.full((3, 4), entropy, dtype=dtype)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=dtype)  # includes an empty row
    w_rl = entropy_weight(entropies, mask, coef=0.1, sign=1, weighting="entropy", granularity="sequence")
    w_sft = entropy_weight(entropies, mask, coef=0.5, sign=-1, weighting="entropy", granularity="token")
    assert torch.isfinite(w_rl).all() and torch.isfinite(w_sft).all()
    clamped = entropy_weight(entropies, mask, coef=0.1, sign=1, weighting="entropy", granularity="token", max_weight=2.0)
    assert clamped.max() <= 2.0
    per_token = (
        sft_loss(logps, mask, w_sft)
        + demo_rl_loss(logps, mask, torch.tensor([1.0, -1.0, 0.0], dtype=dtype), mode="shaped")
        + self_rollout_loss(logps, mask, torch.tensor([True, False, True]), w_rl.to(dtype))
    )
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
        loss = aggregate(per_token, mask, loss_type, max_completion_length=4, num_items_in_batch=6)
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, logps, retain_graph=True)
        assert torch.isfinite(grad).all()


def test_empty_batch_aggregates_to_zero():
    per_token, mask = torch.zeros(2, 3), torch.zeros(2, 3)
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        assert aggregate(per_token, mask, loss_type, max_completion_length=3, num_items_in_batch=0).item() == 0.0


def batch(tokenizer, kinds, correct, advantages, length=6):
    rows = len(kinds)
    prompt_ids = torch.randint(5, 200, (rows, 4), generator=torch.Generator().manual_seed(0))
    completion_ids = torch.randint(5, 200, (rows, length), generator=torch.Generator().manual_seed(1))
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[0, 1:] = 0  # an (almost) empty completion: EOS only
    return {
        "prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids, "completion_mask": completion_mask,
        "advantages": torch.tensor(advantages), "num_items_in_batch": completion_mask.sum().float(),
        "srft_row_kind": torch.tensor(kinds), "srft_correct": torch.tensor(correct),
    }


@pytest.mark.parametrize(
    "name, kinds, correct, advantages",
    [
        ("all correct group", [ROLLOUT, ROLLOUT, ROLLOUT, DEMO], [True] * 4, [0.0] * 4),
        ("all wrong group", [ROLLOUT, ROLLOUT, ROLLOUT, DEMO], [False, False, False, True], [-0.5, -0.5, -0.5, 1.5]),
        ("micro-batch without demos", [ROLLOUT] * 4, [True, False, True, False], [1.0, -1.0, 1.0, -1.0]),
        ("micro-batch of demos only", [DEMO] * 4, [True] * 4, [0.8] * 4),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_trainer_loss_finite_in_degenerate_batches(tmp_path, tiny_model, tiny_tokenizer, name, kinds, correct,
                                                   advantages, dtype):
    t = trainer(tmp_path, tiny_model.to(dtype), tiny_tokenizer, max_completion_length=6)
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    inputs = batch(tiny_tokenizer, kinds, correct, advantages)
    inputs.update(t._count_samples(inputs, inputs["srft_row_kind"]))  # the per-term denominators, as in training
    loss = t._compute_loss(t.model, inputs)
    loss.backward()
    assert torch.isfinite(loss), name
    assert all(torch.isfinite(p.grad).all() for p in t.model.parameters() if p.grad is not None), name


def test_smallest_group_one_rollout_one_demo(tmp_path, tiny_model, tiny_tokenizer):
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, num_generations=2, num_demos=1, per_device_train_batch_size=4)
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert logs and all(math.isfinite(h["loss"]) for h in logs)


def test_high_entropy_warning_and_clamp(tmp_path, tiny_model, tiny_tokenizer, caplog):
    """A random model has H ~ log(260): w_RL = 0.1 * exp(H) ~ 26 warns once; max_entropy_weight clamps it."""
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, max_steps=1, max_entropy_weight=0.5,
                reward=lambda completions, **kw: [1.0] * len(completions))  # every rollout is correct: w_RL applies
    t.train()
    log = next(h for h in t.state.log_history if "loss" in h)
    assert log["srft/w_rl"] <= 0.5 + 1e-6
    unclamped = trainer(tmp_path / "b", tiny_model, tiny_tokenizer, dataset, max_steps=1,
                        reward=lambda completions, **kw: [1.0] * len(completions))
    unclamped.train()
    log = next(h for h in unclamped.state.log_history if "loss" in h)
    assert log["srft/w_rl"] > 1.0 and unclamped._srft_warned_weight


def test_weight_warning_ignores_rows_where_w_rl_is_not_applied(tmp_path, tiny_model, tiny_tokenizer):
    """No rollout is correct, so Eq. 12 never applies w_RL: a high entropy alone must not warn."""
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, max_steps=1, reward=lambda completions, **kw: [0.0] * len(completions))
    t.train()
    assert next(h for h in t.state.log_history if "loss" in h)["srft/w_rl"] > 1.0
    assert not t._srft_warned_weight
