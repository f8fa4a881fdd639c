"""The SRFT objective as pure functions: tensors in, tensors out.

Read next to Sec. 4 of the paper (arXiv 2506.19767). Shapes: `B` rows (completions) by `T` completion
tokens. `logps` holds `log pi_theta(y_t | x, y_<t)` of the tokens actually present, `entropies` the
entropy of `pi_theta(. | x, y_<t)` at each position, and `mask` marks the tokens a term acts on
(1) versus padding or rows the term ignores (0). Every per-token loss is 0 where `mask` is 0.

The three terms of Eq. 13 are returned per token and reduced in one of two ways: `aggregate_own`
makes each term an expectation over its own samples (demonstrations for Eq. 8 and 9-10, rollouts for
Eq. 12), as Eq. 13 writes them; `aggregate` reduces any of them exactly the way TRL's `GRPOTrainer`
reduces its own per-token loss for a given `loss_type`, over all rows of the batch (one shared
normaliser). Both divide by counts fixed per generation batch or per micro-batch exactly as TRL does,
so gradient accumulation and multi-process runs behave as in `GRPOTrainer`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# `loss_type`s whose GRPO reduction is a mean over rows of per-row token means (`grpo`, `sapo`), a
# sum over tokens per row then a mean over rows (`luspo`), a token mean over the local micro-batch
# (`bnpo`), a sum over a constant (`dr_grpo`), or a sum over the global token count (`dapo`...).
_ROW_MEAN_LOSSES = ("grpo", "sapo")
_ROW_SUM_LOSSES = ("luspo",)
_CONSTANT_LENGTH_LOSSES = ("dr_grpo",)
_GLOBAL_TOKEN_LOSSES = ("dapo", "cispo", "vespo")
_TOKEN_LOSSES = ("bnpo",) + _GLOBAL_TOKEN_LOSSES


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (0 where the mask is empty)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def entropy_weight(
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    coef: float,
    sign: int,
    weighting: str,
    granularity: str,
    batch_entropy: torch.Tensor | None = None,
    max_weight: float | None = None,
) -> torch.Tensor:
    """Per-token entropy-aware weight `coef * stop_grad(exp(sign * H))`, shape `(B, T)`.

    `sign=-1` gives `w_SFT` (Eq. 8, `0.5 * exp(-H)`), `sign=+1` gives `w_RL` (Eq. 12, `0.1 * exp(H)`).

    Args:
        entropies: `(B, T)` per-token entropies (detached here: the weight is a stop-gradient).
        mask: `(B, T)` tokens the weight applies to; `H` is averaged over them per `granularity`.
        coef: the coefficient (`sft_coef` or `rl_coef`).
        sign: -1 or +1, the sign of `H` in the exponent.
        weighting: `"entropy"` for the formula above, `"constant"` for `coef` everywhere.
        granularity: `"token"` (each token's entropy), `"sequence"` (mean over the row's masked tokens), or
            `"batch"` (one scalar `batch_entropy`, or the mean over all masked tokens if not given).
        batch_entropy: the global mean entropy to use for `"batch"` (e.g. reduced across processes).
        max_weight: optional clamp on the weight.
    """
    if weighting == "constant":
        weight = torch.full_like(entropies, float(coef), dtype=torch.float32)
    elif weighting == "entropy":
        entropies = entropies.detach().float()
        if granularity == "token":
            entropy = entropies
        elif granularity == "sequence":
            entropy = masked_mean(entropies, mask, dim=-1).unsqueeze(-1).expand_as(entropies)
        elif granularity == "batch":
            scalar = batch_entropy if batch_entropy is not None else masked_mean(entropies, mask)
            entropy = scalar.detach().float().expand_as(entropies)
        else:
            raise ValueError(f"Unknown entropy granularity {granularity!r}.")
        weight = coef * torch.exp(sign * entropy)
    else:
        raise ValueError(f"Unknown weighting {weighting!r}.")
    if max_weight is not None:
        weight = weight.clamp(max=max_weight)
    return weight * mask.to(weight.dtype)


def sft_loss(logps: torch.Tensor, mask: torch.Tensor, w_sft: torch.Tensor) -> torch.Tensor:
    """Eq. 8 per token: `w_SFT * -log pi_theta(y_t)` on demonstration tokens."""
    return -w_sft * logps * mask


def demo_rl_loss(
    logps: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    *,
    mode: str = "prob",
    shaping_gamma: float = 0.1,
) -> torch.Tensor:
    """Eq. 9-10 per token with `pi_beta = 1` and no clipping: `-A_demo * r_t(theta)`.

    With `pi_beta = 1` the importance ratio `r_t = pi_theta(y_t) / pi_beta(y_t)` is the probability
    `p_t = pi_theta(y_t)` itself (`mode="prob"`, the paper). `mode="shaped"` uses LUFFY's policy
    shaping `p_t / (p_t + gamma)`, which keeps the gradient of low-probability tokens from vanishing.

    Args:
        advantages: `(B,)` group advantages (Eq. 7) of each row, or `(B, T)`.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    prob = torch.exp(logps)
    if mode == "prob":
        ratio = prob
    elif mode == "shaped":
        ratio = prob / (prob + shaping_gamma)
    else:
        raise ValueError(f"Unknown demo RL mode {mode!r}.")
    return -advantages * ratio * mask


