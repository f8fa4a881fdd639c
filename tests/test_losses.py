"""The SRFT terms (srft_trl.losses) against values computed by hand on small tensors."""

import math

import pytest
import torch

from srft_trl.losses import (
    aggregate,
    aggregate_own,
    demo_rl_loss,
    entropy_weight,
    logp_gradient_sq_norm,
    masked_mean,
    own_normalizer,
    gradient_geometry,
    micro_batch_normalizer,
    parameter_gradient_norm,
    parameter_gradients,
    scale_positive_advantages,
    self_rollout_loss,
    sft_loss,
)

# Two rows of three tokens; the second row has one padding token.
ENTROPIES = torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.5, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
LOGPS = torch.log(torch.tensor([[0.5, 0.25, 0.8], [0.1, 0.9, 0.3]]))


def assert_values(tensor, expected, rtol=1e-5):
    torch.testing.assert_close(tensor.float(), torch.tensor(expected, dtype=torch.float32), rtol=rtol, atol=1e-6)


def test_masked_mean_ignores_padding_and_empty_rows():
    assert masked_mean(ENTROPIES, MASK).item() == pytest.approx((0 + 1 + 2 + 0.5 + 1.5) / 5)
    assert masked_mean(ENTROPIES, torch.zeros_like(MASK)).item() == 0.0
    rows = masked_mean(ENTROPIES, MASK, dim=-1)
    assert_values(rows, [1.0, 1.0])


@pytest.mark.parametrize("sign", [-1, 1])
def test_entropy_weight_token_granularity(sign):
    weight = entropy_weight(ENTROPIES, MASK, coef=0.5, sign=sign, weighting="entropy", granularity="token")
    expected = [[0.5 * math.exp(sign * h) for h in row] for row in ENTROPIES.tolist()]
    expected[1][2] = 0.0  # padding
    assert_values(weight, expected)


def test_entropy_weight_sequence_granularity_uses_each_rows_mean():
    entropies = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 100.0]])
    weight = entropy_weight(entropies, MASK, coef=0.1, sign=1, weighting="entropy", granularity="sequence")
    # row means over unmasked tokens: 2.0 and 2.0 (the padded 100 is ignored)
    expected = [[0.1 * math.exp(2.0)] * 3, [0.1 * math.exp(2.0)] * 2 + [0.0]]
    assert_values(weight, expected)


def test_entropy_weight_batch_granularity_local_and_given():
    weight = entropy_weight(ENTROPIES, MASK, coef=0.5, sign=-1, weighting="entropy", granularity="batch")
    mean = (0 + 1 + 2 + 0.5 + 1.5) / 5
    assert weight[0, 0].item() == pytest.approx(0.5 * math.exp(-mean))
    assert weight[1, 2].item() == 0.0
    given = entropy_weight(
        ENTROPIES, MASK, coef=0.5, sign=-1, weighting="entropy", granularity="batch", batch_entropy=torch.tensor(3.0)
    )
    assert given[1, 1].item() == pytest.approx(0.5 * math.exp(-3.0))


def test_entropy_weight_constant_clamp_and_stop_gradient():
    constant = entropy_weight(ENTROPIES, MASK, coef=1.0, sign=1, weighting="constant", granularity="token")
    assert constant.tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    entropies = ENTROPIES.clone().requires_grad_(True)
    clamped = entropy_weight(entropies, MASK, coef=0.1, sign=1, weighting="entropy", granularity="token", max_weight=0.5)
    assert clamped.max().item() == pytest.approx(0.5)
    assert not clamped.requires_grad  # stop_grad(exp(H))
    # At H = log V the raw weight reaches coef * V: the reason for the clamp.
    huge = entropy_weight(
        torch.full((1, 1), math.log(151936.0)), torch.ones(1, 1), coef=0.1, sign=1, weighting="entropy", granularity="token"
    )
    assert huge.item() == pytest.approx(15193.6, rel=1e-4)


