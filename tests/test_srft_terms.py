"""The SRFT terms inside the trainer: normalisation (Eq. 13 as three expectations), presets, term-balance logs,
and two regressions (evaluation with demonstrations; rollouts no reward function can score)."""

import dataclasses
import math

import pytest
import torch

from helpers import arithmetic_dataset, trainer
from srft_trl import SRFTConfig
from srft_trl.config import NO_CLIP
from srft_trl.tiny import build_tiny_model
from srft_trl.trainer import DEMO, ROLLOUT, UNSCORED


def group_batch(dataset, num_prompts, group_size):
    return [dict(dataset[i]) for i in range(num_prompts) for _ in range(group_size)]


# --------------------------------------------------------------------------------------------- regressions


def test_evaluate_with_demonstrations_and_an_eval_dataset(tmp_path, tiny_model, tiny_tokenizer):
    """`Trainer.evaluate()` computes the loss under `torch.no_grad()`: it used to raise with `num_demos > 0`."""
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, max_completion_length=16, per_device_eval_batch_size=4)
    t.eval_dataset = arithmetic_dataset(4)
    t.current_gradient_accumulation_steps = 1
    metrics = t.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    assert "eval_srft/loss_rollout" in metrics


def none_for_rollouts(completions, solution, **kwargs):
    """Scores only demonstrations (they contain `</think>`); a random model's rollouts get None (unscorable)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if "</think>" in text else None for text in texts]


def test_unscorable_rollouts_are_neither_right_nor_wrong(tmp_path, tiny_model, tiny_tokenizer):
    """TRL gives a row no reward function can score advantage 0; under Eq. 12 it must carry no loss either."""
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, reward=none_for_rollouts, max_completion_length=40)
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    output = t._generate_and_score_completions(group_batch(dataset, 2, 4))
    kinds = output["srft_row_kind"]
    assert (kinds == UNSCORED).sum() == 6 and (kinds == DEMO).sum() == 2
    assert not output["srft_correct"].any()
    assert output["srft_rollout_rows"].item() == 0  # nothing for Eq. 12 to average over
    t._compute_loss(t.model, output)
    assert t._metrics["train"]["srft/loss_rollout"][-1] == 0.0
    assert t._metrics["train"]["srft/grad_rollout"][-1] == 0.0
    assert "srft/reward_rollout" not in t._metrics["train"]  # no scored rollout to average

    # The same rollouts scored 0 instead are wrong answers: Eq. 12 pushes their likelihood down.
    def zero_for_rollouts(completions, solution, **kwargs):
        return [0.0 if r is None else r for r in none_for_rollouts(completions, solution)]

    t2 = trainer(tmp_path / "zero", build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer, dataset,
                 reward=zero_for_rollouts, max_completion_length=40)
    t2.model.train()
    t2.current_gradient_accumulation_steps = 1
    output = t2._generate_and_score_completions(group_batch(dataset, 2, 4))
    assert (output["srft_row_kind"] == ROLLOUT).sum() == 6
    t2._compute_loss(t2.model, output)
    assert t2._metrics["train"]["srft/loss_rollout"][-1] < 0  # + log pi(y-) of wrong rollouts
    assert t2._metrics["train"]["srft/grad_rollout"][-1] > 0


# --------------------------------------------------------------------------------------------- normalisation


def term_values(tmp_path, tiny_tokenizer, **overrides):
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer, dataset,
                max_completion_length=40, generation_kwargs={"do_sample": False}, num_generations=8,
                per_device_train_batch_size=16, **overrides)
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    output = t._generate_and_score_completions(group_batch(dataset, 2, 8))
    t._compute_loss(t.model, output)
    metrics = {k: v[-1] for k, v in t._metrics["train"].items() if k.startswith("srft/")}
    return output, metrics


def test_per_term_normalisation_weighs_demonstrations_as_the_paper_writes(tmp_path, tiny_tokenizer):
    """G=8, d=1, dapo: the shared normaliser divides the demonstration terms by all tokens; per_term by their own."""
    output, per_term = term_values(tmp_path / "own", tiny_tokenizer, term_normalization="per_term")
    _, shared = term_values(tmp_path / "shared", tiny_tokenizer, term_normalization="shared")
    all_tokens = output["num_items_in_batch"].item()
    demo_tokens = output["srft_demo_tokens"].item()
    rollout_tokens = output["srft_rollout_tokens"].item()
    assert demo_tokens + rollout_tokens == all_tokens
    for name, own_tokens in (("sft", demo_tokens), ("demo_rl", demo_tokens), ("rollout", rollout_tokens)):
        ratio = per_term[f"srft/loss_{name}"] / shared[f"srft/loss_{name}"]
        assert ratio == pytest.approx(all_tokens / own_tokens, rel=1e-4), name
        grad_ratio = per_term[f"srft/grad_{name}"] / shared[f"srft/grad_{name}"]
        assert grad_ratio == pytest.approx(all_tokens / own_tokens, rel=1e-4), name
    assert all_tokens / demo_tokens > 4  # the demonstrations were diluted several-fold before


def test_sft_token_mean_is_a_mean_over_demonstration_tokens(tmp_path, tiny_tokenizer):
    output, metrics = term_values(tmp_path, tiny_tokenizer, method="srft_hpt", term_normalization="sft_token_mean")
    _, shared = term_values(tmp_path / "shared", tiny_tokenizer, method="srft_hpt", term_normalization="shared")
    ratio = metrics["srft/loss_sft"] / shared["srft/loss_sft"]
    # shared dr_grpo divides by rows * max_completion_length; the token mean by the demonstrations' tokens.
    assert ratio == pytest.approx(16 * 40 / output["srft_demo_tokens"].item(), rel=1e-4)
    assert metrics["srft/loss_demo_rl"] == pytest.approx(shared["srft/loss_demo_rl"], rel=1e-5)  # RL terms shared


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "srft"},  # per_term, dapo (token semantics)
        {"method": "srft", "loss_type": "grpo"},  # per_term, row semantics
        {"method": "srft", "term_normalization": "shared", "loss_type": "dr_grpo"},
        {"method": "srft_hpt", "term_normalization": "sft_token_mean"},  # dr_grpo
        {"method": "luffy", "term_normalization": "per_term", "loss_type": "dapo"},  # GRPO loss moved to own normaliser
        {"method": "grpo_sft"},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_accumulation_splits_do_not_change_the_update(tmp_path, tiny_tokenizer, overrides):
    """One step of 8 rows equals 4 accumulated micro-batches of 2 rows, some of which hold no demonstration."""
    results = []
    for batch, accumulation in ((8, 1), (2, 4)):
        model = build_tiny_model(tiny_tokenizer, seed=0)
        t = trainer(tmp_path / f"{batch}", model, tiny_tokenizer, per_device_train_batch_size=batch,
                    gradient_accumulation_steps=accumulation, max_steps=1, max_completion_length=40,
                    generation_kwargs={"do_sample": False}, optim="sgd", **overrides)
        t.train()
        results.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]))
    assert not torch.equal(results[0], torch.cat([p.detach().flatten() for p in
                                                  build_tiny_model(tiny_tokenizer, seed=0).parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["srft_hpt", "luffy"])
def test_source_presets_change_with_the_split_as_their_source_does(tmp_path, tiny_tokenizer, method):
    """`term_normalization="verl"` (HPT, LUFFY): each micro-batch's policy loss is a token sum / L, so one micro-batch
    of 8 rows weighs the policy terms 4x more against the SFT term and the entropy bonus than 4 micro-batches of 2:
    the split legitimately changes the update, as it does in the source (tests/test_source_scale.py checks each
    micro-batch against the source's formula)."""
    initial = torch.cat([p.detach().flatten() for p in build_tiny_model(tiny_tokenizer, seed=0).parameters()])
    updates = []
    for batch, accumulation in ((8, 1), (2, 4)):
        t = trainer(tmp_path / f"{batch}", build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer,
                    per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, max_steps=1,
                    max_completion_length=40, generation_kwargs={"do_sample": False}, optim="sgd", method=method,
                    max_grad_norm=0.0)  # no clipping: it would hide the size
        t.train()
        updates.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]) - initial)
    assert updates[0].abs().sum() > 0 and updates[1].abs().sum() > 0
    # The policy terms dominate this random model's update (w_RL = 0.1 e^H is large at its entropy): one micro-batch
    # of 8 rows sums them over 8 rows / L, four of 2 rows over 2 rows / (4 L) each, a quarter of the size in all.
    assert updates[0].norm() / updates[1].norm() > 2


