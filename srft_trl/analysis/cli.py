"""`srft-trl analyze`: the paper's Section 3 instruments as commands (token-shift, trajectory, dynamics)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..console import quiet_on_closed_pipe

__all__ = ["build_parser", "main"]


def _labels(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _accuracy(value: str) -> float | None:
    return None if value.lower() in ("none", "-", "") else float(value)


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models and scoring")
    group.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    group.add_argument(
        "--dtype", default="auto", help="auto (saved dtype on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    group.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer for every model (default: each model's own; "
        "for checkpoint-N, the run folder's; for an adapter, its base model's)",
    )
    group.add_argument("--trust-remote-code", action="store_true")
    group.add_argument(
        "--chat",
        choices=["auto", "always", "never"],
        default="auto",
        help="auto: message-list prompts go through the chat template, string prompts are used as "
        "they are; always: string prompts too (as one user message)",
    )
    group.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="prompt + response tokens scored (default: the model's position limit; longer responses are cut)",
    )
    group.add_argument("--batch-size", type=int, default=16, help="most sequences per scoring micro-batch")
    group.add_argument("--max-batch-tokens", type=int, default=8192, help="most padded tokens per scoring micro-batch")
    gen = parser.add_argument_group("generation (when responses are generated from --prompts)")
    gen.add_argument("--max-new-tokens", type=int, default=1024)
    gen.add_argument("--temperature", type=float, default=0.6, help="0 for greedy decoding")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--num-samples", type=int, default=1, help="responses per prompt")
    gen.add_argument("--gen-batch-size", type=int, default=16, help="most sequences per generate call")
    gen.add_argument("--seed", type=int, default=0)


def _common(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "-o", "--output-dir", default=f"analysis/{name}", help=f"where outputs go (default: analysis/{name})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 is much faster for small models on few cores)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srft-trl analyze",
        description="The analyses of Section 3 of the SRFT paper on any causal LMs: per-token probability "
        "shift (Fig. 2), learning-dynamics trajectories in probability space (Fig. 3, App. E), and training "
        "curves from trainer logs (Fig. 4, 6). See docs/analysis.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{token-shift,trajectory,dynamics}")

    shift = sub.add_parser(
        "token-shift",
        help="per-token probability change of tuned models versus a base model",
        description="For each response token y_t: delta = p_tuned(y_t | x, y_<t) - p_base(y_t | x, y_<t). Writes "
        "token_shift.json, histogram.png, and per tuned model heatmap.html, heatmaps/*.png and tokens.jsonl.",
    )
    shift.add_argument("--base", required=True, help="base model: path, Hub id, checkpoint-N or PEFT adapter folder")
    shift.add_argument("--tuned", required=True, nargs="+", help="one or more tuned models, each compared with --base")
    source = shift.add_mutually_exclusive_group(required=True)
    source.add_argument("--responses", help='JSONL of {"prompt": str | messages, "response": str}')
    source.add_argument("--prompts", help='JSONL of {"prompt": str | messages}; responses are generated')
    shift.add_argument(
        "--generate-with",
        choices=["base", "tuned"],
        default="base",
        help="with --prompts: responses by the base model (shared), or by each tuned model",
    )
    shift.add_argument("--labels", type=_labels, default=None, help="comma-separated names of the tuned models")
    shift.add_argument("--base-label", default=None)
    shift.add_argument("--threshold", type=float, default=0.1, help="|delta| above which a token counts as changed")
    shift.add_argument("--num-heatmaps", type=int, default=8, help="PNG heat maps for the first N responses")
    shift.add_argument("--max-html-responses", type=int, default=200, help="responses shown in heatmap.html")
    shift.add_argument("--vmax", type=float, default=1.0, help="|delta| given the full colour")
    _common(shift, "token-shift")
    _model_options(shift)

    traj = sub.add_parser(
        "trajectory",
        help="checkpoints' distances to reference models (App. E), plotted in 2-D / 3-D",
        description="Coordinate i of checkpoint M = D_Si(M, R_i): the mean over reference R_i's responses of the "
        "per-response mean |p_M(y_t|x,y_<t) - p_Ri(y_t|x,y_<t)| (metric l1). Repeat --checkpoints for several "
        "series (runs); a training output folder stands for its checkpoint-N folders (then its final model, if saved "
        "there). Writes trajectory.json, "
        "trajectory.png, and generated responses.",
    )
    traj.add_argument(
        "--checkpoints",
        action="append",
        nargs="+",
        required=True,
        metavar="C",
        help="one series of checkpoints in training order (repeat the option for more series)",
    )
    traj.add_argument(
        "--references", nargs="+", required=True, metavar="R", help="reference models (2 or 3 for a plot)"
    )
    source = traj.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help='JSONL of {"prompt": ...}; each reference generates its responses')
    source.add_argument(
        "--reference-responses",
        nargs="+",
        metavar="FILE",
        help='one JSONL of {"prompt", "response"} per reference, in --references order',
    )
    traj.add_argument(
        "--metric",
        choices=["l1", "l2", "logp", "seq_logp"],
        default="l1",
        help="seq_logp for models with different tokenizers (see docs/analysis.md)",
    )
    traj.add_argument("--series-labels", type=_labels, default=None, help="comma-separated, one per --checkpoints")
    traj.add_argument("--reference-labels", type=_labels, default=None, help="comma-separated, one per reference")
    traj.add_argument(
        "--accuracy",
        type=_accuracy,
        nargs="+",
        default=None,
        help="final accuracy of each series (or 'none'), annotated at its last point",
    )
    traj.add_argument("--no-reference-points", action="store_true", help="do not place the references themselves")
    _common(traj, "trajectory")
    _model_options(traj)

    dyn = sub.add_parser(
        "dynamics",
        help="reward / length / entropy / w_SFT / w_RL curves from trainer_state.json",
        description="Training curves of several runs on one figure. A run is a trainer_state.json, a checkpoint "
        "folder or a training output folder. Writes dynamics.png, dynamics_<metric>.png and dynamics.json.",
    )
    dyn.add_argument("--runs", nargs="+", required=True, metavar="DIR")
    dyn.add_argument("--labels", type=_labels, default=None, help="comma-separated, one per run")
    dyn.add_argument(
        "--metrics",
        type=_labels,
        default=None,
        help="comma-separated panels (default reward,length,entropy,w_sft,w_rl); any logged key works, "
        "key:NAME forces a raw key",
    )
    dyn.add_argument("--smooth", type=int, default=1, help="trailing moving average over N logged steps")
    dyn.add_argument("--title", default="Training dynamics")
    _common(dyn, "dynamics")
    return parser


def _generation(args):
    from .generation import GenerationSettings

    return GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        num_samples=args.num_samples,
        batch_size=args.gen_batch_size,
        seed=args.seed,
    )


def _model_kwargs(args) -> dict:
    return {
        "chat": args.chat,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "max_batch_tokens": args.max_batch_tokens,
        "device": args.device,
        "dtype": args.dtype,
        "tokenizer": args.tokenizer,
        "trust_remote_code": args.trust_remote_code,
        "progress": not args.no_progress,
        "generation": _generation(args),
        "output_dir": args.output_dir,
    }


def _run(args) -> dict:
    if args.command == "token-shift":
        from .token_shift import token_shift

        result = token_shift(
            args.base,
            args.tuned,
            args.responses,
            prompts=args.prompts,
            generate_with=args.generate_with,
            labels=args.labels,
            base_label=args.base_label,
            threshold=args.threshold,
            num_heatmaps=args.num_heatmaps,
            max_html_responses=args.max_html_responses,
            vmax=args.vmax,
            **_model_kwargs(args),
        )
        summary = result.summary()
        return {
            "output_dir": args.output_dir,
            "comparisons": {
                c["label"]: {
                    k: c["summary"].get(k) for k in ("n_responses", "n_tokens", "mean_abs_delta", "frac_changed")
                }
                for c in summary["comparisons"]
            },
        }
    if args.command == "trajectory":
        from .trajectory import trajectory

        result = trajectory(
            args.checkpoints,
            args.references,
            prompts=args.prompts,
            reference_responses=args.reference_responses,
            metric=args.metric,
            series_labels=args.series_labels,
            reference_labels=args.reference_labels,
            accuracies=args.accuracy,
            with_reference_points=not args.no_reference_points,
            **_model_kwargs(args),
        )
        return {
            "output_dir": args.output_dir,
            "references": result.reference_labels,
            "series": {s.label: [p.distances for p in s.points] for s in result.series},
        }
    from .dynamics import DEFAULT_METRICS, dynamics

    result = dynamics(
        args.runs,
        labels=args.labels,
        metrics=args.metrics or DEFAULT_METRICS,
        smooth=args.smooth,
        output_dir=args.output_dir,
        title=args.title,
    )
    return {"output_dir": args.output_dir, "panels": list(result.curves), "missing": result.missing}


@quiet_on_closed_pipe
def main(argv: list[str] | None = None) -> int:
    """Entry point of `srft-trl analyze` and `python -m srft_trl.analysis`; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        report = _run(args)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"srft-trl analyze {args.command}: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0