def test_entropy_weight_rejects_unknown_settings():
    with pytest.raises(ValueError, match="granularity"):
        entropy_weight(ENTROPIES, MASK, coef=1, sign=1, weighting="entropy", granularity="row")
    with pytest.raises(ValueError, match="weighting"):
        entropy_weight(ENTROPIES, MASK, coef=1, sign=1, weighting="linear", granularity="token")


def test_sft_loss_is_weighted_nll():
    weight = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.2, 0.2]])
    loss = sft_loss(LOGPS, MASK, weight)
    expected = [[-0.5 * math.log(p) for p in (0.5, 0.25, 0.8)], [-0.2 * math.log(0.1), -0.2 * math.log(0.9), 0.0]]
    assert_values(loss, expected)


def test_demo_rl_loss_prob_value_and_gradient():
    logps = LOGPS.clone().requires_grad_(True)
    advantages = torch.tensor([2.0, -1.0])
    loss = demo_rl_loss(logps, MASK, advantages, mode="prob")
    probs = [[0.5, 0.25, 0.8], [0.1, 0.9, 0.3]]
    expected = [[-2.0 * p for p in probs[0]], [1.0 * probs[1][0], 1.0 * probs[1][1], 0.0]]
    assert_values(loss, expected)
    loss.sum().backward()
    # d(-A p)/d(log p) = -A p: the pi_beta = 1 gradient is the probability-weighted policy gradient.
    assert_values(logps.grad, expected)


def test_demo_rl_loss_shaped_matches_luffy_formula():
    advantages = torch.tensor([[1.0], [1.0]])
    loss = demo_rl_loss(LOGPS, MASK, advantages, mode="shaped", shaping_gamma=0.1)
    assert loss[0, 0].item() == pytest.approx(-(0.5 / 0.6), rel=1e-6)
    assert loss[1, 0].item() == pytest.approx(-(0.1 / 0.2), rel=1e-6)
    assert loss[1, 2].item() == 0.0
    with pytest.raises(ValueError):
        demo_rl_loss(LOGPS, MASK, advantages, mode="clip")


def test_self_rollout_loss_pushes_correct_up_and_incorrect_down():
    w_rl = torch.full_like(LOGPS, 0.3)
    correct = torch.tensor([True, False])
    loss = self_rollout_loss(LOGPS, MASK, correct, w_rl)
    assert loss[0].tolist() == pytest.approx([-0.3 * math.log(p) for p in (0.5, 0.25, 0.8)], rel=1e-6)
    assert loss[1].tolist() == pytest.approx([math.log(0.1), math.log(0.9), 0.0], rel=1e-6)
    # Minimising the loss raises log p of y+ and lowers log p of y-.
    logps = LOGPS.clone().requires_grad_(True)
    self_rollout_loss(logps, MASK, correct, w_rl).sum().backward()
    assert (logps.grad[0] < 0).all() and (logps.grad[1, :2] > 0).all()


def test_scale_positive_advantages_rowwise_and_tokenwise():
    advantages = torch.tensor([1.5, -0.5, 0.0])
    rows = scale_positive_advantages(advantages, torch.tensor([0.2, 0.2, 0.2]))
    assert_values(rows, [0.3, -0.5, 0.0])
    tokens = scale_positive_advantages(advantages, torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert_values(tokens, [[1.5, 3.0], [-0.5, -0.5], [0.0, 0.0]])


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", ((6 / 3) + (9 / 2)) / 2),
        ("sapo", ((6 / 3) + (9 / 2)) / 2),
        ("bnpo", 15 / 5),
        ("dr_grpo", 15 / (2 * 8)),
        ("luspo", (6 + 9) / 2),
        ("dapo", 15 / 10),
        ("cispo", 15 / 10),
    ],
)
def test_aggregate_matches_grpo_reductions(loss_type, expected):
    value = aggregate(PER_TOKEN, MASK, loss_type, max_completion_length=8, num_items_in_batch=torch.tensor(10.0))
    assert value.item() == pytest.approx(expected)


