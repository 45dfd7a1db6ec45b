"""The demo's story on the terminal, everything else in a log file.

:class:`Story` prints numbered steps, each with its one-line result and its time: plain lines, or on a
terminal a ``rich`` spinner for the running step above the lines already done. :func:`output_to` sends
what libraries write (Airflow's and Dask's logging, Python warnings, the Spark JVM, which writes to the
process's file descriptors 1 and 2 rather than to ``sys.stdout``) to a log file, and hands back a stream
on the original stderr for the story.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

#: Indent of a step's result line, under its title.
INDENT = "      "


def log_path(folder: Path, now: datetime | None = None) -> Path:
    """``folder/demo-<UTC time>.log``, stamped like Airflow's own log lines (``20200401T220000Z``)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"demo-{stamp}.log"


def _is_fd(stream: Any, fd: int) -> bool:
    """Whether ``stream`` writes to file descriptor ``fd`` (not so for pytest's capture objects)."""
    try:
        return bool(stream.fileno() == fd)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[TextIO]:
    """Send file descriptors 1 and 2, and with them every writer in the process, to ``path`` (appended).

    Yields the stream the story is printed on: the original stderr (a duplicate of its descriptor when
    ``sys.stderr`` writes to fd 2, else ``sys.stderr`` itself). Python's ``sys.stdout`` goes to
    ``sys.stderr`` as well, so a ``--json`` result printed after the block is the only thing on stdout
    even where ``sys.stdout`` is not fd 1. Descriptors are restored on exit, also on an exception;
    a child process started inside (the Spark JVM) keeps writing to the log for its lifetime.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    story = (
        os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        if _is_fd(sys.stderr, 2)
        else sys.stderr
    )
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for fd in (1, 2):
            os.dup2(log, fd)
        with contextlib.redirect_stdout(sys.stderr):
            yield story
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(log)
        if story is not sys.stderr:
            story.close()


class Story:
    """Numbered steps with their one-line results and times, on ``stream``.

    Parameters
    ----------
    stream : where the story goes (the terminal's stderr, or a file); None: nowhere (``--quiet``).
    fancy : a ``rich`` live spinner for the running step; default: when ``stream`` is a terminal.
    clock : seconds, monotonic (injectable so a test needs no sleep).
    """

    def __init__(
        self,
        stream: TextIO | None,
        *,
        fancy: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stream = stream
        self.fancy = stream is not None and (_isatty(stream) if fancy is None else fancy)
        self.clock = clock
        self._progress: Any = None

    def __enter__(self) -> Story:
        if self.fancy:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream, highlight=False, force_terminal=True)
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                # rich would otherwise route sys.stdout/sys.stderr to the terminal: they belong in the log
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def line(self, text: str) -> None:
        """One line of the story (above the spinner on a terminal)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self.stream is not None:
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Run one step: its title, then ``result (N s)`` under it; ``FAILED`` and the error if it raises."""
        step = Step()
        t0 = self.clock()
        task = None
        if self._progress is not None:
            task = self._progress.add_task(title, total=None)
        else:
            self.line(title)
        try:
            yield step
        except BaseException as exc:
            self._done(task, title, f"FAILED after {self.clock() - t0:.1f} s: {type(exc).__name__}: {exc}")
            raise
        self._done(task, title, f"{step.result} ({self.clock() - t0:.1f} s)")

    def _done(self, task: Any, title: str, result: str) -> None:
        if task is not None:
            self._progress.remove_task(task)
            self.line(title)  # on a terminal the title was the spinner's; it stays as a line once done
        self.line(INDENT + result)


class Step:
    """What a step reports: set :attr:`result` to its one-line summary before the block ends."""

    def __init__(self) -> None:
        self.result = "done"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
