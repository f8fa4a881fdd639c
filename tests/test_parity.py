"""Parity with TRL's GRPOTrainer: these tests fail loudly when TRL's private methods drift.

srft-trl overrides five private GRPOTrainer methods and mirrors its loss reduction; trl is pinned
to the minor version they were written against (setup.cfg). If an upgrade changes any of them,
one of these tests breaks before a user's run silently does the wrong thing.
"""

import copy
import inspect

import pytest
import torch
import trl
from trl import GRPOConfig, GRPOTrainer

from helpers import arithmetic_dataset, boxed_reward, config
from srft_trl import SRFTTrainer
from srft_trl.trainer import ROLLOUT
from srft_trl.tiny import build_tiny_model

OVERRIDDEN = {
    "_generate_and_score_completions": ["self", "inputs"],
    "_generate": ["self", "prompts"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_get_per_token_logps_and_entropies": ["self", "model", "input_ids", "attention_mask", "logits_to_keep"],
    "_compute_loss": ["self", "model", "inputs"],
    "_tokenize_prompts": ["self", "prompts"],
}


def test_trl_is_the_pinned_minor_version():
    assert trl.__version__.startswith("1.16."), f"srft-trl was built against trl 1.16.*, found {trl.__version__}"


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_overridden_parent_methods_keep_their_signatures(name):
    parameters = list(inspect.signature(getattr(GRPOTrainer, name)).parameters)
    assert parameters[: len(OVERRIDDEN[name])] == OVERRIDDEN[name]


def test_parent_still_reads_advantages_after_its_forward_pass():
    """SRFT sets the rollout advantages from the forward's entropies, so the parent must read them after it."""
    source = inspect.getsource(GRPOTrainer._compute_loss)
    forward = source.index("self._get_per_token_logps_and_entropies(")
    assert source.index('inputs["advantages"]') > forward
    assert "compute_entropy=True" in source[forward : forward + 400]


def grpo_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "grpo"), num_generations=4, per_device_train_batch_size=8, max_completion_length=24,
        max_steps=2, learning_rate=1e-2, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", seed=0,
        log_completions=False,
    )
    values.update(overrides)
    return GRPOConfig(**values)


def flat_parameters(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def constant_reward(completions, **kwargs):
    """A reward with spread (so GRPO has a signal from a random model): longer completions score higher."""
    texts = [c[-1]["content"] for c in completions]
    return [float(len(t) % 3) for t in texts]


@pytest.mark.parametrize("srft_overrides", [{"method": "grpo"}, {"method": "srft", "num_demos": 0}])
def test_no_demos_is_exactly_grpo(tmp_path, tiny_tokenizer, srft_overrides):
    dataset = arithmetic_dataset()
    torch.manual_seed(0)
    grpo = GRPOTrainer(model=build_tiny_model(tiny_tokenizer, seed=0), reward_funcs=constant_reward,
                       args=grpo_args(tmp_path), train_dataset=dataset, processing_class=tiny_tokenizer)
    grpo.train()
    torch.manual_seed(0)
    srft = SRFTTrainer(model=build_tiny_model(tiny_tokenizer, seed=0), reward_funcs=constant_reward,
                       args=config(tmp_path, max_completion_length=24, learning_rate=1e-2, **srft_overrides),
                       train_dataset=dataset, processing_class=tiny_tokenizer)
    srft.train()
    assert not torch.equal(flat_parameters(grpo.model), flat_parameters(build_tiny_model(tiny_tokenizer, seed=0)))
    assert torch.equal(flat_parameters(grpo.model), flat_parameters(srft.model))


def fixed_batch(tokenizer, rows=6, completion_length=7):
    """A hand-made micro-batch of on-policy rollouts (varied lengths, right padding)."""
    generator = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(5, 200, (rows, 5), generator=generator)
    completion_ids = torch.randint(5, 200, (rows, completion_length), generator=generator)
    lengths = torch.tensor([7, 3, 5, 7, 1, 6])[:rows]
    completion_mask = (torch.arange(completion_length)[None] < lengths[:, None]).long()
    correct = torch.tensor([True, False, True, False, False, True])[:rows]
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.linspace(-1.0, 1.0, rows),
        "num_items_in_batch": completion_mask.sum().float() * 2,  # as if another micro-batch shared the step
        "srft_row_kind": torch.full((rows,), ROLLOUT),
        "srft_correct": correct,
        # Per-generation-batch counts, as if another micro-batch like this one shared the generation batch.
        "srft_rollout_rows": torch.tensor(2.0 * rows),
        "srft_rollout_tokens": completion_mask.sum().float() * 2,
        "srft_demo_rows": torch.tensor(0.0),
        "srft_demo_tokens": torch.tensor(0.0),
    }