def test_aggregate_scales_for_accumulation_and_processes():
    kwargs = dict(max_completion_length=8, num_items_in_batch=torch.tensor(20.0), num_processes=2)
    # Row-mean losses divide by the accumulation steps during training only.
    assert aggregate(PER_TOKEN, MASK, "grpo", gradient_accumulation_steps=4, **kwargs).item() == pytest.approx(3.25 / 4)
    assert aggregate(PER_TOKEN, MASK, "grpo", gradient_accumulation_steps=4, training=False, **kwargs).item() == pytest.approx(3.25)
    # Global-token losses: num_items spans the generation batch of all processes.
    value = aggregate(PER_TOKEN, MASK, "dapo", gradient_accumulation_steps=4, steps_per_generation=2, **kwargs)
    assert value.item() == pytest.approx(15 / (20 / 2 * 4 / 2))
    with pytest.raises(ValueError, match="Unknown loss type"):
        aggregate(PER_TOKEN, MASK, "ppo")


# --------------------------------------------------------------------------------------------- own normaliser


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        # 3 rows and 12 tokens of the term in the generation batch; the micro-batch's share is GA / (S * P) = 4 / (2 * 2)
        ("grpo", 3 * 1.0),
        ("sapo", 3 * 1.0),
        ("luspo", 3 * 1.0),
        ("dr_grpo", 3 * 8 * 1.0),
        ("bnpo", 12 * 1.0),
        ("dapo", 12 * 1.0),
        ("cispo", 12 * 1.0),
    ],
)
def test_own_normalizer_follows_the_loss_types_semantics(loss_type, expected):
    value = own_normalizer(loss_type, num_rows=3, num_tokens=12, max_completion_length=8, num_processes=2,
                           gradient_accumulation_steps=4, steps_per_generation=2)
    assert value.item() == pytest.approx(expected)
    # Evaluation: no accumulation, no split across steps; the processes still share the batch.
    assert own_normalizer(loss_type, num_rows=3, num_tokens=12, max_completion_length=8, num_processes=2,
                          training=False).item() == pytest.approx(expected * 2 / 2 / 2)
    # A term with no sample in the generation batch divides by 1 (its numerator is 0).
    assert own_normalizer(loss_type, num_rows=0, num_tokens=0, max_completion_length=8).item() == 1.0


def test_aggregate_own_is_a_mean_over_the_terms_own_samples():
    # Row 0 is the term's only row (e.g. the demonstration); row 1 belongs to another term (zero loss here).
    per_token = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    own = aggregate_own(per_token, MASK, "dapo", num_rows=1, num_tokens=3)
    assert own.item() == pytest.approx(6 / 3)  # token mean over the demonstration's 3 tokens
    shared = aggregate(per_token, MASK, "dapo", num_items_in_batch=5.0)
    assert shared.item() == pytest.approx(6 / 5)  # diluted by the other row's 2 tokens
    assert aggregate_own(per_token, MASK, "grpo", num_rows=1, num_tokens=3).item() == pytest.approx(2.0)
    assert aggregate(per_token, MASK, "grpo").item() == pytest.approx(1.0)  # mean over both rows


def test_split_invariance_of_the_own_normaliser():
    """Summing a term over any split of the generation batch into micro-batches gives the same value."""
    generator = torch.Generator().manual_seed(0)
    per_token = torch.rand(8, 5, generator=generator)
    mask = (torch.rand(8, 5, generator=generator) > 0.3).float()
    term_rows = torch.tensor([1, 0, 0, 1, 0, 0, 0, 1], dtype=torch.bool)  # three demonstrations among 8 rows
    per_token = per_token * term_rows[:, None]
    counts = dict(num_rows=int((term_rows & (mask.sum(-1) > 0)).sum()), num_tokens=(mask * term_rows[:, None]).sum())
    for loss_type in ("grpo", "dr_grpo", "dapo", "luspo"):
        whole = aggregate_own(per_token, mask, loss_type, max_completion_length=5, **counts)
        for parts in (2, 4, 8):  # micro-batches of 8 / parts rows, some without any demonstration
            # One optimiser step accumulates `parts` micro-batches of one generation batch (GA = S = parts).
            split = sum(
                aggregate_own(per_token[i::parts], mask[i::parts], loss_type, max_completion_length=5,
                              gradient_accumulation_steps=parts, steps_per_generation=parts, **counts)
                for i in range(parts)
            )
            assert split.item() == pytest.approx(whole.item(), rel=1e-5), (loss_type, parts)