def self_rollout_loss(
    logps: torch.Tensor, mask: torch.Tensor, correct: torch.Tensor, w_rl: torch.Tensor
) -> torch.Tensor:
    """Eq. 12 per token: `w_RL * -log pi(y+_t)` on correct rollouts, `+log pi(y-_t)` on incorrect ones.

    Args:
        correct: `(B,)` bool, whether each row is a correct rollout (`y+`).
        w_rl: `(B, T)` weight of the positive term (only read on correct rows).
    """
    coefficient = torch.where(correct.unsqueeze(-1), w_rl, torch.full_like(w_rl, -1.0))
    return -coefficient * logps * mask


def scale_positive_advantages(advantages: torch.Tensor, w_rl: torch.Tensor) -> torch.Tensor:
    """`rollout_loss="grpo"`: multiply the advantage of rows with positive advantage by `w_RL`.

    For the clipped GRPO surrogate `-min(r A, clip(r) A)`, scaling `A > 0` by `w > 0` scales the
    loss of that token by `w`, so this is Eq. 12's weighting of the positive samples applied to the
    GRPO objective.

    Args:
        advantages: `(B,)` group advantages.
        w_rl: `(B,)` per-row weights, or `(B, T)` per-token weights (then the result is `(B, T)`).
    """
    if w_rl.dim() == 2 and advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(w_rl)
    return torch.where(advantages > 0, advantages * w_rl, advantages)


def _row_summands(per_token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str) -> torch.Tensor:
    """What each row adds to the numerator of a `loss_type` reduction: its token mean for `grpo`/`sapo`,
    its token sum for every other loss type."""
    summed = (per_token_loss * mask).sum(-1)
    if loss_type in _ROW_MEAN_LOSSES:
        return summed / mask.sum(-1).clamp(min=1.0)
    if loss_type in _ROW_SUM_LOSSES + _CONSTANT_LENGTH_LOSSES + _TOKEN_LOSSES:
        return summed
    raise ValueError(f"Unknown loss type: {loss_type}")


def parent_normalizer(
    mask: torch.Tensor,
    loss_type: str,
    *,
    max_completion_length: int | None = None,
    num_items_in_batch: torch.Tensor | float | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int = 1,
    training: bool = True,
) -> torch.Tensor:
    """The denominator `GRPOTrainer._compute_loss` divides the summed row contributions by, for `loss_type`.

    `mask` is the parent's loss mask over all rows of the micro-batch. Row losses (`grpo`, `sapo`, `luspo`) and
    `dr_grpo` divide by the micro-batch's row count (times `max_completion_length` for `dr_grpo`), `bnpo` by its token
    count, and the global-token losses (`dapo`, `cispo`, `vespo`) by the generation batch's token count
    (`num_items_in_batch`, all processes) rescaled to one accumulation window; all are scaled for gradient accumulation
    during training.
    """
    accumulation = gradient_accumulation_steps if training else 1
    rows = float(mask.size(0))
    if loss_type in _ROW_MEAN_LOSSES + _ROW_SUM_LOSSES:
        return torch.tensor(rows * accumulation, device=mask.device)
    if loss_type == "bnpo":
        return mask.float().sum().clamp(min=1.0) * accumulation
    if loss_type in _CONSTANT_LENGTH_LOSSES:
        return torch.tensor(rows * max_completion_length * accumulation, device=mask.device)
    if loss_type in _GLOBAL_TOKEN_LOSSES:
        normalizer = torch.as_tensor(num_items_in_batch, dtype=torch.float32, device=mask.device).clamp(min=1.0)
        normalizer = normalizer / num_processes
        if training:
            normalizer = normalizer * gradient_accumulation_steps / steps_per_generation
        return normalizer
    raise ValueError(f"Unknown loss type: {loss_type}")


