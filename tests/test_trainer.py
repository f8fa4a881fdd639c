"""SRFTTrainer end to end on the tiny local model: presets, group composition, backends, PEFT, errors."""

import math
import re
import types

import pytest
import torch
from datasets import Dataset

from helpers import arithmetic_dataset, arithmetic_rows, boxed_reward, config, trainer
from srft_trl import SRFTConfig, SRFTTrainer
from srft_trl.demos import demo_slot_mask
from srft_trl.trainer import DEMO, DROPPED, ROLLOUT

# --------------------------------------------------------------------------------------------- presets

EXPECTED_TERMS = {
    "srft": {"srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout", "srft/w_sft", "srft/w_rl"},
    "srft_no_wsft": {"srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout", "srft/w_sft"},
    "srft_no_wrl": {"srft/loss_sft", "srft/loss_demo_rl", "srft/loss_rollout"},
    "luffy": {"srft/loss_demo_rl", "srft/loss_rollout"},
    "grpo_sft": {"srft/loss_sft", "srft/loss_rollout", "srft/w_sft"},
}
ABSENT_TERMS = {"luffy": {"srft/loss_sft"}, "grpo_sft": {"srft/loss_demo_rl"}}


@pytest.mark.parametrize("method", ["srft", "srft_no_wsft", "srft_no_wrl", "luffy", "grpo_sft", "grpo"])
def test_every_preset_trains_and_logs_its_terms(tmp_path, tiny_model, tiny_tokenizer, method):
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, method=method)
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    keys = set(logs[0])
    if method == "grpo":
        assert not any(k.startswith("srft/") for k in keys)
    else:
        assert EXPECTED_TERMS[method] <= keys
        assert not (ABSENT_TERMS.get(method, set()) & keys)
        assert logs[0]["srft/reward_demo"] == 1.0  # demonstrations are scored by the same reward
        assert logs[0]["srft/demos_dropped"] == 0
    changed = any(not torch.equal(before[n], p) for n, p in t.model.named_parameters())
    if method == "grpo" and logs[0]["frac_reward_zero_std"] == 1.0:
        assert not changed  # a random model solves nothing: all advantages are 0, so GRPO has no signal
    else:
        assert changed  # the demonstrations give the other methods a signal from the first step


def test_sft_weight_follows_eq8(tmp_path, tiny_model, tiny_tokenizer):
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, method="srft", max_steps=1)
    t.train()
    log = next(h for h in t.state.log_history if "loss" in h)
    # sequence granularity: w_SFT = 0.5 * exp(-H) with H the demo's mean entropy (one demo row per group here)
    assert log["srft/w_sft"] == pytest.approx(0.5 * math.exp(-log["srft/entropy_demo"]), rel=0.05)


def test_config_presets_and_explicit_values():
    luffy = SRFTConfig(output_dir="x", method="luffy", sft_weighting="entropy", report_to=[], use_cpu=True)
    assert luffy.demo_rl == "shaped" and luffy.rollout_loss == "grpo"
    assert luffy.sft_weighting == "entropy"  # explicit wins over the preset's "off"
    paper = SRFTConfig(output_dir="x", report_to=[], use_cpu=True)
    assert (paper.num_demos, paper.sft_coef, paper.rl_coef) == (1, 0.5, 0.1)
    assert paper.entropy_granularity == "sequence" and paper.rollout_loss == "srft"
    ablation = SRFTConfig(output_dir="x", method="srft_no_wrl", report_to=[], use_cpu=True)
    assert (ablation.rl_weighting, ablation.rl_coef) == ("constant", 1.0)
    with pytest.raises(ValueError, match="sft_weighting"):
        SRFTConfig(output_dir="x", sft_weighting="sometimes", report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="method"):
        SRFTConfig(output_dir="x", method="dpo", report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="num_demos"):
        SRFTConfig(output_dir="x", num_generations=4, num_demos=4, report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="demo_in_baseline"):
        SRFTConfig(output_dir="x", demo_in_baseline=False, report_to=[], use_cpu=True)


# --------------------------------------------------------------------------------------------- groups


def group_batch(dataset, num_prompts, group_size):
    """The rows the RepeatSampler hands the trainer: each prompt `group_size` times in a row."""
    return [dict(dataset[i]) for i in range(num_prompts) for _ in range(group_size)]


