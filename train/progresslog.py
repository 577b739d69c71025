"""One plain line per training epoch for logs (`make demo > log`, `nohup train run ...`).

On a terminal the rich epoch bar shows progress and EpochLog stays silent; in a log it prints the
first and the last epoch of the run, and in between at most one line every ``every`` seconds:
``epoch 3/100, step 120, loss 0.0421, 12.3 steps/s, ETA 0:04:10``.
"""
from __future__ import annotations

import time
from typing import Callable

from curate.common.clitools import duration, print_line, stderr


class EpochLog:
    """Called once per finished epoch by the loop; decides whether to print a line.

    ``epoch`` and ``step`` are where the run starts (a resumed run counts its rate and ETA from
    there). ``write`` None: stderr, and only when stderr is not a terminal; ``clock`` is for tests."""

    def __init__(self, epochs: int, epoch: int = 0, step: int = 0, every: float = 10.0, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] | None = None):
        if write is None and enabled and not stderr.is_terminal:
            write = print_line
        self.epochs, self.epoch0, self.step0, self.every = epochs, epoch, step, every
        self.clock, self.write = clock, write if enabled else None
        self.began = clock()
        self.last: float | None = None

    def __call__(self, epoch: int, step: int, loss: float | Callable[[], float], lr: float | None = None) -> bool:
        """Print the line for ``epoch`` (done) if due; ``loss`` may be a function, called only then
        (so that a loss kept on the device is not fetched for nothing). True when printed."""
        if self.write is None:
            return False
        now = self.clock()
        if not (self.last is None or epoch >= self.epochs or now - self.last >= self.every):
            return False
        self.last = now
        self.write(self.line(epoch, step, loss() if callable(loss) else loss, lr, now - self.began))
        return True

    def line(self, epoch: int, step: int, loss: float, lr: float | None, elapsed: float) -> str:
        parts = [f"epoch {epoch}/{self.epochs}", f"step {step}", f"loss {loss:.4f}"]
        if lr is not None:
            parts.append(f"lr {lr:.1e}")
        if elapsed > 0:
            parts.append(f"{(step - self.step0) / elapsed:.3g} steps/s")
        if epoch < self.epochs and epoch > self.epoch0 and elapsed > 0:
            parts.append(f"ETA {duration((self.epochs - epoch) * elapsed / (epoch - self.epoch0))}")
        return ", ".join(parts)
