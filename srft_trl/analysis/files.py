"""Reading the JSONL inputs; every output is written atomically (`srft_trl.files`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..files import atomic_path, atomic_write_json, atomic_write_jsonl, atomic_write_text

__all__ = [
    "atomic_path",
    "atomic_savefig",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "read_records",
    "slugify",
    "unique_labels",
]


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a `.jsonl` file (one JSON object a line, blank lines skipped) or of a `.json` list."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of objects")
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: record {number} is not a JSON object")
    return rows


def slugify(label: str) -> str:
    """A file-name-safe form of a label (`run/checkpoint-20` -> `run_checkpoint-20`)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")
    return slug or "model"


def unique_labels(labels: Iterable[str]) -> list[str]:
    """`labels` with repeats made distinct by a `-2`, `-3`, ... suffix."""
    used: set[str] = set()
    out = []
    for label in labels:
        candidate, count = label, 1
        while candidate in used:
            count += 1
            candidate = f"{label}-{count}"
        used.add(candidate)
        out.append(candidate)
    return out