@pytest.mark.parametrize("num_demos", [1, 2])
def test_group_composition_and_only_rollouts_generated(tmp_path, tiny_model, tiny_tokenizer, num_demos):
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, num_demos=num_demos, max_completion_length=40)
    requested = []
    original = t._generate_single_turn

    def spy(prompt_ids, images, multimodal_fields, num_generations, **kwargs):
        requested.append((len(prompt_ids), num_generations))
        return original(prompt_ids, images, multimodal_fields, num_generations, **kwargs)

    t._generate_single_turn = spy
    t.model.train()
    output = t._generate_and_score_completions(group_batch(dataset, 2, 4))
    assert requested == [(2 * (4 - num_demos), 4 - num_demos)]
    kinds = output["srft_row_kind"].view(2, 4)
    assert ((kinds == DEMO).sum(dim=1) == num_demos).all()
    for row in (kinds.flatten() == DEMO).nonzero().flatten().tolist():
        ids = output["completion_ids"][row][output["completion_mask"][row].bool()].tolist()
        demo = dataset[row // 4]["demo"]
        assert ids == tiny_tokenizer(demo, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
        assert output["advantages"][row] > 0  # the correct demo beats the random rollouts in its group (Eq. 7)
    assert (output["advantages"][kinds.flatten() == ROLLOUT] <= 0).all()


def test_eval_mode_generates_every_row(tmp_path, tiny_model, tiny_tokenizer):
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, max_completion_length=16)
    t.model.eval()
    t.current_gradient_accumulation_steps = 1  # set by Trainer.train(); evaluation outside it needs it too
    output = t._generate_and_score_completions(group_batch(dataset, 1, 4))
    assert (output["srft_row_kind"] == ROLLOUT).all()
    loss = t._compute_loss(t.model, output)
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    "group, demos, rows_per_process, processes", [(4, 2, 2, 2), (8, 2, 4, 2), (8, 4, 2, 4), (6, 3, 4, 3), (8, 1, 8, 2)]
)
def test_demo_slots_balance_processes_and_keep_groups_contiguous(group, demos, rows_per_process, processes):
    """The invariant vLLM server mode relies on, even when groups straddle processes."""
    masks = [demo_slot_mask(rows_per_process, p * rows_per_process, group, demos) for p in range(processes)]
    rollouts = [[p * rows_per_process + i for i, is_demo in enumerate(m) if not is_demo] for p, m in enumerate(masks)]
    assert len({len(r) for r in rollouts}) == 1  # every process asks for the same number of rollouts
    gathered = [row // group for r in rollouts for row in r]  # group id of each on-policy row, in process order
    deduplicated = gathered[:: group - demos]
    assert deduplicated == sorted(set(gathered))  # `prompts[::n]` picks exactly one prompt per group
    assert all(gathered.count(g) == group - demos for g in set(gathered))


# --------------------------------------------------------------------------------------------- vLLM stand-in


class FakeVLLMGeneration:
    """Reproduces TRL's VLLMGeneration.generate contract without vLLM.

    Server mode: gathers prompts, keeps `prompts[::num_generations]`, generates `num_generations`
    completions for each, and slices back this process's share. Colocate mode: one completion per
    row. Each completion answers the problem in its prompt, so a completion spliced into the wrong
    group would be scored 0.
    """

    def __init__(self, mode, tokenizer):
        self.mode, self.tokenizer, self.calls, self.unique_prompts = mode, tokenizer, [], []

    def sync_weights(self):
        pass

    def _answer(self, prompt_ids):
        a, b = map(int, re.search(r"Compute (\d+)\+(\d+)", self.tokenizer.decode(prompt_ids)).groups())
        text = f"<think>\nok\n</think>\n\\boxed{{{a + b}}}"
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def generate(self, prompts, images, num_generations, profiler=None):
        self.calls.append((len(prompts), num_generations))
        if self.mode == "server":
            unique = prompts[::num_generations]  # gather_object over one process is the identity
            self.unique_prompts.extend(unique)
            all_prompt_ids = [p for p in unique for _ in range(num_generations)]
            all_completions = [self._answer(p) for p in all_prompt_ids]
            share = slice(0, len(prompts))
            prompt_ids, completion_ids = all_prompt_ids[share], all_completions[share]
        else:
            prompt_ids, completion_ids = list(prompts), [self._answer(p) for p in prompts]
        logprobs = [[[-0.5] for _ in ids] for ids in completion_ids]
        return prompt_ids, completion_ids, logprobs, None


@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_vllm_paths_with_a_stand_in(tmp_path, tiny_model, tiny_tokenizer, mode):
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, num_generations=4, num_demos=1)
    fake = FakeVLLMGeneration(mode, tiny_tokenizer)
    t.use_vllm, t.vllm_generation, t.vllm_importance_sampling_correction = True, fake, True
    t._last_loaded_step = -1
    t.vllm_importance_sampling_mode, t.vllm_importance_sampling_clip_max = "token_truncate", 3.0
    t.model.train()
    output = t._generate_and_score_completions(group_batch(dataset, 2, 4))
    assert fake.calls == [(6, 3)]  # 2 groups x 3 rollouts; de-duplication by the on-policy group size
    if mode == "server":
        assert len(fake.unique_prompts) == 2
    kinds = output["srft_row_kind"]
    assert (kinds == DEMO).sum() == 2
    # Every rollout answered its own group's problem: splicing kept rows aligned with their prompts.
    assert t._metrics["train"]["srft/reward_rollout"][-1] == 1.0
    # Demonstrations have no sampling log-probs, so their importance-sampling correction is exactly 1.
    ratio = output["importance_sampling_ratio"][kinds == DEMO]
    mask = output["completion_mask"][kinds == DEMO].bool()
    assert torch.allclose(ratio[mask], torch.ones_like(ratio[mask]))


