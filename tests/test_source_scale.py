"""`srft_hpt` and `luffy` against their sources' loss, written out here independently of srft_trl's loss code.

HPT's SRFT actor and LUFFY's (verl; `mix_core_alg.py` with `loss_remove_token_mean=True`, `mix_actor.py`) compute,
per micro-batch (reference.md §10):

    policy  = sum over the micro-batch's rows and tokens of the per-token policy loss / L   (L: padded response length)
    sft     = mean over the micro-batch's demonstration tokens of -0.5 exp(-H_row) log p     (HPT only)
    entropy = mean over the micro-batch's response tokens of the token entropy
    loss    = (policy + sft - 0.001 * entropy) / accumulation steps

with, for HPT, the per-token policy loss `-(+0.1 exp(H_row) if correct else -1) * log p` on rollouts and
`-A * p / (p + 0.1)` on the demonstration; for LUFFY `-A * ratio` (unclipped, ratio = 1 on-policy) on rollouts and
the same shaped term on the demonstration. The formula below reads the model's logits directly: no srft_trl code.
So the policy:SFT balance depends on the rows per micro-batch, which the trainer must reproduce (`term_normalization=
"verl"`), where the project's earlier presets divided the policy terms by rows as well.
"""

import copy

import pytest
import torch

from helpers import arithmetic_dataset, boxed_reward, config
from srft_trl import SRFTTrainer
from srft_trl.tiny import build_tiny_model
from srft_trl.trainer import DEMO, ROLLOUT

GROUP = 4  # 1 demonstration + 3 rollouts
LENGTH = 10  # max_completion_length: verl pads every response to it; the batch below is only 7 wide


def micro_batch(rows: int, seed: int = 3) -> dict:
    """A micro-batch of `rows` rows in groups of 4 (demonstration first), varied lengths, mixed correctness."""
    g = torch.Generator().manual_seed(seed)
    width = 7
    prompt_ids = torch.randint(5, 200, (rows, 5), generator=g)
    completion_ids = torch.randint(5, 200, (rows, width), generator=g)
    lengths = torch.randint(2, width + 1, (rows,), generator=g)
    completion_mask = (torch.arange(width)[None] < lengths[:, None]).long()
    kinds = torch.tensor([DEMO if i % GROUP == 0 else ROLLOUT for i in range(rows)])
    correct = (torch.rand(rows, generator=g) < 0.4) & (kinds == ROLLOUT)
    advantages = torch.randn(rows, generator=g)
    advantages[kinds == DEMO] = advantages[kinds == DEMO].abs()  # the demonstration is right: advantage >= 0
    demo, rollout = kinds == DEMO, kinds == ROLLOUT
    tokens = completion_mask.sum(-1).float()
    return {
        "prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
        "completion_mask": completion_mask, "advantages": advantages,
        "num_items_in_batch": completion_mask.sum().float(), "srft_row_kind": kinds, "srft_correct": correct,
        # This micro-batch is the whole generation batch.
        "srft_demo_rows": demo.sum().float(), "srft_demo_tokens": tokens[demo].sum(),
        "srft_rollout_rows": rollout.sum().float(), "srft_rollout_tokens": tokens[rollout].sum(),
    }


def source_gradient(model, batch, method: str) -> torch.Tensor:
    """The gradient of HPT's (`srft_hpt`) or LUFFY's (`luffy`) micro-batch loss, from the logits (accumulation 1)."""
    model.zero_grad()
    prompt_length = batch["prompt_ids"].size(1)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, prompt_length - 1 : -1].float()
    log_probs = torch.log_softmax(logits, -1)
    logp = log_probs.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    mask = batch["completion_mask"].float()
    demo = (batch["srft_row_kind"] == DEMO).unsqueeze(-1)
    advantages = batch["advantages"].unsqueeze(-1)
    row_entropy = ((entropy.detach() * mask).sum(-1) / mask.sum(-1)).unsqueeze(-1)
    prob = logp.exp()
    off_policy = -advantages * prob / (prob + 0.1)
    if method == "srft_hpt":
        on_advantage = torch.where(batch["srft_correct"].unsqueeze(-1), 0.1 * torch.exp(row_entropy),
                                   torch.full_like(row_entropy, -1.0))
        on_policy = -on_advantage * logp
        demo_mask = mask * demo
        sft = (-0.5 * torch.exp(-row_entropy) * logp * demo_mask).sum() / demo_mask.sum()
    else:  # LUFFY: unclipped -A * ratio on the rollouts, ratio = p / p_old with p_old = p (one update per batch)
        on_policy = -advantages * torch.exp(logp - logp.detach())
        sft = torch.zeros(())
    policy = (torch.where(demo, off_policy, on_policy) * mask).sum() / LENGTH
    entropy_bonus = (entropy * mask).sum() / mask.sum()
    (policy + sft - 0.001 * entropy_bonus).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def trainer_gradient(tmp_path, model, tokenizer, batch, **overrides) -> torch.Tensor:
    trainer = SRFTTrainer(model=model, reward_funcs=boxed_reward, processing_class=tokenizer,
                          train_dataset=arithmetic_dataset(),
                          args=config(tmp_path, num_generations=GROUP, per_device_train_batch_size=GROUP,
                                      max_completion_length=LENGTH, bf16=False, **overrides))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.zero_grad()
    trainer._compute_loss(trainer.model, batch).backward()
    return torch.cat([p.grad.flatten() for p in trainer.model.parameters()])


