"""Shared command-line plumbing: one error helper, stderr console, progress bars, output formats."""
from __future__ import annotations

import contextlib
import datetime
import functools
import sys
import time
from typing import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import SidkitError

# soft_wrap: a message is one line however long (the terminal folds it; a log keeps it whole, so a
# printed command pastes back), and a table title never breaks mid-word. Tables keep their columns
# when piped to a file (rich would otherwise assume 80 columns).
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error to stderr and exit non-zero."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def reports_errors(func):
    """Decorator for click commands: SidkitError becomes a one-line error and exit status 1."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SidkitError as exc:
            fail(str(exc))
        except OSError as exc:   # a folder that cannot be written, a disk that is full
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}; check the path, its permissions and free space")
    return wrapper


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True, completed: int = 0, every: float = 10.0,
                 plain: bool = True):
    """Progress on stderr, when ``enabled``: a rich bar on a terminal, else (a log, ``nohup``) plain
    lines from PlainProgress, unless ``plain`` is False. Yields ``advance(by=1, status=None)``,
    ``status`` a text shown after the count. ``total`` 0: unknown."""
    if not enabled:                  # no Progress at all: rich before 14.3 writes a newline even when disabled
        yield lambda by=1, status=None: None
        return
    if not stderr.is_terminal:
        lines = PlainProgress(total, description, completed, every) if plain else None
        yield lines.advance if lines else (lambda by=1, status=None: None)
        if lines:
            lines.finish()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed, status="")

        def advance(by: int = 1, status: str | None = None) -> None:
            progress.update(task, advance=by, **({} if status is None else {"status": status}))
        yield advance


def print_line(line: str) -> None:
    """One plain line on stderr: no markup, no highlighting, never wrapped."""
    stderr.print(line, markup=False, highlight=False, soft_wrap=True)


def duration(seconds: float) -> str:
    """'0:01:05' for 65 s."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0))))


class PlainProgress:
    """Progress as plain lines for a log: the first when there is work (at once when ``total`` is
    known, else at the first advance), then at most one every ``every`` seconds (done/total, rate,
    ETA, status), and one at the end of work that began. ``clock`` and ``write`` are for tests."""

    def __init__(self, total: int, description: str, completed: int = 0, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] = print_line):
        self.total, self.description, self.done, self.first = total, description, completed, completed
        self.every, self.clock, self.write = every, clock, write
        self.began = self.last = clock()
        self.status, self.started = "", False
        if total > completed:
            self.start()

    def start(self) -> None:
        self.started = True
        self.write(f"{self.description}: {self.count()}" if self.total else f"{self.description}: started")

    def advance(self, by: int = 1, status: str | None = None) -> None:
        if not self.started:
            self.start()
        self.done += by
        self.status = self.status if status is None else status
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.write(self.line(now))

    def finish(self) -> None:
        if self.started:
            self.write(self.line(self.clock(), end=True))

    def count(self) -> str:
        return f"{self.done}/{self.total}" if self.total else str(self.done)

    def line(self, now: float, end: bool = False) -> str:
        elapsed = now - self.began
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.description}: {self.count()}"]
        if end:
            parts.append(f"done in {duration(elapsed)}")
        if rate:
            parts.append(f"{rate:.3g}/s")
        if not end and self.total and rate:
            parts.append(f"ETA {duration((self.total - self.done) / rate)}")
        return ", ".join(parts + ([self.status] if self.status else []))
