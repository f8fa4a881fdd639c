"""The evaluation benchmarks, as declarative entries, and how their rows become `Item`s.

A benchmark is a `Benchmark` entry: where the data lives (Hub id, config, split), which fields
hold the question, the gold answer and (for multiple choice) the options, its kind (math or
multiple choice), its default number of samples, and its group in the paper's Table 2. Adding a
benchmark is adding an entry with `register_benchmark`; no code is needed as long as its fields
can be named by a dotted path (`"final_answer.0"`, `"choices.text"`).

Every benchmark can be read from its Hub id or from a local file (JSONL, JSON, Parquet, CSV)
whose rows have the same schema, so evaluation also works offline. `SAMPLES` (`--data-dir samples`)
names the few synthetic rows per benchmark shipped in `srft_trl/resources/eval_samples/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..files import DATA_FILE_FORMATS, load_data_file
from .choices import option_letters, shuffle_options

__all__ = [
    "Benchmark",
    "Item",
    "BENCHMARKS",
    "register_benchmark",
    "get_benchmark",
    "load_items",
    "data_file",
    "resolve_field",
    "SAMPLES",
    "samples_dir",
]

LOCAL_FORMATS = DATA_FILE_FORMATS
SAMPLES = "samples"  # a data source naming the shipped sample rows (when no such path exists)


@dataclass(frozen=True)
class Benchmark:
    """A declarative benchmark entry.

    Attributes:
        name: the key used on the command line and in file names (`aime24`).
        title: the column header in the Table 2 layout (`AIME24`).
        kind: `"math"` (free-form answer, graded by Math-Verify and the OAT grader) or `"mc"`
            (multiple choice, graded by the extracted letter; never through the math path).
        hub_id, config, split, revision: where `datasets.load_dataset` finds it on the Hub.
        question: dotted path of the question field.
        gold: dotted path of the gold field.
        gold_from: how the gold field gives the answer. Math: `"value"` (the field is the answer)
            or `"boxed"` (the answer is the last `\\boxed{}` inside the field). Multiple choice:
            `"label"` (the field is one of the option labels), `"text"` (the field is the text of
            the correct option) or `"index"` (the field is a 0-based option index).
        options: multiple choice only: dotted path of a list of option texts, or a tuple of
            columns that each hold one option.
        option_labels: multiple choice only: dotted path of the labels the gold refers to
            (ARC's `choices.label`, which are sometimes `1`-`4`); default `A`, `B`, `C`, ...
        id_field: dotted path of a stable item id; the row index when None, or when a local file
            lacks that field (a MATH500 file with only `problem` and `answer`).
        n: default number of samples per problem (the paper: 32 for AIME24 and AMC, else 1).
        group: `"in_distribution"` (math) or `"ood"`, the two averages of Table 2.
        size: the expected number of items (documentation; a mismatch only warns).
    """

    name: str
    title: str
    kind: Literal["math", "mc"]
    hub_id: str
    question: str
    gold: str
    split: str = "test"
    config: str | None = None
    revision: str | None = None
    gold_from: Literal["value", "boxed", "label", "text", "index"] = "value"
    options: str | tuple[str, ...] | None = None
    option_labels: str | None = None
    id_field: str | None = None
    n: int = 1
    group: Literal["in_distribution", "ood"] = "in_distribution"
    size: int | None = None

    def __post_init__(self):
        if self.kind not in ("math", "mc"):
            raise ValueError(f"{self.name}: kind must be 'math' or 'mc', got {self.kind!r}")
        allowed = ("value", "boxed") if self.kind == "math" else ("label", "text", "index")
        if self.gold_from not in allowed:
            raise ValueError(f"{self.name}: gold_from for kind {self.kind!r} must be one of {allowed}")
        if self.kind == "mc" and self.options is None:
            raise ValueError(f"{self.name}: a multiple-choice benchmark needs `options`")

    @property
    def metric(self) -> str:
        """The paper's headline metric name at the default n (`avg@32` or `pass@1`)."""
        return metric_name(self.n)


@dataclass
class Item:
    """One problem, ready for prompting and grading.

    For multiple choice, `options` are already shuffled, `gold` is the letter of the correct
    option after shuffling, and `permutation[i]` is the original index of the option shown at
    position i.
    """

    id: str
    question: str
    gold: str
    kind: str
    options: list[str] | None = None
    permutation: list[int] | None = None
    letters: str | None = None


def metric_name(n: int) -> str:
    """`pass@1` for one sample, `avg@n` for more (avg@n is pass@1 estimated from n samples)."""
    return "pass@1" if n == 1 else f"avg@{n}"


BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(benchmark: Benchmark, *, overwrite: bool = False) -> Benchmark:
    """Add a benchmark entry to `BENCHMARKS` (the registry the CLI and `evaluate` read)."""
    if benchmark.name in BENCHMARKS and not overwrite:
        raise ValueError(f"benchmark {benchmark.name!r} is already registered (pass overwrite=True)")
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def get_benchmark(name: str | Benchmark) -> Benchmark:
    """Look a benchmark up by name (an entry passes through)."""
    if isinstance(name, Benchmark):
        return name
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


# The paper's eight benchmarks (Sec. 5.1, App. C.2), in Table 2's column order.
for _entry in (
    Benchmark("aime24", "AIME24", "math", "HuggingFaceH4/aime_2024", split="train",
              question="problem", gold="answer", id_field="id", n=32, size=30),
    Benchmark("amc", "AMC", "math", "AI-MO/aimo-validation-amc", split="train",
              question="problem", gold="answer", id_field="id", n=32, size=83),
    Benchmark("math500", "MATH500", "math", "HuggingFaceH4/MATH-500", split="test",
              question="problem", gold="answer", id_field="unique_id", size=500),
    Benchmark("minerva", "Minerva", "math", "knoveleng/Minerva-Math", split="train",
              question="problem", gold="solution", gold_from="boxed", size=272),
    Benchmark("olympiad", "Olympiad", "math", "Hothan/OlympiadBench", config="OE_TO_maths_en_COMP",
              split="train", question="question", gold="final_answer.0", id_field="id", size=675),
    Benchmark("arc_c", "ARC-C", "mc", "allenai/ai2_arc", config="ARC-Challenge", split="test",
              question="question", options="choices.text", option_labels="choices.label",
              gold="answerKey", gold_from="label", id_field="id", group="ood", size=1172),
    Benchmark("gpqa_diamond", "GPQA-D", "mc", "Idavidrein/gpqa", config="gpqa_diamond", split="train",
              question="Question",
              options=("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
              gold="Correct Answer", gold_from="text", id_field="Record ID", group="ood", size=198),
    Benchmark("mmlu_pro", "MMLU-Pro", "mc", "TIGER-Lab/MMLU-Pro", split="test",
              question="question", options="options", gold="answer", gold_from="label",
              id_field="question_id", group="ood", size=12032),
):
    register_benchmark(_entry)


def resolve_field(row: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through nested mappings and sequences (`"final_answer.0"`)."""
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.lstrip("-").isdigit():
            value = value[int(part)]
        else:
            raise KeyError(f"cannot resolve {path!r}: no {part!r} in {type(value).__name__}")
    return value


def data_file(benchmark: Benchmark, source: str | Path) -> Path:
    """The local file `source` (a file, a folder, or `SAMPLES`) names for the benchmark."""
    path = Path(source)
    if str(source) == SAMPLES and not path.exists():
        path = samples_dir()
    if not path.exists():
        raise FileNotFoundError(f"{benchmark.name}: data path {path} does not exist")
    if path.is_dir():
        matches = [path / f"{benchmark.name}{suffix}" for suffix in LOCAL_FORMATS if (path / f"{benchmark.name}{suffix}").is_file()]
        if not matches:
            raise FileNotFoundError(f"no {benchmark.name}.<{'|'.join(s[1:] for s in LOCAL_FORMATS)}> in {path}")
        path = matches[0]
    return path


def load_rows(benchmark: Benchmark, source: str | Path | None = None):
    """Return the benchmark's rows as a `datasets.Dataset`, from `source` if given, else the Hub."""
    import datasets

    if source is None:
        return datasets.load_dataset(benchmark.hub_id, benchmark.config, split=benchmark.split,
                                     revision=benchmark.revision)
    return load_data_file(data_file(benchmark, source))


def samples_dir() -> Path:
    """The folder of synthetic sample rows shipped with the package (`<benchmark>.jsonl`)."""
    import importlib.resources

    return Path(str(importlib.resources.files("srft_trl") / "resources" / "eval_samples"))


def load_items(
    benchmark: Benchmark | str,
    source: str | Path | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
) -> list[Item]:
    """Load a benchmark as a list of `Item`s (first `limit` rows if given).

    Multiple-choice options are shuffled with a permutation seeded by (`seed`, benchmark, item
    id), so the same run settings always show the same order; `shuffle=False` keeps the source
    order (the permutation is then the identity, still stored).
    """
    benchmark = get_benchmark(benchmark)
    rows = load_rows(benchmark, source)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return [row_to_item(benchmark, row, index, seed=seed, shuffle=shuffle) for index, row in enumerate(rows)]


def row_to_item(benchmark: Benchmark, row: Mapping[str, Any], index: int, *, seed: int = 0, shuffle: bool = True) -> Item:
    """Turn one source row into an `Item` following the benchmark entry."""
    item_id = _item_id(benchmark, row, index)
    question = str(resolve_field(row, benchmark.question)).strip()
    if benchmark.kind == "math":
        return Item(id=item_id, question=question, gold=_math_gold(benchmark, row), kind="math")

    options = _options(benchmark, row)
    gold_index = _gold_index(benchmark, row, options)
    shown, permutation, gold_letter = shuffle_options(
        options, gold_index, seed=seed, key=f"{benchmark.name}/{item_id}", shuffle=shuffle
    )
    return Item(id=item_id, question=question, gold=gold_letter, kind="mc", options=shown,
                permutation=permutation, letters=option_letters(len(shown)))


def _item_id(benchmark: Benchmark, row: Mapping[str, Any], index: int) -> str:
    """The row's id field, or its index when the source has no such field (or it is empty)."""
    if benchmark.id_field:
        try:
            value = resolve_field(row, benchmark.id_field)
        except (KeyError, IndexError):
            value = None
        if value is not None and str(value) != "":
            return str(value)
    return str(index)


def _math_gold(benchmark: Benchmark, row: Mapping[str, Any]) -> str:
    value = resolve_field(row, benchmark.gold)
    if benchmark.gold_from == "boxed":
        from srft_trl.grading import extract_boxed

        boxed = extract_boxed(str(value))
        if boxed is None:
            raise ValueError(f"{benchmark.name}: no \\boxed{{}} in the gold field {benchmark.gold!r}")
        return boxed.strip()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # AMC stores answers as floats (`142.0`)
    return str(value).strip()


def _options(benchmark: Benchmark, row: Mapping[str, Any]) -> list[str]:
    if isinstance(benchmark.options, tuple):
        options = [resolve_field(row, column) for column in benchmark.options]
    else:
        options = list(resolve_field(row, benchmark.options))
    return [str(option).strip() for option in options]


def _gold_index(benchmark: Benchmark, row: Mapping[str, Any], options: list[str]) -> int:
    gold = resolve_field(row, benchmark.gold)
    if benchmark.gold_from == "index":
        index = int(gold)
    elif benchmark.gold_from == "text":
        index = options.index(str(gold).strip())
    else:
        labels = (
            [str(label).strip() for label in resolve_field(row, benchmark.option_labels)]
            if benchmark.option_labels
            else list(option_letters(len(options)))
        )
        index = labels.index(str(gold).strip())
    if not 0 <= index < len(options):
        raise ValueError(f"{benchmark.name}: gold index {index} outside {len(options)} options")
    return index
