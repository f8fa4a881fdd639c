"""Run a function on many items in worker processes, with a wall-clock bound per item.

Grading model output is untrusted work: a LaTeX bomb can keep sympy busy for minutes, blow up
memory or overflow the C stack. This module runs such work in separate processes and, when one
item takes longer than ``timeout_s``, kills that worker, returns a fallback for the item and
starts a replacement, so a single pathological answer never stalls a training or evaluation run.

Why this is hand-written instead of using the standard library:

* ``concurrent.futures.ProcessPoolExecutor`` and ``multiprocessing.Pool`` cannot cancel a task that
  is already running (``Future.cancel`` only affects pending tasks), so a hung task holds its
  worker, and the pool's shutdown, forever.
* Math-Verify's own timeouts use ``SIGALRM``: they only work in the main thread (TRL may call
  reward functions from other threads, where they raise) and they cancel any alarm the caller had
  set. We call Math-Verify with its timeouts disabled and bound time here, by killing processes.
* Workers are started by executing a fresh interpreter (what the "spawn" start method does), never
  by ``fork``: forking a process that has loaded torch, CUDA or OpenMP thread pools is unsafe. We
  launch the interpreter with ``subprocess`` rather than ``multiprocessing``'s spawn context because
  the latter re-imports the parent's ``__main__`` script in every worker: an unguarded training
  script would be re-executed in each grader worker.
* ``pebble.ProcessPool(max_workers, max_tasks, initializer, context).schedule(fn, timeout=...)``
  does cancel a running task by killing its worker, but it starts workers through
  ``multiprocessing`` contexts: ``fork`` (unsafe, above) or ``spawn``/``forkserver``, which
  re-import ``__main__``. Measured (``python -m benchmarks.pool_start_methods``, results in
  ``benchmarks/results/pool_start_methods.md``): a script without ``if __name__ == "__main__":``
  runs its top level 3 times with a 2-worker pebble pool under ``spawn`` and under ``forkserver``
  (once per worker: a training script would start training in each grader) and exits with status
  1; under this pool it runs once and exits 0. That is the reason this pool stays hand-written.

Each worker limits its own address space (``RLIMIT_AS``, Linux only) to its start-up footprint
plus ``memory_mb``; an item that exceeds it fails with ``MemoryError`` and gets the fallback, and
the worker is replaced. A worker that crashes (segfault, C stack overflow, OOM kill) yields the
fallback for its item as well. Workers exit on their own if the parent process disappears.

A slow item's worker is killed rather than interrupted in place (e.g. by an alarm signal in the
worker): interrupting sympy half-way can leave facts cached as "unknown" on shared objects such as
``S.One``, silently changing later verdicts of that worker. A fresh process has clean state.

``run_bounded`` uses a lazily created module-level pool (closed at interpreter exit) so callers
such as reward functions do not pay process start-up on every call; an idle spare worker takes a
killed worker's place at once. POSIX only.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable

__all__ = [
    "BoundedPool",
    "TaskOutcome",
    "run_bounded",
    "run_bounded_status",
    "get_shared_pool",
    "close_shared_pool",
]

# Outcome statuses.
OK, ERROR, TIMEOUT, CRASH = "ok", "error", "timeout", "crash"

# The worker registers ``srft_trl`` as a bare package object without running its __init__, which
# imports the trainer (torch, trl): grading needs none of that, and it would cost every worker
# seconds of start-up and hundreds of MB. Subpackages such as ``srft_trl.grading`` import normally;
# functions defined in ``srft_trl/__init__.py`` itself cannot be run in a worker.
_BOOTSTRAP = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "rx = Connection(int(sys.argv[1]), writable=False)\n"
    "tx = Connection(int(sys.argv[2]), readable=False)\n"
    "cfg = rx.recv()\n"
    "sys.path[:] = cfg['sys_path']\n"
    "import importlib.util\n"
    "spec = importlib.util.find_spec('srft_trl')\n"
    "sys.modules['srft_trl'] = importlib.util.module_from_spec(spec)\n"
    "from srft_trl.grading.bounded import _worker_main\n"
    "_worker_main(rx, tx, cfg)\n"
)


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to one item: ``status`` is "ok", "error", "timeout" or "crash"."""

    status: str
    value: Any = None  # the result when ok, else a short description
    seconds: float = 0.0