def own_normalizer(
    loss_type: str,
    *,
    num_rows: torch.Tensor | float,
    num_tokens: torch.Tensor | float,
    max_completion_length: int | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int = 1,
    training: bool = True,
) -> torch.Tensor:
    """The denominator that makes a term an expectation over *its own* samples (Eq. 13 read as three expectations).

    `num_rows` / `num_tokens` count the term's samples (rows with at least one loss token, and their loss tokens) in the
    whole generation batch of all processes. The denominator follows `loss_type`'s semantics: a mean over rows of row
    means (`grpo`, `sapo`), over rows of row sums (`luspo`), over rows of row sums divided by
    `max_completion_length` (`dr_grpo`), or over tokens (`bnpo`, `dapo`, `cispo`, `vespo`). Each micro-batch divides
    by the same count, scaled to the micro-batch's share of the generation batch exactly as TRL scales
    `num_items_in_batch` for `dapo` (`/ num_processes * gradient_accumulation_steps / steps_per_generation`), so the
    sum over one optimiser step's micro-batches and processes (DDP averages) is the term's mean over its samples,
    whatever the shuffling and splitting put in each micro-batch. A term with no sample gets denominator 1 (its
    numerator is 0).
    """
    share = (gradient_accumulation_steps / steps_per_generation if training else 1.0) / num_processes
    if loss_type in _ROW_MEAN_LOSSES + _ROW_SUM_LOSSES:
        count, scale = num_rows, 1.0
    elif loss_type in _CONSTANT_LENGTH_LOSSES:
        count, scale = num_rows, float(max_completion_length)
    elif loss_type in _TOKEN_LOSSES:
        count, scale = num_tokens, 1.0
    else:
        raise ValueError(f"Unknown loss type: {loss_type}")
    count = torch.as_tensor(count, dtype=torch.float32)
    return torch.where(count > 0, count * scale * share, torch.ones_like(count))


def aggregate(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    max_completion_length: int | None = None,
    num_items_in_batch: torch.Tensor | float | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int = 1,
    training: bool = True,
) -> torch.Tensor:
    """Reduce a per-token loss to a scalar exactly as `GRPOTrainer._compute_loss` does for `loss_type`.

    Hand-written because TRL inlines this reduction in `_compute_loss` rather than exposing it;
    `tests/test_parity.py` checks it against the parent on the same tensors, so drift fails loudly.
    `mask` must be the parent's loss mask over *all* rows of the micro-batch (rows a term does not
    act on simply have a zero per-token loss): this is the `term_normalization="shared"` reduction.
    The result is already divided for gradient accumulation, like the parent's loss.
    """
    mask = mask.to(per_token_loss.dtype)
    normalizer = parent_normalizer(
        mask,
        loss_type,
        max_completion_length=max_completion_length,
        num_items_in_batch=num_items_in_batch,
        num_processes=num_processes,
        gradient_accumulation_steps=gradient_accumulation_steps,
        steps_per_generation=steps_per_generation,
        training=training,
    )
    return _row_summands(per_token_loss, mask, loss_type).sum() / normalizer.to(per_token_loss.device)


def aggregate_own(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    num_rows: torch.Tensor | float,
    num_tokens: torch.Tensor | float,
    max_completion_length: int | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int = 1,
    training: bool = True,
) -> torch.Tensor:
    """Reduce a term's per-token loss over its own samples (`term_normalization="per_term"`); see `own_normalizer`.

    `mask` is the term's own mask (its rows and tokens only).
    """
    mask = mask.to(per_token_loss.dtype)
    normalizer = own_normalizer(
        loss_type,
        num_rows=num_rows,
        num_tokens=num_tokens,
        max_completion_length=max_completion_length,
        num_processes=num_processes,
        gradient_accumulation_steps=gradient_accumulation_steps,
        steps_per_generation=steps_per_generation,
        training=training,
    )
    return _row_summands(per_token_loss, mask, loss_type).sum() / normalizer.to(per_token_loss.device)


def logp_gradient_sq_norm(term: Callable[[torch.Tensor], torch.Tensor], logps: torch.Tensor) -> torch.Tensor:
    """`||d term / d log pi_theta(y_t)||^2` over the tokens of `logps`: how hard a term pulls, on one scale for all terms.

    The parameter gradient of a term is this per-token vector times the Jacobian of the log-probabilities, which
    every term shares, so comparing these norms compares the terms' gradient contributions without a backward pass
    through the model (the term is re-evaluated on a detached copy of the log-probabilities; elementwise work only).
    """
    leaf = logps.detach().float().requires_grad_(True)
    with torch.enable_grad():
        value = term(leaf)
        if not value.requires_grad:  # the term does not depend on the log-probabilities (e.g. an empty mask)
            return torch.zeros((), device=logps.device)
        (grad,) = torch.autograd.grad(value, leaf)
    return grad.pow(2).sum()