def gradients(trainer, inputs):
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in trainer.model.parameters()])


@pytest.mark.parametrize("term_normalization", ["shared", "per_term"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"])
def test_eq12_gradient_equals_grpo_with_eq12_advantages(tmp_path, tiny_tokenizer, loss_type, term_normalization):
    """On-policy, Eq. 12 has the gradient of the GRPO surrogate with advantages (+w_RL on y+, -1 on y-).

    This checks that `aggregate` reduces exactly as the parent does for each loss_type, that SRFT
    zeroes the parent's own policy term (otherwise the gradient would double), and that the SRFT
    terms see the parent's forward pass. With rollouts only, a term over its own samples
    (`per_term`) has the parent's normaliser, so both normalisations must match the parent.
    """
    model = build_tiny_model(tiny_tokenizer, seed=0)
    batch = fixed_batch(tiny_tokenizer)
    srft = SRFTTrainer(model=copy.deepcopy(model), reward_funcs=boxed_reward, processing_class=tiny_tokenizer,
                       train_dataset=arithmetic_dataset(),
                       args=config(tmp_path, loss_type=loss_type, rollout_loss="srft", rl_weighting="constant",
                                   rl_coef=0.3, sft_weighting="off", demo_rl="off", gradient_accumulation_steps=2,
                                   max_completion_length=7, term_normalization=term_normalization))
    grpo = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=boxed_reward, processing_class=tiny_tokenizer,
                       train_dataset=arithmetic_dataset(),
                       args=grpo_args(tmp_path, loss_type=loss_type, gradient_accumulation_steps=2,
                                      max_completion_length=7,
                                      # CISPO clamps the (detached) ratio at epsilon_high; TRL recommends 5.0 for it
                                      **({"epsilon_high": 5.0} if loss_type == "cispo" else {})))
    _, srft_grad = gradients(srft, batch)
    eq12_advantages = torch.where(batch["srft_correct"], torch.tensor(0.3), torch.tensor(-1.0))
    _, grpo_grad = gradients(grpo, {**batch, "advantages": eq12_advantages})
    assert grpo_grad.abs().sum() > 0
    torch.testing.assert_close(srft_grad, grpo_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("term_normalization", ["shared", "per_term"])
@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_grpo_rollout_loss_with_unit_weight_equals_parent(tmp_path, tiny_tokenizer, loss_type, term_normalization):
    model = build_tiny_model(tiny_tokenizer, seed=0)
    batch = fixed_batch(tiny_tokenizer)
    srft = SRFTTrainer(model=copy.deepcopy(model), reward_funcs=boxed_reward, processing_class=tiny_tokenizer,
                       train_dataset=arithmetic_dataset(),
                       args=config(tmp_path, method="luffy", demo_rl="off", loss_type=loss_type,
                                   gradient_accumulation_steps=2, max_completion_length=7,
                                   term_normalization=term_normalization))
    grpo = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=boxed_reward, processing_class=tiny_tokenizer,
                       train_dataset=arithmetic_dataset(),
                       args=grpo_args(tmp_path, loss_type=loss_type, gradient_accumulation_steps=2,
                                      max_completion_length=7, entropy_coef=0.001))  # LUFFY's entropy bonus
    srft_loss, srft_grad = gradients(srft, batch)
    grpo_loss, grpo_grad = gradients(grpo, batch)
    torch.testing.assert_close(srft_loss, grpo_loss)
    torch.testing.assert_close(srft_grad, grpo_grad)