def test_term_balance_is_logged_for_every_term(tmp_path, tiny_model, tiny_tokenizer):
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, max_steps=1)
    t.train()
    log = next(h for h in t.state.log_history if "loss" in h)
    for name in ("sft", "demo_rl", "rollout"):
        assert math.isfinite(log[f"srft/loss_{name}"])
        assert log[f"srft/grad_{name}"] > 0


def test_parameter_space_gradient_norms_are_logged_on_request(tmp_path, tiny_tokenizer):
    """Opt-in: each term's gradient norm with respect to the parameters; linear in the term's constant weight."""
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer, dataset,
                generation_kwargs={"do_sample": False}, log_term_param_grad_norms=True, sft_weighting="constant",
                sft_coef=0.5)
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    output = t._generate_and_score_completions(group_batch(dataset, 2, 4))
    t._compute_loss(t.model, output)
    first = {k: v[-1] for k, v in t._metrics["train"].items() if k.startswith("srft/param_")}
    terms = ("sft", "demo_rl", "rollout")
    norms = {f"srft/param_grad_{n}" for n in terms + ("total",)}
    cosines = {"srft/param_cos_sft_vs_demo_rl", "srft/param_cos_sft_vs_rollout", "srft/param_cos_demo_rl_vs_rollout"}
    cosines |= {f"srft/param_cos_{n}_vs_total" for n in terms}
    halves = ("rollout_success", "rollout_failure")  # Eq. 12 on correct / incorrect rollouts
    norms |= {f"srft/param_grad_{h}" for h in halves}
    cosines |= {f"srft/param_cos_{h}_vs_{n}" for h in halves for n in terms + ("total",)}
    assert set(first) == norms | cosines
    # The halves add up to the rollout term: |s| cos(s, r) + |f| cos(f, r) = |r|.
    along = sum(first[f"srft/param_grad_{h}"] * first[f"srft/param_cos_{h}_vs_rollout"] for h in halves)
    assert along == pytest.approx(first["srft/param_grad_rollout"], rel=1e-4)
    assert all(first[k] > 0 for k in norms - {f"srft/param_grad_{h}" for h in halves})
    assert all(-1.0 <= first[k] <= 1.0 for k in cosines)
    assert first["srft/param_grad_total"] <= sum(first[f"srft/param_grad_{n}"] for n in terms) + 1e-6
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in t.model.parameters())  # no .grad written
    # The total is what backward() computes: its norm equals the real gradient's.
    t.model.zero_grad()
    t._compute_loss(t.model, output).backward()
    real = torch.sqrt(sum(p.grad.pow(2).sum() for p in t.model.parameters() if p.grad is not None))
    assert t._metrics["train"]["srft/param_grad_total"][-1] == pytest.approx(real.item(), rel=1e-4)
    t.model.zero_grad()
    t.args.sft_coef = 1.0
    t._compute_loss(t.model, output)
    latest = {k: v[-1] for k, v in t._metrics["train"].items() if k.startswith("srft/param_")}
    assert latest["srft/param_grad_sft"] == pytest.approx(2 * first["srft/param_grad_sft"], rel=1e-4)
    assert latest["srft/param_grad_rollout"] == pytest.approx(first["srft/param_grad_rollout"], rel=1e-4)
    # A cosine between two terms does not depend on their weights; a term's cosine with the total does.
    assert latest["srft/param_cos_sft_vs_rollout"] == pytest.approx(first["srft/param_cos_sft_vs_rollout"], abs=1e-4)
    assert latest["srft/param_cos_sft_vs_total"] > first["srft/param_cos_sft_vs_total"]
    off = trainer(tmp_path / "off", build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer, dataset, max_steps=1)
    off.train()
    assert not any(k.startswith("srft/param_") for h in off.state.log_history for k in h)