# --------------------------------------------------------------------------- worker side


def _current_address_space() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _limit_memory(memory_mb: int | None) -> None:
    if not memory_mb or not sys.platform.startswith("linux"):
        return
    import resource

    current = _current_address_space()
    if current is None:
        return
    soft = current + int(memory_mb) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _watch_parent(parent_pid: int) -> None:
    # Reparenting means our parent died; a busy worker would otherwise spin on forever.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def _resolve(spec: str) -> Callable[[], Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(rx: Connection, tx: Connection, cfg: dict) -> None:
    """Worker loop: receive (task_id, pickled (fn, item)), send (task_id, status, value)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if cfg.get("initializer"):
        _resolve(cfg["initializer"])()
    threading.Thread(target=_watch_parent, args=(cfg["parent_pid"],), daemon=True).start()
    _limit_memory(cfg.get("memory_mb"))
    tx.send(("ready", os.getpid(), None, False))
    while True:
        try:
            message = rx.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, payload = message
        exit_after = False
        try:
            fn, item = pickle.loads(payload)
            reply = (task_id, OK, fn(item), False)
        except MemoryError:
            # A worker that hit its memory limit may be left fragmented: it says so and exits.
            reply, exit_after = (task_id, ERROR, "MemoryError", True), True
        except BaseException as exc:  # noqa: BLE001 - any failure of fn is reported, not fatal
            reply = (task_id, ERROR, f"{type(exc).__name__}: {exc}"[:500], False)
        try:
            tx.send(reply)
        except Exception as exc:  # unpicklable result
            tx.send((task_id, ERROR, f"result not picklable: {type(exc).__name__}", exit_after))
        if exit_after:
            return


# --------------------------------------------------------------------------- parent side


@dataclass
class _Worker:
    proc: subprocess.Popen
    rx: Connection
    tx: Connection
    started: float
    ready: bool = False
    task: int | None = None  # index into the current map's items
    task_id: int | None = None
    deadline: float = 0.0
    dispatched: float = 0.0
    done: int = 0

    def peak_rss_mb(self) -> float | None:
        """The worker's peak resident memory (Linux ``VmHWM``), while it is still running."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.close_pipes()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close_pipes(self) -> None:
        for conn in (self.rx, self.tx):
            try:
                conn.close()
            except OSError:
                pass


@dataclass
class _MapState:
    outcomes: list
    pending: deque = field(default_factory=deque)
    remaining: int = 0