def test_logp_gradient_norm_matches_the_analytic_gradient():
    weights = torch.tensor([[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]])
    # Eq. 8 reduced over 5 tokens: d/d log p_t = -w_t / 5 on each unmasked token.
    value = logp_gradient_sq_norm(lambda lp: aggregate_own(sft_loss(lp, MASK, weights), MASK, "dapo", num_rows=2,
                                                           num_tokens=5), LOGPS)
    assert value.item() == pytest.approx((3 * 0.5**2 + 2 * 0.25**2) / 25)
    assert logp_gradient_sq_norm(lambda lp: torch.zeros(()), LOGPS).item() == 0.0


def test_parameter_gradient_norm_matches_a_backward_pass_and_keeps_the_graph():
    layer = torch.nn.Linear(3, 2)
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]])
    term = layer(x).pow(2).sum()
    norm = parameter_gradient_norm(term, list(layer.parameters()))
    term.backward()  # the graph is still there for the real backward pass
    expected = torch.sqrt(sum(p.grad.pow(2).sum() for p in layer.parameters()))
    assert norm.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parameter_gradient_norm(torch.tensor(1.0), list(layer.parameters())).item() == 0.0


def test_gradient_geometry_on_hand_made_vectors():
    geometry = gradient_geometry({"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 2.0]),
                                  "c": torch.tensor([0.0, 0.0])})
    assert geometry["norm/a"].item() == 1.0 and geometry["norm/b"].item() == 2.0
    assert geometry["norm/total"].item() == pytest.approx(5 ** 0.5)  # total = (1, 2)
    assert geometry["cos/a/b"].item() == 0.0
    assert geometry["cos/a/total"].item() == pytest.approx(1 / 5 ** 0.5)
    assert geometry["cos/b/total"].item() == pytest.approx(2 / 5 ** 0.5)
    assert geometry["cos/a/c"].item() == 0.0 and geometry["cos/c/total"].item() == 0.0  # zero vector: 0, not NaN
    opposite = gradient_geometry({"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([-2.0, -2.0])})
    assert opposite["cos/a/b"].item() == pytest.approx(-1.0)
    # Parts of a term are compared with every term and the total, and not added to the total again.
    split = gradient_geometry({"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 2.0])},
                              {"b_up": torch.tensor([0.0, 3.0]), "b_down": torch.tensor([0.0, -1.0])})
    assert split["norm/total"].item() == pytest.approx(5 ** 0.5)
    assert split["norm/b_up"].item() == 3.0 and split["cos/b_up/b"].item() == pytest.approx(1.0)
    assert split["cos/b_down/b"].item() == pytest.approx(-1.0) and split["cos/b_down/a"].item() == 0.0
    assert split["cos/b_up/total"].item() == pytest.approx(2 / 5 ** 0.5)


def test_parameter_gradients_flatten_and_keep_the_graph():
    layer = torch.nn.Linear(3, 2)
    term = layer(torch.ones(1, 3)).sum()
    flat = parameter_gradients(term, list(layer.parameters()))
    assert flat.shape == (8,) and flat.norm().item() == pytest.approx(parameter_gradient_norm(term, list(layer.parameters())).item())
    term.backward()  # the graph is still there


def test_micro_batch_normalizer_is_length_times_accumulation_or_a_token_count():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert micro_batch_normalizer(mask, "policy", max_completion_length=10, gradient_accumulation_steps=4).item() == 40
    assert micro_batch_normalizer(mask, "policy", max_completion_length=10, gradient_accumulation_steps=4,
                                  training=False).item() == 10
    assert micro_batch_normalizer(mask, "token_mean", max_completion_length=10, gradient_accumulation_steps=2).item() == 6
    assert micro_batch_normalizer(torch.zeros(2, 3), "token_mean", max_completion_length=10).item() == 1
    with pytest.raises(ValueError, match="policy"):
        micro_batch_normalizer(mask, "rows", max_completion_length=10)
