"""Tests for srft_trl.analysis: token shift, trajectory distances, training dynamics, the shared scorer, the CLI.

Everything runs on tiny local models (random Qwen2 weights, byte-level tokenizer); nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from srft_trl.analysis import (
    GenerationSettings,
    TokenScores,
    distance,
    dynamics,
    expand_checkpoints,
    load_examples,
    load_model,
    metric_curve,
    model_distance,
    response_distances,
    score_examples,
    token_shift,
    trajectory,
)
from srft_trl.analysis.cli import main
from srft_trl.analysis.files import atomic_write_text
from srft_trl.analysis.scoring import plan_batches, render_prompt
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer, save_tiny_model

RESPONSES = [
    {"prompt": [{"role": "user", "content": "What is 2+3?"}], "response": "<think>\n2+3=5\n</think>\n\\boxed{5}"},
    {
        "prompt": [{"role": "system", "content": "Think."}, {"role": "user", "content": "1+4?"}],
        "response": "<think>\nadd 1 and 4, that gives 5\n</think>\n\\boxed{5}",
        "id": "b",
    },
    {"prompt": "Q: 3*3? A:", "response": " 9"},
    {"prompt": [{"role": "user", "content": "Say hi"}], "response": "héllo wörld <ok> & ✓"},
]
PROMPTS = [{"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}]} for a, b in [(2, 3), (1, 1), (4, 2)]]
SCORE = {"device": "cpu", "progress": False}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def save_sharpened(path: Path, scale: float) -> Path:
    """The seed-0 tiny model with its final norm scaled: same argmax, much sharper next-token distributions."""
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        model.model.norm.weight.mul_(scale)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    return {
        "root": root,
        "base": save_tiny_model(root / "base", seed=0),
        "other": save_tiny_model(root / "other", seed=1),
        "third": save_tiny_model(root / "third", seed=2),
        "tuned": save_sharpened(root / "tuned", 40.0),
        "responses": write_jsonl(root / "responses.jsonl", RESPONSES),
        "prompts": write_jsonl(root / "prompts.jsonl", PROMPTS),
    }


@pytest.fixture(scope="module")
def srft_run(tmp_path_factory):
    """A real 2-step SRFT run on the tiny model: `checkpoint-1/` and `checkpoint-2/` with trainer_state.json."""
    from datasets import Dataset

    from srft_trl import SRFTConfig, SRFTTrainer

    tokenizer = build_tiny_tokenizer()
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {a}+{b}?"}],
            "demo": f"<think>\n{a}+{b}={a + b}\n</think>\n\\boxed{{{a + b}}}",
            "solution": str(a + b),
        }
        for a, b in [(2, 3), (1, 4), (3, 3), (2, 2)]
    ]

    def exact_match(completions, solution, **kwargs):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [1.0 if f"\\boxed{{{s}}}" in t else 0.0 for t, s in zip(texts, solution)]

    output = tmp_path_factory.mktemp("srft") / "run"
    args = SRFTConfig(
        output_dir=str(output),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=48,
        max_steps=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="steps",
        save_steps=1,
    )
    trainer = SRFTTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        reward_funcs=exact_match,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    return output, trainer.state.log_history


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def direct_logprobs(model, tokenizer, example: dict) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Response ids, log p and entropy at each response token from one unpadded forward pass of the full sequence."""
    text, templated = render_prompt(tokenizer, example["prompt"])
    prompt_ids = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    response_ids = tokenizer(example["response"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + response_ids])).logits[0].double()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return response_ids, logp[torch.arange(len(response_ids)), torch.tensor(response_ids)], entropy