def _default_processes() -> int:
    return max(2, min(8, (os.cpu_count() or 2) // 2))


class BoundedPool:
    """A pool of worker processes that runs ``fn(item)`` with a per-item wall-clock bound.

    Args:
        processes: number of workers (default: half the CPUs, between 2 and 8).
        memory_mb: how much each worker may grow beyond its start-up address space (Linux
            ``RLIMIT_AS``); ``None`` or 0 disables the limit.
        initializer: optional ``"module:function"`` run once in each worker before it takes work
            (imports, warm-up); its time does not count against any item.
        start_timeout_s: how long a worker may take to start before ``RuntimeError`` is raised.
        max_tasks_per_worker: replace a worker after this many items (bounds slow leaks).
        spare_workers: extra idle workers kept started, so that a killed worker's place is taken
            at once instead of after a replacement's start-up (about a second of imports).
            At most ``processes`` items run at a time.

    ``fn`` must be a picklable top-level function and items and results picklable. ``map`` calls
    are serialised by a lock, so the pool may be shared between threads. Use as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        processes: int | None = None,
        *,
        memory_mb: int | None = 2048,
        initializer: str | None = None,
        start_timeout_s: float = 120.0,
        max_tasks_per_worker: int | None = 1000,
        spare_workers: int = 1,
    ) -> None:
        if os.name != "posix":
            raise RuntimeError("BoundedPool needs a POSIX system (it passes pipes to workers).")
        self.processes = int(processes or _default_processes())
        if self.processes < 1:
            raise ValueError("processes must be >= 1")
        self.memory_mb = memory_mb
        self.initializer = initializer
        self.start_timeout_s = start_timeout_s
        self.max_tasks_per_worker = max_tasks_per_worker
        self.spare_workers = max(0, int(spare_workers))
        self.stats: Counter = Counter()
        self.peak_worker_rss_mb = 0.0  # highest VmHWM seen in a worker about to be stopped
        self._workers: list[_Worker] = []
        self._lock = threading.RLock()
        self._closed = False
        self._owner_pid = os.getpid()
        self._next_task_id = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "BoundedPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop all workers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() != self._owner_pid:  # a forked copy must not touch the parent's workers
                self._workers = []
                return
            for worker in self._workers:
                self._note_peak(worker)
                try:
                    worker.tx.send(None)
                except OSError:
                    pass
            deadline = time.monotonic() + 1.0
            for worker in self._workers:
                try:
                    worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                worker.kill()
            self._workers = []

    def _spawn(self) -> _Worker:
        parent_rx, child_tx = os.pipe()
        child_rx, parent_tx = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_rx), str(child_tx)],
                pass_fds=(child_rx, child_tx),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            for fd in (parent_rx, child_tx, child_rx, parent_tx):
                os.close(fd)
            raise
        os.close(child_rx)
        os.close(child_tx)
        worker = _Worker(
            proc=proc,
            rx=Connection(parent_rx, writable=False),
            tx=Connection(parent_tx, readable=False),
            started=time.monotonic(),
        )
        worker.tx.send(
            {
                "sys_path": list(sys.path),
                "parent_pid": os.getpid(),
                "memory_mb": self.memory_mb,
                "initializer": self.initializer,
            }
        )
        self.stats["started"] += 1
        return worker

    def _note_peak(self, worker: _Worker) -> None:
        peak = worker.peak_rss_mb()
        if peak is not None:
            self.peak_worker_rss_mb = max(self.peak_worker_rss_mb, peak)

    def _replace(self, worker: _Worker, kill: bool = True) -> None:
        self._note_peak(worker)
        if kill:
            worker.kill()
        else:
            worker.close_pipes()
            try:
                worker.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
        self._workers.remove(worker)
        self._workers.append(self._spawn())

    # -- mapping ---------------------------------------------------------------------------

    def map_outcomes(
        self, fn: Callable[[Any], Any], items: Iterable[Any], timeout_s: float
    ) -> list[TaskOutcome]:
        """Run ``fn`` on every item; one :class:`TaskOutcome` per item, in order."""
        if timeout_s is None or timeout_s <= 0:
            raise ValueError("timeout_s must be a positive number of seconds")
        items = list(items)
        fn_check = pickle.dumps(fn)  # fail loudly here if fn is not picklable
        del fn_check
        with self._lock:
            if self._closed:
                raise RuntimeError("BoundedPool is closed")
            if os.getpid() != self._owner_pid:
                raise RuntimeError("BoundedPool was created in another process; create a new one")
            state = _MapState(outcomes=[None] * len(items), pending=deque(range(len(items))))
            state.remaining = len(items)
            if not items:
                return []
            for worker in list(self._workers):
                if worker.proc.poll() is not None:  # died while idle, e.g. OOM-killed
                    self.stats["idle_exits"] += 1
                    self._replace(worker, kill=False)
            while len(self._workers) < self.processes + self.spare_workers:
                self._workers.append(self._spawn())
            try:
                self._run(fn, items, timeout_s, state)
            except BaseException:
                # Interrupted mid-map: busy workers hold stale tasks, so replace them.
                for worker in list(self._workers):
                    if worker.task is not None:
                        worker.task = None
                        self._replace(worker)
                raise
        return state.outcomes

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        timeout_s: float,
        fallback: Any = None,
    ) -> list:
        """Like :meth:`map_outcomes`, but returns the result or ``fallback`` for each item."""
        outcomes = self.map_outcomes(fn, items, timeout_s)
        return [o.value if o.status == OK else fallback for o in outcomes]

    def _finish(self, state: _MapState, worker: _Worker, status: str, value: Any) -> None:
        index = worker.task
        seconds = time.monotonic() - worker.dispatched
        state.outcomes[index] = TaskOutcome(status, value, seconds)
        state.remaining -= 1
        self.stats[status] += 1
        worker.task = worker.task_id = None
        worker.done += 1

    def _run(self, fn, items, timeout_s: float, state: _MapState) -> None:
        while state.remaining:
            now = time.monotonic()
            busy = sum(w.task is not None for w in self._workers)
            for worker in list(self._workers):
                if busy >= self.processes or not state.pending:
                    break
                if worker.ready and worker.task is None:
                    busy += 1
                    index = state.pending.popleft()
                    self._next_task_id += 1
                    payload = pickle.dumps((fn, items[index]))
                    worker.task, worker.task_id = index, self._next_task_id
                    worker.dispatched = time.monotonic()
                    worker.deadline = worker.dispatched + timeout_s
                    try:
                        worker.tx.send((worker.task_id, payload))
                    except OSError:
                        # Died while idle; its EOF is handled below as a crash of this task.
                        pass

            deadlines = [w.deadline for w in self._workers if w.task is not None]
            deadlines += [w.started + self.start_timeout_s for w in self._workers if not w.ready]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else None
            by_conn = {w.rx: w for w in self._workers}
            for conn in wait(list(by_conn), timeout=wait_s):
                worker = by_conn[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is None:
                    self._handle_exit(state, worker)
                    continue
                task_id, status, value, exiting = message
                if task_id == "ready":
                    worker.ready = True
                elif worker.task is not None and task_id == worker.task_id:
                    self._finish(state, worker, status, value)
                    if exiting:
                        self._replace(worker, kill=False)
                    elif self.max_tasks_per_worker and worker.done >= self.max_tasks_per_worker:
                        self.stats["recycled"] += 1
                        try:
                            worker.tx.send(None)
                        except OSError:
                            pass
                        self._replace(worker, kill=False)

            now = time.monotonic()
            for worker in list(self._workers):
                if worker.task is not None and now >= worker.deadline:
                    self._finish(state, worker, TIMEOUT, f"exceeded {timeout_s:g} s")
                    self._replace(worker)
                elif not worker.ready and now >= worker.started + self.start_timeout_s:
                    worker.kill()
                    self._workers.remove(worker)
                    raise RuntimeError(
                        f"a grading worker did not start within {self.start_timeout_s:g} s"
                    )

    def _handle_exit(self, state: _MapState, worker: _Worker) -> None:
        code = worker.proc.poll()
        if code is None:
            try:
                code = worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = "unknown"
        if not worker.ready:
            worker.kill()
            self._workers.remove(worker)
            raise RuntimeError(
                f"a grading worker exited during start-up (exit code {code}); "
                "its traceback, if any, is on stderr above"
            )
        if worker.task is not None:
            self._finish(state, worker, CRASH, f"worker exited with code {code}")
        else:
            self.stats["idle_exits"] += 1
        self._replace(worker, kill=False)


# --------------------------------------------------------------------------- shared pool

_shared_pool: BoundedPool | None = None
_shared_lock = threading.Lock()


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def get_shared_pool() -> BoundedPool:
    """The process-wide pool used by :func:`run_bounded`, created on first use.

    Sized by ``SRFT_GRADER_WORKERS`` (default: half the CPUs, 2 to 8; plus one idle spare) with a
    per-worker memory allowance of ``SRFT_GRADER_MEMORY_MB`` (default 2048). Workers pre-import
    and warm up the graders, so their start-up never counts against an item's time bound.
    """
    global _shared_pool
    with _shared_lock:
        pool = _shared_pool
        if pool is None or pool.closed or pool._owner_pid != os.getpid():
            pool = BoundedPool(
                processes=_env_int("SRFT_GRADER_WORKERS", None),
                memory_mb=_env_int("SRFT_GRADER_MEMORY_MB", 2048),
                initializer="srft_trl.grading.verdict:warm_up",
            )
            _shared_pool = pool
        return pool


def close_shared_pool() -> None:
    """Stop the shared pool's workers (registered with ``atexit``; safe to call any time)."""
    global _shared_pool
    with _shared_lock:
        pool, _shared_pool = _shared_pool, None
    if pool is not None:
        pool.close()


atexit.register(close_shared_pool)


def run_bounded_status(
    fn: Callable[[Any], Any], items: Iterable[Any], timeout_s: float = 5.0
) -> list[TaskOutcome]:
    """Run ``fn`` on each item in the shared pool; one :class:`TaskOutcome` per item."""
    return get_shared_pool().map_outcomes(fn, items, timeout_s)


def run_bounded(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    timeout_s: float = 5.0,
    fallback: Any = None,
) -> list:
    """Run ``fn`` on each item in the shared pool, ``fallback`` where it failed or timed out."""
    return get_shared_pool().map(fn, items, timeout_s, fallback)
