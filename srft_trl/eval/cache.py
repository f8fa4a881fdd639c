"""The generation cache: nothing generated is lost, and nothing stale is reused.

Each (benchmark, settings) pair gets a directory named by a hash of everything that changes
what the model would generate: the model (a fingerprint of its files for a local checkpoint),
the benchmark, the template, the sampling settings, n, the seed and the backend. A run with
different settings therefore lands in a different directory and never sees another run's
samples. Inside, `generations.jsonl` receives one line per finished item, appended atomically
(a single `write` of the whole line on an `O_APPEND` descriptor, then `fsync`), so an
interrupted run resumes with every finished item and at most one torn last line, which is
discarded. Each line also stores its prompt, and an item is only reused if its prompt is
unchanged (new data or a new option order regenerates it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..files import atomic_write_text

__all__ = ["GenerationCache", "settings_hash", "atomic_write_text", "model_fingerprint"]


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable settings dict (key order does not matter)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def model_fingerprint(model: str, revision: str | None = None) -> dict[str, Any]:
    """Identify a model for the cache key.

    A local checkpoint is identified by its resolved path and the names, sizes and modification
    times of its files, so a checkpoint overwritten in place is not mistaken for the old one; a
    Hub id by the id and revision.
    """
    path = Path(model)
    if path.is_dir():
        files = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns) for entry in path.iterdir() if entry.is_file()
        )
        return {"path": str(path.resolve()), "files": settings_hash({"files": files})}
    return {"hub_id": model, "revision": revision}


class GenerationCache:
    """Append-only store of finished generations for one benchmark under one set of settings."""

    FILE = "generations.jsonl"

    def __init__(self, root: str | os.PathLike, benchmark: str, settings: dict[str, Any]):
        self.settings = {"benchmark": benchmark, **settings}
        self.key = settings_hash(self.settings)
        self.dir = Path(root) / f"{benchmark}-{self.key}"
        self.path = self.dir / self.FILE
        self._repaired = False

    def load(self) -> dict[str, dict[str, Any]]:
        """Finished records by item id (a torn last line from an interrupted write is skipped)."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return records
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "id" in record:
                    records[str(record["id"])] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Durably append one finished item."""
        if not self._repaired:
            self._prepare()
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            while written < len(data):  # os.write may be partial for very large records
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def _prepare(self) -> None:
        """Create the directory, record the settings, and cut a torn last line so the next
        append starts on a fresh line."""
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "settings.json"
        if not settings_file.is_file():
            atomic_write_text(settings_file, json.dumps(self.settings, indent=2, sort_keys=True, default=str))
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb+") as handle:
                content = handle.read()
                if not content.endswith(b"\n"):
                    handle.truncate(content.rfind(b"\n") + 1)
        self._repaired = True
