"""What every command-line entry point shares: a reader that closes the pipe early (`srft-trl train --help | head`)
ends the command quietly, without a BrokenPipeError traceback."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable


def _stdout_is_a_closed_pipe() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports POLLERR); True where that cannot be asked."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a file descriptor
        return True


def quiet_on_closed_pipe(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap an entry point: stdout flushed inside it, and a BrokenPipeError from a closed stdout ends it with status 1
    and nothing on stderr (the Python docs' recipe, `signal` module, "Note on SIGPIPE"). SIGPIPE is left ignored, as
    Python sets it: restoring its default would also kill a training run whenever one of its sockets drops."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            status = main(*args, **kwargs)
            sys.stdout.flush()
            return status or 0
        except BrokenPipeError:
            if not _stdout_is_a_closed_pipe():  # a socket or a subprocess's pipe: a real failure
                raise
            # Python flushes stdout again at exit; pointing it at devnull keeps that quiet as well.
            with contextlib.suppress(AttributeError, OSError, ValueError):  # no real stdout left to redirect
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
            return 1

    return wrapper