# --------------------------------------------------------------------------------------------- presets


def test_presets_set_grpo_fields_and_explicit_values_win():
    common = dict(output_dir="x", report_to=[], use_cpu=True)
    paper = SRFTConfig(**common)
    assert (paper.term_normalization, paper.loss_type, paper.scale_rewards) == ("per_term", "dapo", "group")
    assert (paper.epsilon, paper.entropy_coef, paper.demo_rl) == (0.2, 0.0, "prob")
    hpt = SRFTConfig(method="srft_hpt", **common)
    assert (hpt.demo_rl, hpt.shaping_gamma, hpt.rollout_loss) == ("shaped", 0.1, "srft")
    assert (hpt.scale_rewards, hpt.loss_type, hpt.entropy_coef) == ("none", "dr_grpo", 0.001)
    assert (hpt.term_normalization, hpt.sft_coef, hpt.rl_coef, hpt.entropy_granularity) == (
        "verl", 0.5, 0.1, "sequence")
    luffy = SRFTConfig(method="luffy", **common)
    assert (luffy.scale_rewards, luffy.loss_type, luffy.entropy_coef) == ("none", "dr_grpo", 0.001)
    assert luffy.epsilon == NO_CLIP and luffy.sft_weighting == "off" and luffy.rollout_loss == "grpo"
    assert luffy.term_normalization == "verl"
    mine = SRFTConfig(method="luffy", loss_type="grpo", epsilon=0.3, scale_rewards="group", entropy_coef=0.0,
                      term_normalization="shared", **common)
    assert (mine.loss_type, mine.epsilon, mine.scale_rewards, mine.entropy_coef) == ("grpo", 0.3, "group", 0.0)
    grpo = SRFTConfig(method="grpo", **common)
    assert (grpo.num_demos, grpo.loss_type, grpo.scale_rewards, grpo.epsilon) == (0, "dapo", "group", 0.2)
    with pytest.raises(ValueError, match="term_normalization"):
        SRFTConfig(term_normalization="sometimes", **common)


