"""A minimal progress line on stderr that appears only once a task has taken more than a second."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream=None, delay: float = 1.0) -> None:
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.delay = delay
        self.shown = False
        self._last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        total = total if total is not None else self.total
        now = time.perf_counter()
        interval = 0.1 if self.stream.isatty() else 1.0  # logs get a line a second, terminals redraw
        if now - self.start < self.delay or (self.shown and now - self._last < interval and done != total):
            return
        self._last = now
        self.shown = True
        if total:
            width = 24
            filled = int(width * done / total)
            text = f"{self.label}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            text = f"{self.label}: {done}"
        end = "" if self.stream.isatty() else "\n"
        self.stream.write(f"\r{text} ({now - self.start:.1f} s)" + end)
        self.stream.flush()

    def close(self) -> None:
        if self.shown and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