def parameter_gradient_norm(term: torch.Tensor, parameters: list[torch.Tensor]) -> torch.Tensor:
    """`||d term / d theta||` over `parameters`, leaving the autograd graph intact for the real backward pass.

    The exact (and costly: one backward pass) counterpart of `logp_gradient_sq_norm`, for
    `SRFTConfig.log_term_param_grad_norms`.
    """
    if not term.requires_grad:
        return torch.zeros((), device=term.device)
    grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
    return torch.sqrt(sum((g.float().pow(2).sum() for g in grads if g is not None), torch.zeros((), device=term.device)))


def micro_batch_normalizer(
    mask: torch.Tensor,
    part: str,
    *,
    max_completion_length: int,
    gradient_accumulation_steps: int = 1,
    training: bool = True,
) -> torch.Tensor:
    """The denominators of the public verl code (`term_normalization="verl"`), one micro-batch at a time.

    HPT's SRFT actor and LUFFY's (`mix_core_alg.py` with `loss_remove_token_mean=True`; `mix_actor.py`) reduce each
    micro-batch on its own and divide the micro-batch's loss by the accumulation steps (`loss / gradient_accumulation`):

    * `part="policy"` (Eq. 12 on rollouts and the shaped demonstration term, one policy-gradient loss): the token
      sum over *all rows* of the micro-batch divided by the padded response length `L = max_completion_length`
      (`(pg_losses * eos_mask).sum() / eos_mask.shape[-1]`), not by the row count as TRL's `dr_grpo` does;
    * `part="token_mean"` (the SFT term over the micro-batch's demonstration tokens, `compute_sft_pure_loss`; the
      entropy bonus over all its response tokens): the number of `mask`'s tokens.

    So the policy term's weight against the SFT term grows with the rows per micro-batch: the update depends on how
    the batch is split (HPT: 64 rows per GPU, split by a 32,768-token budget). `mask` is the micro-batch's loss mask
    for the part (all rows for `"policy"`, the demonstration rows for an SFT mean). Returns a 0-dim tensor.
    """
    accumulation = gradient_accumulation_steps if training else 1
    if part == "policy":
        return torch.tensor(float(max_completion_length * accumulation), device=mask.device)
    if part == "token_mean":
        return mask.float().sum().clamp(min=1.0) * accumulation
    raise ValueError(f"Unknown micro-batch part {part!r}: expected 'policy' or 'token_mean'.")


def aggregate_micro_batch(per_token_loss: torch.Tensor, mask: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`sum(per_token_loss * mask) / denominator` (see `micro_batch_normalizer`)."""
    return (per_token_loss * mask.to(per_token_loss.dtype)).sum() / denominator.to(per_token_loss.device)


def parameter_gradients(term: torch.Tensor, parameters: list[torch.Tensor]) -> torch.Tensor:
    """`d term / d theta` over `parameters`, flattened into one float32 vector, leaving the autograd graph intact.

    For `SRFTConfig.log_term_param_grad_norms` (a diagnostic: one backward pass and one parameter-sized vector per
    term).
    """
    if not term.requires_grad:
        return torch.cat([torch.zeros(p.numel(), device=p.device) for p in parameters])
    grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros(p.numel(), device=p.device) if g is None else g.detach().float().flatten())
                      for g, p in zip(grads, parameters)])


def gradient_geometry(
    gradients: dict[str, torch.Tensor], parts: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Norms of each term's parameter gradient and of their sum (the total, Eq. 13's gradient), and the cosines
    between every pair of terms and between each term and the total.

    `parts` are pieces of a term (e.g. Eq. 12 on correct and on incorrect rollouts) that are not added to the total
    again: each gets its norm and its cosine with every term and with the total.

    Keys: `norm/<term>`, `norm/total`, `cos/<a>/<b>` (pairs in the given order), `cos/<term>/total`, and for each
    part `norm/<part>`, `cos/<part>/<term>`, `cos/<part>/total`. A cosine with a zero vector is 0. The inputs are
    flattened gradients (`parameter_gradients`).
    """
    names = list(gradients)
    parts = parts or {}
    total = torch.stack([gradients[n] for n in names]).sum(0)
    vectors = {**gradients, "total": total, **parts}
    norms = {n: v.norm() for n, v in vectors.items()}

    def cosine(a: str, b: str) -> torch.Tensor:
        denominator = norms[a] * norms[b]
        value = ((vectors[a] @ vectors[b]) / denominator.clamp(min=1e-30)).clamp(-1.0, 1.0)  # rounding: |cos| <= 1
        return torch.where(denominator > 0, value, torch.zeros_like(denominator))

    out = {f"norm/{n}": v for n, v in norms.items()}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"cos/{a}/{b}"] = cosine(a, b)
        out[f"cos/{a}/total"] = cosine(a, "total")
    for part in parts:
        for term in names:
            out[f"cos/{part}/{term}"] = cosine(part, term)
        out[f"cos/{part}/total"] = cosine(part, "total")
    return out