# --------------------------------------------------------------------------------------------- demo policies


def long_demo_dataset(missing_row: int | None = None):
    rows = arithmetic_rows(8)
    for i, row in enumerate(rows):
        if i % 2 == 0:
            row["demo"] = "<think>\n" + "0+0=0\n" * 20 + f"</think>\n\\boxed{{{row['solution']}}}"
    if missing_row is not None:
        rows[missing_row]["demo"] = ""
    return Dataset.from_list(rows)


def test_overlength_demos_are_dropped_not_mislabelled(tmp_path, tiny_model, tiny_tokenizer):
    dataset = long_demo_dataset(missing_row=1)
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, max_completion_length=40)
    t.model.train()
    output = t._generate_and_score_completions(group_batch(dataset, 2, 4))
    kinds = output["srft_row_kind"]
    assert (kinds == DROPPED).sum() == 2  # row 0's demo is too long, row 1's is empty
    assert (output["advantages"][kinds == DROPPED] == 0).all()
    loss_mask = output["completion_mask"] * output["tool_mask"]
    assert loss_mask[kinds == DROPPED].sum() == 0  # no loss token in a dropped slot
    assert t._metrics["train"]["srft/demos_dropped"][-1] == 2
    t.train()
    assert all(math.isfinite(h["loss"]) for h in t.state.log_history if "loss" in h)


def test_overlength_demos_can_be_truncated(tmp_path, tiny_model, tiny_tokenizer):
    dataset = long_demo_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, max_completion_length=40, demo_overlength="truncate")
    t.model.train()
    output = t._generate_and_score_completions(group_batch(dataset, 1, 4))
    demo_rows = output["srft_row_kind"] == DEMO
    assert demo_rows.sum() == 1
    assert output["completion_mask"][demo_rows].sum() == 40
    assert t._metrics["train"]["srft/reward_demo"][-1] == 1.0  # scored on the full demonstration


def test_completion_logs_mark_demos(tmp_path, tiny_model, tiny_tokenizer):
    dataset = arithmetic_dataset()
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, dataset, log_completions=True, max_completion_length=16)
    t.model.train()
    t._generate_and_score_completions(group_batch(dataset, 2, 4))
    assert list(t._logs["extra"]["is_demo"]) == [False, False, False, True] * 2


# --------------------------------------------------------------------------------------------- PEFT, accumulation