def confident_model(tokenizer):
    """The tiny model with sharpened logits (mean token entropy ~1 nat instead of ~log V), so that w_RL = 0.1 e^H and
    w_SFT = 0.5 e^-H are of the same order and neither the policy nor the SFT term swamps the other."""
    model = build_tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        model.model.norm.weight.mul_(11.0)
    return model


def compare(tmp_path, tiny_tokenizer, method, rows, **overrides):
    model = confident_model(tiny_tokenizer)
    batch = micro_batch(rows)
    ours = trainer_gradient(tmp_path / f"{method}{rows}", copy.deepcopy(model), tiny_tokenizer, batch, method=method,
                            **overrides)
    source = source_gradient(copy.deepcopy(model), batch, method)
    cosine = torch.nn.functional.cosine_similarity(ours, source, dim=0).item()
    return cosine, (ours.norm() / source.norm()).item()


@pytest.mark.parametrize("method", ["srft_hpt", "luffy"])
def test_presets_match_their_source_per_micro_batch_at_every_size(tmp_path, tiny_tokenizer, method):
    results = {rows: compare(tmp_path, tiny_tokenizer, method, rows) for rows in (4, 16)}
    for rows, (cosine, ratio) in results.items():
        assert cosine >= 0.99, (rows, cosine)
        assert ratio == pytest.approx(1.0, rel=0.01), (rows, ratio)
    assert results[4][1] == pytest.approx(results[16][1], rel=0.01)  # the size ratio does not depend on B


def test_the_former_scaling_diverges_from_the_source_as_rows_grow(tmp_path, tiny_tokenizer):
    """Before issue 21 the presets divided the policy terms by the rows as well (TRL's `dr_grpo`): HPT's update was
    `pg / B + sft + entropy`, so its direction drifted from the source's as B grew; LUFFY's kept the direction (its
    entropy bonus is tiny) but shrank as 1/B."""
    cos4, ratio4 = compare(tmp_path, tiny_tokenizer, "srft_hpt", 4, term_normalization="sft_token_mean")
    cos16, ratio16 = compare(tmp_path, tiny_tokenizer, "srft_hpt", 16, term_normalization="sft_token_mean")
    assert cos16 < cos4 < 0.99
    assert ratio16 < ratio4 < 1.0
    _, luffy4 = compare(tmp_path, tiny_tokenizer, "luffy", 4, term_normalization="shared")
    _, luffy16 = compare(tmp_path, tiny_tokenizer, "luffy", 16, term_normalization="shared")
    assert luffy4 == pytest.approx(1 / 4, rel=0.02) and luffy16 == pytest.approx(1 / 16, rel=0.02)


def test_verl_normalization_needs_dr_grpo(tmp_path):
    with pytest.raises(ValueError, match="dr_grpo"):
        config(tmp_path, method="srft_hpt", loss_type="dapo")


def test_rollout_loss_off_keeps_only_the_demonstration_terms(tmp_path, tiny_tokenizer):
    """The imitation control (`rollout_loss="off"`): the rollouts carry no loss. Its gradient is SRFT's on the same
    batch with every rollout made unscorable (no Eq. 12 loss), and differs from SRFT's with them."""
    from srft_trl.trainer import UNSCORED

    model = confident_model(tiny_tokenizer)
    batch = micro_batch(8)
    no_rollouts = {**batch, "srft_row_kind": torch.where(batch["srft_row_kind"] == ROLLOUT, UNSCORED, DEMO)}
    off = trainer_gradient(tmp_path / "off", copy.deepcopy(model), tiny_tokenizer, batch, rollout_loss="off")
    srft_without = trainer_gradient(tmp_path / "w", copy.deepcopy(model), tiny_tokenizer, no_rollouts)
    srft = trainer_gradient(tmp_path / "s", copy.deepcopy(model), tiny_tokenizer, batch)
    assert off.abs().sum() > 0
    torch.testing.assert_close(off, srft_without)
    assert not torch.allclose(off, srft, rtol=1e-3, atol=1e-7)