def test_luffy_preset_trains_without_clipping(tmp_path, tiny_model, tiny_tokenizer):
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, method="luffy", max_steps=1)
    assert t.epsilon_low == NO_CLIP and t.epsilon_high == NO_CLIP
    t.train()
    log = next(h for h in t.state.log_history if "loss" in h)
    assert math.isfinite(log["loss"]) and log["clip_ratio/region_mean"] == 0.0



# --------------------------------------------------------------------------------------------- recipes


def test_public_code_recipe_differs_from_the_paper_recipe_only_in_the_objective(monkeypatch):
    import transformers.training_args

    from srft_trl.recipes import parse_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda *a, **k: True)
    paper = parse_args(["--config", "recipes/srft_qwen7b.yaml"])
    hpt = parse_args(["--config", "recipes/srft_hpt_qwen7b.yaml"])
    objective = {"method", "demo_rl", "term_normalization", "scale_rewards", "loss_type", "entropy_coef",
                 "output_dir", "logging_dir", "hub_model_id", "run_name"}
    # Under term_normalization="verl" the policy:SFT balance grows with the rows per micro-batch, so the public-code
    # recipe sets HPT's micro-batch (docs/presets.md); the rows per optimiser step and per generation stay the paper's.
    split = {"per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation"}
    for name in (f.name for f in dataclasses.fields(paper.training)):
        if name not in objective | split:
            assert getattr(hpt.training, name) == getattr(paper.training, name), name
    for recipe in (paper.training, hpt.training):
        assert recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps == 64  # x 8 processes = 512
        assert recipe.per_device_train_batch_size * recipe.steps_per_generation == 128  # x 8 processes = 1,024
    assert hpt.training.per_device_train_batch_size == 16 and paper.training.per_device_train_batch_size == 2
    assert vars(hpt.script) == vars(paper.script) and vars(hpt.model) == vars(paper.model)
    preset = SRFTConfig(output_dir="x", method="srft_hpt", report_to=[], use_cpu=True)
    for name in objective - {"output_dir", "logging_dir", "hub_model_id", "run_name"}:
        assert getattr(hpt.training, name) == getattr(preset, name), name
    luffy = parse_args(["--config", "recipes/luffy_qwen7b.yaml"]).training
    assert luffy.epsilon == NO_CLIP and luffy.entropy_coef == 0.001 and luffy.term_normalization == "verl"
    assert luffy.per_device_train_batch_size == 16 and luffy.gradient_accumulation_steps == 4
    assert paper.training.term_normalization == "per_term"