def test_lora_training_updates_only_adapters(tmp_path, tiny_model, tiny_tokenizer):
    from peft import LoraConfig

    t = SRFTTrainer(
        model=tiny_model,
        reward_funcs=boxed_reward,
        args=config(tmp_path, learning_rate=1e-2),
        train_dataset=arithmetic_dataset(),
        processing_class=tiny_tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    t.train()
    after = dict(t.model.named_parameters())
    lora = [n for n in before if "lora_" in n]
    assert lora and any(not torch.equal(before[n], after[n]) for n in lora if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_tokenizer, loss_type):
    """B=8 in one step equals B=4 x 2 accumulation steps (same generation batch, greedy decoding)."""
    from srft_trl.tiny import build_tiny_model

    results = []
    for batch, accumulation in ((8, 1), (4, 2)):
        model = build_tiny_model(tiny_tokenizer, seed=0)
        t = trainer(
            tmp_path / f"{batch}",
            model,
            tiny_tokenizer,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            loss_type=loss_type,
            max_completion_length=24,
            generation_kwargs={"do_sample": False},
            optim="sgd",  # Adam's first step is ~lr*sign(g): it would amplify float noise in near-zero gradients
        )
        t.train()
        results.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- errors


def test_bad_rows_fail_before_training_naming_the_row(tmp_path, tiny_model, tiny_tokenizer):
    rows = arithmetic_rows(8)
    for row in rows:
        row["demo"] = [{"role": "assistant", "content": row["demo"]}]
    rows[3]["demo"] = [{"role": "user", "content": "not a demonstration"}]
    with pytest.raises(ValueError, match=r"dataset\[3\]: field 'demo' must end with an assistant message"):
        trainer(tmp_path, tiny_model, tiny_tokenizer, Dataset.from_list(rows))
    numbers = Dataset.from_list([{**row, "demo": 7} for row in arithmetic_rows(8)])
    with pytest.raises(ValueError, match=r"dataset\[0\]: field 'demo' must be a string or a list of messages, got int"):
        trainer(tmp_path, tiny_model, tiny_tokenizer, numbers)
    rows = arithmetic_rows(8)
    rows[5]["prompt"] = []
    with pytest.raises(ValueError, match=r"dataset\[5\]: field 'prompt'"):
        trainer(tmp_path, tiny_model, tiny_tokenizer, Dataset.from_list(rows))
    no_demo = arithmetic_dataset().remove_columns("demo")
    with pytest.raises(ValueError, match=r"no 'demo' column .*solution"):
        trainer(tmp_path, tiny_model, tiny_tokenizer, no_demo)
    renamed = arithmetic_dataset().rename_column("demo", "expert")
    assert trainer(tmp_path, tiny_model, tiny_tokenizer, renamed, demo_column="expert", max_steps=1) is not None


def test_conversational_demos_are_accepted(tmp_path, tiny_model, tiny_tokenizer):
    rows = arithmetic_rows(8)
    for row in rows:
        row["demo"] = [{"role": "assistant", "content": row["demo"]}]
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, Dataset.from_list(rows), max_steps=1)
    t.train()
    assert next(h for h in t.state.log_history if "loss" in h)["srft/reward_demo"] == 1.0


def test_unsupported_combinations_are_rejected(tmp_path, tiny_model, tiny_tokenizer):
    from trl import GRPOConfig

    with pytest.raises(TypeError, match="SRFTConfig"):
        SRFTTrainer(model=tiny_model, reward_funcs=boxed_reward, args=GRPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                    train_dataset=arithmetic_dataset(), processing_class=tiny_tokenizer)

    def calculator(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: first number.
            b: second number.
        """
        return a + b

    with pytest.raises(ValueError, match="tools"):
        SRFTTrainer(model=tiny_model, reward_funcs=boxed_reward, args=config(tmp_path), train_dataset=arithmetic_dataset(),
                    processing_class=tiny_tokenizer, tools=[calculator])
    with pytest.raises(ValueError, match="remove_unused_columns"):
        trainer(tmp_path, tiny_model, tiny_tokenizer, remove_unused_columns=True)
    # Per-process shares that cannot hold equal numbers of on-policy rows (multi-process settings).
    args = types.SimpleNamespace(per_device_train_batch_size=2, steps_per_generation=1, num_demos=1, num_generations=4,
                                 remove_unused_columns=False)
    with pytest.raises(ValueError, match="divisible by num_generations"):
        SRFTTrainer._check_supported(None, None, None, args)


def test_model_card_names_srft_and_the_paper(tmp_path, tiny_model, tiny_tokenizer):
    t = trainer(tmp_path, tiny_model, tiny_tokenizer)
    t.create_model_card(model_name="tiny-srft")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "SRFT" in card and "2506.19767" in card and "srft" in card


def test_buffered_generations_reused_across_steps_and_iterations(tmp_path, tiny_model, tiny_tokenizer):
    """steps_per_generation > gradient_accumulation_steps and num_iterations > 1: the SRFT row flags
    travel with TRL's shuffled, split and re-used generation buffer."""
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, per_device_train_batch_size=4, steps_per_generation=2,
                num_iterations=2, max_steps=4)
    generations = []
    original = t._generate_and_score_completions
    t._generate_and_score_completions = lambda inputs: generations.append(len(inputs)) or original(inputs)
    t.train()
    logs = [h for h in t.state.log_history if "loss" in h]
    assert generations == [8]  # one generation batch of 8 rows feeds 2 steps x 2 iterations
    assert len(logs) == 4 and all(math.isfinite(h["loss"]) and "srft/loss_sft" in h for h in logs)


