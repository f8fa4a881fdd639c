"""Files: atomic writes, and reading one local data file.

Atomic writes: a reader (or a run killed mid-write) sees the old file or the new one, never part
of one. The one place srft-trl writes results, reports, markers and caches through.

`load_data_file` is the one reader of a user's local data file (training data, benchmark rows):
its errors name the file, and an empty file is an error, not a bare `StopIteration`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_FILE_FORMATS", "atomic_directory", "atomic_path", "atomic_write_text", "atomic_write_json",
    "atomic_write_jsonl", "load_data_file",
]

# suffix -> the `datasets` builder that reads it
DATA_FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    The temporary name keeps `path`'s suffix, so writers that pick a format from the suffix
    (matplotlib's `savefig`) behave as for the final name. Folders are created as needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the final file gets ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_directory(path: str | os.PathLike, *, replace: bool = False):
    """Yield a temporary folder beside `path`; filled without error, it becomes `path` by a rename.

    An existing `path` is replaced only with `replace=True`; otherwise (another process sharing
    the folder finished first) the existing one is kept. On error the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if replace and path.exists():
            shutil.rmtree(path)
        try:
            os.replace(tmp, path)
        except OSError:  # a non-empty `path` appeared meanwhile: keep it
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a synced temporary sibling and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return False
    return True


def load_data_file(path: str | os.PathLike):
    """The rows of one local data file (`DATA_FILE_FORMATS`) as a `datasets.Dataset`.

    Raises `FileNotFoundError` / `ValueError` naming the file when it is missing, of another
    type, empty, or unreadable as its type.
    """
    import datasets

    path = Path(path)
    builder = DATA_FILE_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(DATA_FILE_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if builder in ("json", "csv") and _is_blank(path):
        raise ValueError(f"{path}: the file is empty (no rows)")
    try:
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # datasets wraps parse errors in DatasetGenerationError; the cause says what is wrong
        cause = error.__cause__ or error
        raise ValueError(f"{path}: cannot be read as {builder}: {type(cause).__name__}: {cause}") from error
    if len(dataset) == 0:
        raise ValueError(f"{path}: the file has no rows")
    return dataset
