"""Reading the JSONL inputs and writing every output atomically (temp file in the same folder + `os.replace`)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    The temporary name keeps `path`'s suffix, so writers that pick a format from the suffix
    (matplotlib's `savefig`) behave as for the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


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