def test_iterable_dataset_rows_are_checked_when_spliced(tmp_path, tiny_model, tiny_tokenizer):
    from datasets import IterableDataset

    rows = [{**row, "demo": [{"role": "assistant", "content": 42}]} for row in arithmetic_rows(8)]
    stream = IterableDataset.from_generator(lambda: iter(rows))
    t = trainer(tmp_path, tiny_model, tiny_tokenizer, stream, max_steps=1)  # no up-front pass over a stream
    with pytest.raises(TypeError, match="must be a string or a list of messages"):
        t.train()


def test_switching_from_grpotrainer_meets_one_clear_message(tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """`GRPOTrainer` -> `SRFTTrainer` with only the class name changed: no demonstration column, or a plain
    GRPOConfig, gets one message naming both ways out (add the column, or SRFTConfig(method="grpo"))."""
    from datasets import Dataset
    from trl import GRPOConfig

    monkeypatch.chdir(tmp_path)
    rows = [{"prompt": row["prompt"], "solution": row["solution"]} for row in arithmetic_rows(8)]
    with pytest.raises(ValueError) as error:
        SRFTTrainer(tiny_model, boxed_reward, train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer)
    message = str(error.value)
    assert "no 'demo' column" in message and 'SRFTConfig(method="grpo")' in message and len(message.splitlines()) == 1
    with pytest.raises(TypeError) as error:
        SRFTTrainer(tiny_model, boxed_reward, args=GRPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                    train_dataset=arithmetic_dataset(), processing_class=tiny_tokenizer)
    assert "got GRPOConfig" in str(error.value) and 'SRFTConfig(method="grpo")' in str(error.value)
    # method="grpo" needs no demonstration column: exactly GRPOTrainer
    t = SRFTTrainer(tiny_model, boxed_reward, args=config(tmp_path, method="grpo", num_demos=0),
                    train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer)
    assert not t.args.uses_demos


def test_a_trainer_built_without_init_behaves_as_grpotrainer(monkeypatch):
    """TRL's rollout-function dispatch tests build the trainer with `__new__`: SRFT's per-batch state must not be
    missing (AttributeError), and generation / the forward hook fall through to the parent."""
    from trl import GRPOTrainer

    bare = SRFTTrainer.__new__(SRFTTrainer)
    monkeypatch.setattr(GRPOTrainer, "_generate", lambda self, prompts: ("parent", prompts))
    assert bare._generate(["p"]) == ("parent", ["p"])
    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", lambda self, *a, **k: ("lp", "ent", None))
    assert bare._get_per_token_logps_and_entropies(None) == ("lp", "ent", None)


def test_rollout_func_with_demonstrations_is_refused_clearly(tmp_path, tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError) as error:
        SRFTTrainer(tiny_model, boxed_reward, args=config(tmp_path), train_dataset=arithmetic_dataset(),
                    processing_class=tiny_tokenizer, rollout_func=lambda prompts, trainer: {})
    assert "rollout_func" in str(error.value) and "num_demos=0" in str(error.value)