def test_batched_scoring_matches_unpadded_forward(zoo):
    model, tokenizer = load_model(zoo["tuned"], device="cpu")
    examples = load_examples(zoo["responses"])
    # Tiny micro-batches of mixed lengths: left padding, logits_to_keep and the row chunks all in play.
    _, scores = score_examples(
        model, tokenizer, examples, batch_size=3, max_batch_tokens=190, with_entropy=True, progress=False
    )
    for example, score in zip(RESPONSES, scores):
        ids, logp, entropy = direct_logprobs(model, tokenizer, example)
        assert score.token_ids.tolist() == ids
        np.testing.assert_allclose(score.logprobs, logp.numpy(), atol=2e-4)
        np.testing.assert_allclose(score.entropies, entropy.numpy(), atol=2e-4)


def test_plan_batches_respects_limits():
    lengths = [5, 40, 12, 40, 3, 25, 7, 100]
    batches = plan_batches(lengths, batch_size=3, max_batch_tokens=80)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * width <= 80
        assert lengths[batch[0]] == width


def test_load_examples_validates(tmp_path):
    good = load_examples(
        write_jsonl(
            tmp_path / "a.jsonl", [{"prompt": "p", "completion": [{"role": "assistant", "content": "r"}], "x": 1}]
        )
    )
    assert good[0].response == "r" and good[0].meta == {"x": 1}
    with pytest.raises(ValueError, match="no 'response'"):
        load_examples(write_jsonl(tmp_path / "b.jsonl", [{"prompt": "p"}]))
    with pytest.raises(ValueError, match="'prompt' must be"):
        load_examples(write_jsonl(tmp_path / "c.jsonl", [{"prompt": 3, "response": "r"}]))
    assert (
        load_examples(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p"}]), require_response=False)[0].response is None
    )


# --------------------------------------------------------------------------------------------
# token shift
# --------------------------------------------------------------------------------------------


def test_token_shift_of_a_model_with_itself_is_zero(zoo, tmp_path):
    result = token_shift(zoo["base"], zoo["base"], zoo["responses"], output_dir=tmp_path, num_heatmaps=2, **SCORE)
    comparison = result.comparisons[0]
    assert len(comparison.responses) == len(RESPONSES)
    assert comparison.deltas().size > 50
    assert np.all(comparison.deltas() == 0.0)
    summary = json.loads((tmp_path / "token_shift.json").read_text())["comparisons"][0]["summary"]
    assert summary["mean_abs_delta"] == 0.0 and summary["frac_changed"] == 0.0
    assert sum(summary["histogram"]["counts"]) == summary["n_tokens"] == comparison.deltas().size


def test_token_shift_matches_direct_computation(zoo, tmp_path):
    result = token_shift(
        zoo["base"], zoo["tuned"], zoo["responses"], threshold=0.1, output_dir=tmp_path, num_heatmaps=2, **SCORE
    )
    comparison = result["tuned"]
    base, base_tok = load_model(zoo["base"], device="cpu")
    tuned, tuned_tok = load_model(zoo["tuned"], device="cpu")
    for index in (0, 3):
        _, base_logp, _ = direct_logprobs(base, base_tok, RESPONSES[index])
        _, tuned_logp, _ = direct_logprobs(tuned, tuned_tok, RESPONSES[index])
        shift = comparison.responses[index]
        for t in (0, 1, 5, len(shift.delta) - 1):
            expected = tuned_logp[t].exp().item() - base_logp[t].exp().item()
            assert shift.delta[t] == pytest.approx(expected, abs=1e-4)
            assert shift.p_base[t] == pytest.approx(base_logp[t].exp().item(), abs=1e-5)
    deltas = comparison.deltas()
    assert np.abs(deltas).max() > 0.1  # the sharpened model really moved probabilities
    summary = comparison.summary(0.1)
    assert summary["frac_changed"] == pytest.approx(float((np.abs(deltas) > 0.1).mean()))
    assert summary["mean_abs_delta"] == pytest.approx(float(np.abs(deltas).mean()))
    # Pieces reassemble the response text (multi-byte characters included) and are HTML-escaped.
    assert "".join(comparison.responses[3].pieces) == RESPONSES[3]["response"]
    html = (tmp_path / "tuned" / "heatmap.html").read_text(encoding="utf-8")
    assert "&lt;" in html and "<ok>" not in html and html.count("<div class='resp'>") == len(RESPONSES)
    for name in ("histogram.png", "tuned/heatmaps/response_000.png", "tuned/heatmaps/response_001.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "tuned" / "heatmaps" / "response_002.png").exists()
    tokens = [json.loads(line) for line in (tmp_path / "tuned" / "tokens.jsonl").read_text().splitlines()]
    assert tokens[1]["id"] == "b" and len(tokens[1]["p_tuned"]) == len(tokens[1]["tokens"])


def test_token_shift_generates_responses(zoo, tmp_path):
    tokenizer = build_tiny_tokenizer()
    loaded_pair = (build_tiny_model(tokenizer, seed=1), tokenizer)  # a model in memory works as well
    generation = GenerationSettings(max_new_tokens=6, num_samples=2, temperature=1.0)
    result = token_shift(
        zoo["base"],
        [zoo["tuned"], loaded_pair],
        prompts=zoo["prompts"],
        generate_with="tuned",
        labels=["sharp", "seed1"],
        generation=generation,
        output_dir=tmp_path,
        num_heatmaps=1,
        **SCORE,
    )
    assert [c.label for c in result.comparisons] == ["sharp", "seed1"]
    for comparison in result.comparisons:
        assert comparison.responses_from == comparison.label
        assert len(comparison.responses) == len(PROMPTS) * 2
        assert {r.meta["sample_index"] for r in comparison.responses} == {0, 1}
    written = load_examples(tmp_path / "responses_sharp.jsonl")
    assert [e.response for e in written] == [r.response for r in result["sharp"].responses]
    shared = token_shift(zoo["base"], zoo["base"], prompts=PROMPTS, generation=generation, **SCORE)
    assert shared.comparisons[0].responses_from == "base"
    assert np.all(shared.comparisons[0].deltas() == 0.0)


# --------------------------------------------------------------------------------------------
# trajectory distances
# --------------------------------------------------------------------------------------------


def test_distance_is_zero_to_itself_symmetric_and_a_pseudometric(zoo):
    examples = load_examples(zoo["responses"])
    chars = [len(e.response) for e in examples]
    scores = {}
    for name in ("base", "tuned", "other"):
        model, tokenizer = load_model(zoo[name], device="cpu")
        scores[name] = score_examples(model, tokenizer, examples, progress=False)[1]
    for metric in ("l1", "l2", "logp", "seq_logp"):
        assert distance(scores["base"], scores["base"], metric, chars) == 0.0
        for a, b in (("base", "tuned"), ("base", "other"), ("tuned", "other")):
            d = distance(scores[a], scores[b], metric, chars)
            assert d > 0
            assert d == distance(scores[b], scores[a], metric, chars)
    d = {(a, b): distance(scores[a], scores[b], "l1") for a in scores for b in scores}
    assert d[("base", "other")] <= d[("base", "tuned")] + d[("tuned", "other")] + 1e-12
    assert 0 < d[("base", "tuned")] <= 1
    # By hand for l1: per-response mean |p_a - p_b|, then the mean over responses.
    by_hand = np.mean([np.abs(a.probs - b.probs).mean() for a, b in zip(scores["base"], scores["tuned"])])
    assert d[("base", "tuned")] == pytest.approx(by_hand)
    # The model-level API gives the same number, in either order.
    assert model_distance(zoo["tuned"], zoo["base"], examples, **SCORE) == pytest.approx(d[("base", "tuned")], abs=1e-7)
    assert model_distance(zoo["base"], zoo["base"], zoo["responses"], **SCORE) == 0.0


def test_token_metrics_refuse_different_tokenisations():
    a = [TokenScores(np.array([1, 2, 3]), np.log(np.array([0.5, 0.5, 0.5], dtype=np.float32)))]
    b = [TokenScores(np.array([1, 2, 4]), np.log(np.array([0.5, 0.5, 0.5], dtype=np.float32)))]
    with pytest.raises(ValueError, match="tokenise it differently"):
        response_distances(a, b, "l1")
    assert response_distances(a, b, "seq_logp", chars=[6])[0] == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        response_distances(a, a, "cosine")


def test_trajectory_two_references_supplied_responses(zoo, tmp_path):
    other_set = write_jsonl(tmp_path / "other.jsonl", RESPONSES[::-1])
    result = trajectory(
        [[zoo["base"], zoo["other"], zoo["tuned"]], [zoo["third"], zoo["tuned"]]],
        [zoo["base"], zoo["tuned"]],
        reference_responses=[zoo["responses"], other_set],
        series_labels=["a", "b"],
        accuracies=[42.5],
        output_dir=tmp_path,
        **SCORE,
    )
    a = result["a"].coords()
    assert a.shape == (3, 2)
    assert a[0, 0] == 0.0 and a[2, 1] == 0.0  # base is at 0 from itself, tuned from itself
    assert a[0, 1] > 0 and a[2, 0] > 0
    assert result.reference_points[0][0] == 0.0 and result.reference_points[1][1] == 0.0
    assert result.reference_points[0][1] == pytest.approx(a[0, 1]) and result.reference_points[1][0] == pytest.approx(
        a[2, 0]
    )
    saved = json.loads((tmp_path / "trajectory.json").read_text())
    assert [s["accuracy"] for s in saved["series"]] == [42.5, None]
    assert saved["series"][1]["points"][1]["distances"] == pytest.approx(list(a[2]))
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"


def test_trajectory_three_references_generated(zoo, srft_run, tmp_path):
    run_dir, _ = srft_run
    generation = GenerationSettings(max_new_tokens=8, temperature=1.0)
    result = trajectory(
        [run_dir],
        [zoo["base"], zoo["other"], zoo["tuned"]],
        prompts=zoo["prompts"],
        generation=generation,
        reference_labels=["base", "other", "tuned"],
        accuracies=[10.0],
        metric="l2",
        output_dir=tmp_path,
        **SCORE,
    )
    points = result.series[0].points
    assert [p.step for p in points] == [1, 2]  # the run folder stands for its checkpoint-N folders
    assert points[0].label == "run/checkpoint-1"
    assert all(len(p.distances) == 3 and all(d is not None and d >= 0 for d in p.distances) for p in points)
    for name in ("base", "other", "tuned"):
        assert len(load_examples(tmp_path / f"responses_{name}.jsonl")) == len(PROMPTS)
    assert np.allclose(np.diag(np.array(result.reference_points)), 0.0)
    assert (tmp_path / "trajectory.png").stat().st_size > 0


# --------------------------------------------------------------------------------------------
# dynamics
# --------------------------------------------------------------------------------------------


def test_dynamics_reads_a_real_srft_trainer_state(srft_run, tmp_path):
    run_dir, history = srft_run
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()
    result = dynamics([run_dir, run_dir / "checkpoint-1"], labels=["srft", "early"], output_dir=tmp_path, smooth=2)
    for metric, key in [
        ("reward", "srft/reward_rollout"),
        ("length", "completions/mean_length"),
        ("entropy", "srft/entropy_rollout"),
        ("w_sft", "srft/w_sft"),
    ]:
        used, steps, values = result.curves[metric]["srft"]
        assert used == key
        assert steps.tolist() == [1, 2]
        assert values.tolist() == pytest.approx([e[key] for e in history if key in e])
        assert result.curves[metric]["early"][1].tolist() == [1]  # checkpoint-1's state stops at step 1
    saved = json.loads((tmp_path / "dynamics.json").read_text())
    assert saved["metrics"]["entropy"]["srft"]["values"] == pytest.approx(result.curves["entropy"]["srft"][2].tolist())
    for name in ["dynamics.png", *(f"dynamics_{m}.png" for m in result.curves)]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    # TRL's own keys are reachable too, and a key nobody logged is reported, not plotted.
    assert metric_curve(history, "key:reward")[0] == "reward"
    other = dynamics([run_dir / "checkpoint-2" / "trainer_state.json"], metrics=["loss", "no/such_key"])
    assert list(other.curves) == ["loss"] and other.missing == {"no/such_key": ["run"]}
    # A result file with the entries under "history" (the testbed's per-run format) reads the same.
    result_file = tmp_path / "srft-seed0.json"
    result_file.write_text(json.dumps({"method": "srft", "history": history}))
    same = dynamics([result_file])
    assert same.curves["entropy"]["srft-seed0"][2].tolist() == result.curves["entropy"]["srft"][2].tolist()


def test_expand_checkpoints_orders_by_step(srft_run, zoo, tmp_path):
    run_dir, _ = srft_run
    expanded = expand_checkpoints([zoo["base"], run_dir])
    assert [Path(p).name for p in expanded] == ["base", "checkpoint-1", "checkpoint-2"]
    # Numeric order, incomplete checkpoints skipped, the run's final model last, Hub ids kept.
    for name in ("checkpoint-10", "checkpoint-2", "checkpoint-7", "."):
        (tmp_path / name).mkdir(exist_ok=True)
        if name != "checkpoint-7":
            (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "checkpoint-10" / "adapter_config.json").write_text("{}")
    expanded = expand_checkpoints([tmp_path, "org/hub-model"])
    assert [Path(p).name for p in expanded[:3]] == ["checkpoint-2", "checkpoint-10", tmp_path.name]
    assert expanded[3] == "org/hub-model"
    with pytest.raises(FileNotFoundError):
        expand_checkpoints([zoo["root"]])


# --------------------------------------------------------------------------------------------
# adapters, files, CLI
# --------------------------------------------------------------------------------------------


def test_peft_adapter_is_loaded_and_scored(zoo, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(zoo["base"])
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "tokenizer_config.json").exists()  # the tokenizer comes from the base
    examples = load_examples(zoo["responses"])[:2]
    model, tokenizer = load_model(tmp_path / "adapter", device="cpu")
    _, scores = score_examples(model, tokenizer, examples, progress=False)
    peft_model.eval()
    _, expected = score_examples(peft_model, tokenizer, examples, progress=False)
    for got, want in zip(scores, expected):
        np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)
    assert model_distance(tmp_path / "adapter", zoo["base"], examples, **SCORE) > 0


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        from srft_trl.analysis.files import atomic_path

        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_cli_subcommands(zoo, srft_run, tmp_path, capsys):
    run_dir, _ = srft_run
    out = tmp_path / "shift"
    assert (
        main(
            [
                "token-shift",
                "--base",
                str(zoo["base"]),
                "--tuned",
                str(zoo["tuned"]),
                "--responses",
                str(zoo["responses"]),
                "-o",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
                "--num-heatmaps",
                "1",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["comparisons"]["tuned"]["n_responses"] == len(RESPONSES)
    assert (out / "tuned" / "heatmap.html").is_file() and (out / "histogram.png").is_file()

    out = tmp_path / "trajectory"
    assert (
        main(
            [
                "trajectory",
                "--checkpoints",
                str(run_dir),
                "--checkpoints",
                str(zoo["tuned"]),
                "--references",
                str(zoo["base"]),
                str(zoo["tuned"]),
                "--reference-responses",
                str(zoo["responses"]),
                str(zoo["responses"]),
                "--accuracy",
                "none",
                "3.5",
                "--series-labels",
                "srft,sharp",
                "-o",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    saved = json.loads((out / "trajectory.json").read_text())
    assert [len(s["points"]) for s in saved["series"]] == [2, 1]
    assert [s["accuracy"] for s in saved["series"]] == [None, 3.5]
    capsys.readouterr()

    out = tmp_path / "dynamics"
    assert main(["dynamics", "--runs", str(run_dir), "--metrics", "reward,entropy,w_sft", "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["panels"] == ["reward", "entropy", "w_sft"]
    assert (out / "dynamics.png").is_file()

    assert main(["dynamics", "--runs", str(tmp_path / "missing"), "-o", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
