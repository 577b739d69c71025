"""Shared command-line plumbing: one error helper, stderr console, progress bars, output formats."""
from __future__ import annotations

import contextlib
import functools
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import SidkitError

stderr = Console(stderr=True)
# Tables keep their columns when piped to a file (rich would otherwise assume 80 columns).
stdout = Console(width=None if sys.stdout.isatty() else 160)
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
def progress_bar(total: int, description: str, enabled: bool = True, completed: int = 0):
    """A rich progress bar on stderr (shown on a terminal when ``enabled``); yields
    ``advance(by=1, status=None)``, ``status`` a text shown after the bar."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=stderr, transient=False,
                  disable=not (enabled and stderr.is_terminal)) as progress:
        task = progress.add_task(description, total=total, completed=completed, status="")

        def advance(by: int = 1, status: str | None = None) -> None:
            progress.update(task, advance=by, **({} if status is None else {"status": status}))
        yield advance
