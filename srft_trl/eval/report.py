"""The Markdown report: the paper's Table 2 layout with its reported rows beside the evaluated model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .benchmarks import BENCHMARKS

__all__ = ["PAPER_TABLE2", "PAPER_COLUMNS", "markdown_report", "group_averages"]

PAPER_COLUMNS = {
    "in_distribution": ["aime24", "amc", "math500", "minerva", "olympiad"],
    "ood": ["arc_c", "gpqa_diamond", "mmlu_pro"],
}

# Table 2 of the paper (Qwen2.5-Math-7B base), in percent: 5 in-distribution scores and their
# average, then 3 OOD scores and their average. Rows marked * were copied by the authors from
# the methods' own papers. Table 3 gives SRFT 72.2 on AMC and 59.1 on average instead.
_T2 = [
    ("Qwen2.5-Math", "", (11.4, 32.6, 48.8, 8.7, 15.8, 23.5, 18.2, 11.1, 16.9, 15.4)),
    ("Qwen2.5-Math-Instruct", "", (12.9, 48.3, 81.2, 33.1, 39.8, 43.1, 70.3, 24.7, 34.1, 43.0)),
    ("SFT", "Supervised Fine-Tuning", (31.1, 62.8, 85.2, 39.1, 53.3, 54.3, 76.2, 25.8, 45.7, 49.2)),
    ("SFT_KL", "Supervised Fine-Tuning", (13.0, 45.2, 70.2, 26.5, 36.3, 38.2, 33.3, 22.2, 30.4, 28.6)),
    ("RL_GRPO", "Reinforcement Learning", (24.7, 61.6, 79.2, 33.7, 47.1, 49.3, 75.6, 31.3, 42.1, 49.7)),
    ("SimpleRL-Zero*", "Reinforcement Learning", (27.0, 54.9, 76.0, 25.0, 34.7, 43.5, 30.2, 23.2, 34.5, 29.3)),
    ("OpenReasoner-Zero*", "Reinforcement Learning", (16.5, 52.1, 82.4, 33.1, 47.1, 46.2, 66.2, 29.8, 58.7, 51.6)),
    ("PRIME-Zero*", "Reinforcement Learning", (17.0, 54.0, 81.4, 39.0, 40.3, 46.3, 73.3, 18.2, 32.7, 41.4)),
    ("Oat-Zero*", "Reinforcement Learning", (33.4, 61.2, 78.0, 34.6, 43.4, 50.1, 70.1, 23.7, 41.7, 45.2)),
    ("SFT → RL", "SFT and RL", (32.5, 67.1, 84.2, 34.1, 54.6, 54.5, 76.4, 37.9, 49.6, 54.6)),
    ("LUFFY", "SFT and RL", (29.4, 65.6, 87.6, 37.5, 57.2, 55.5, 80.5, 39.9, 53.0, 57.8)),
    ("TAPO*", "SFT and RL", (33.3, 77.5, 83.4, 38.2, 46.2, 55.7, 81.6, 37.9, 49.6, 56.4)),
    ("ReLIFT", "SFT and RL", (28.2, 64.8, 85.0, 37.1, 54.9, 54.0, 74.9, 40.9, 51.9, 55.9)),
    ("SRFT (paper)", "SFT and RL", (35.3, 74.3, 89.8, 39.7, 58.3, 59.5, 85.3, 46.4, 55.9, 62.5)),
]
_KEYS = [*PAPER_COLUMNS["in_distribution"], "avg_in_distribution", *PAPER_COLUMNS["ood"], "avg_ood"]
PAPER_TABLE2: list[dict[str, Any]] = [
    {"model": name, "section": section, **dict(zip(_KEYS, values))} for name, section, values in _T2
]


def _columns(results: Mapping[str, Any]) -> dict[str, list[str]]:
    """The paper's columns, then any other evaluated benchmark appended to its group."""
    columns = {group: list(names) for group, names in PAPER_COLUMNS.items()}
    for name, result in results.items():
        group = result.get("group", "in_distribution")
        if name not in columns.setdefault(group, []):
            columns[group].append(name)
    return columns


def group_averages(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Unweighted mean of the headline scores per group, over the benchmarks evaluated, with
    `complete` telling whether every paper benchmark of the group was among them."""
    averages = {}
    for group, names in PAPER_COLUMNS.items():
        scores = [result["score"] for result in results.values() if result.get("group") == group]
        if scores:
            averages[group] = {
                "score": sum(scores) / len(scores),
                "benchmarks": [name for name, result in results.items() if result.get("group") == group],
                "complete": all(name in results for name in names),
            }
    return averages


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _title(name: str) -> str:
    return BENCHMARKS[name].title if name in BENCHMARKS else name


def markdown_report(summary: Mapping[str, Any], *, model_label: str | None = None) -> str:
    """Render a run summary (see `srft_trl.eval.evaluate`) as Markdown: the Table 2 layout with
    the paper's rows and this model's row, then a per-benchmark detail table."""
    results = summary["benchmarks"]
    columns = _columns(results)
    label = model_label or summary.get("model", "evaluated model")
    averages = group_averages(results)
    header = [*(_title(n) for n in columns["in_distribution"]), "Avg.", *(_title(n) for n in columns["ood"]), "Avg."]
    lines = [
        f"# Evaluation of `{label}`",
        "",
        "Accuracy (%) laid out like the paper's Table 2 (Qwen2.5-Math-7B base). Math: "
        f"{summary.get('primary_grader', 'oat')} grader; multiple choice: extracted letter. "
        "Paper rows are as reported in arXiv 2506.19767 (* copied by its authors from other papers).",
        "",
        "| Model | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    section = None
    for row in PAPER_TABLE2:
        if row["section"] and row["section"] != section:
            section = row["section"]
            lines.append(f"| *{section}* |" + " |" * len(header))
        cells = [*(row.get(n) for n in columns["in_distribution"]), row["avg_in_distribution"],
                 *(row.get(n) for n in columns["ood"]), row["avg_ood"]]
        lines.append(f"| {row['model']} | " + " | ".join(_fmt(c) for c in cells) + " |")

    def score(name):
        return results[name]["score"] * 100 if name in results else None

    def average(group):
        if group not in averages:
            return "–"
        text = _fmt(averages[group]["score"] * 100)
        return text if averages[group]["complete"] else text + "†"

    cells = [*(_fmt(score(n)) for n in columns["in_distribution"]), average("in_distribution"),
             *(_fmt(score(n)) for n in columns["ood"]), average("ood")]
    lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    if any(not a["complete"] for a in averages.values()):
        lines += ["", "† average over the benchmarks evaluated in this run only, not comparable to the paper's."]

    lines += [
        "",
        "## Details",
        "",
        "| Benchmark | Metric | n | Items | Score | Math-Verify | OAT | Agreement | pass@k |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, result in results.items():
        accuracy = result.get("accuracy", {})
        pass_k = ", ".join(f"@{k}: {v * 100:.1f}" for k, v in result.get("pass_at_k", {}).items())
        agreement = result.get("grader_agreement")
        lines.append(
            f"| {_title(name)} | {result['metric']} | {result['n']} | {result['num_items']} | "
            f"{_fmt(result['score'] * 100)} | {_fmt(_pct(accuracy.get('math_verify')))} | "
            f"{_fmt(_pct(accuracy.get('oat')))} | {_fmt(_pct(agreement))} | {pass_k} |"
        )
    settings = summary.get("settings", {})
    if settings:
        lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, dict)), ""]
    return "\n".join(lines) + "\n"


def _pct(value):
    return None if value is None else value * 100
