"""The end-of-run summary (stderr, or JSON on stdout) and the exit code that tells the truth.

Exit codes: 0 everything was written or already there, 1 some inputs failed (each is named with
its reason), 2 usage errors (raised by Click before any work), 130 interrupted by Ctrl-C (SIGINT)
and 143 by SIGTERM (128 + the signal, as shells report it): the summary is printed either way.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so a run ends as on Ctrl-C (but exits 143, not 130)."""


@dataclass
class RunReport:
    command: str
    json_lines: bool = False
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    not_images: int = 0  # folder entries skipped for their suffix
    started: int = 0  # inputs taken up by the run (read, skipped or failed)
    total: int | None = None  # the inputs the run would take up, once counted (None: not known)
    unit: str = "inputs"  # what ``started`` and ``total`` count
    counting: Any = None  # the thread counting the inputs (``progress_bar``), if any
    stop_requested: str | None = None  # "SIGTERM" or "SIGINT" once a signal asked the run to stop
    _stopped: bool = field(default=False, init=False, repr=False)  # checkpoint has raised

    def wrote(self, path: str, **fields: Any) -> None:
        self.written += 1
        if self.json_lines:
            fields = {k: display_name(v) if k == "source" else v for k, v in fields.items()}
            emit_json({"event": "written", "path": display_name(path), **fields})
        self.checkpoint()

    def skip(self, path: str) -> None:
        self.skipped += 1
        if self.json_lines:
            emit_json({"event": "skipped", "path": display_name(path), "reason": "exists (use --overwrite)"})
        self.checkpoint()

    def not_image(self) -> None:
        self.not_images += 1
        self.checkpoint()

    def fail(self, path: str, reason: str) -> None:
        self.failures.append((display_name(path), reason))
        if self.json_lines:
            emit_json({"event": "failed", "path": display_name(path), "reason": reason})
        self.checkpoint()

    def checkpoint(self) -> None:
        """Raise ``Terminated`` (SIGTERM) or ``KeyboardInterrupt`` (Ctrl-C), once, if a signal asked
        the run to stop (``clikit.runs.signals_stop``). Called on the main thread between two of
        the run's own steps: after each output, skip or failure it reports (counted first), and
        while it waits for a worker (``Pool``). So the run stops there, and never inside a
        library's half-done step (a lock taken, an import or a thread pool's bookkeeping under
        way), as an exception raised by the signal handler itself could."""
        if self.stop_requested and not self._stopped:
            self._stopped = True
            raise Terminated if self.stop_requested == "SIGTERM" else KeyboardInterrupt

    @property
    def not_started(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.started)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def finish(self, aborted_by: str | None = None) -> int:
        """Print the summary (stderr; plus a JSON object on stdout with ``--json``) and return the
        exit code; ``aborted_by`` ``"SIGINT"`` or ``"SIGTERM"`` marks an interrupted run (its
        summary says ``"aborted": true``; inputs not reached are neither written nor failed)."""
        if aborted_by and self.counting is not None:
            self.counting.join(timeout=2.0)  # a count nearly done still gives "not started"
        summary = {
            "event": "summary",
            "command": self.command,
            "written": self.written,
            "skipped": self.skipped,
            "failed": len(self.failures),
            "not_images": self.not_images,
            **({"aborted": True, "signal": aborted_by, "not_started": self.not_started} if aborted_by else {}),
            **self.extra,
        }
        if self.json_lines:
            emit_json({**summary, "failures": [{"path": p, "reason": r} for p, r in self.failures]})
        from rich.console import Console
        from rich.markup import escape

        console = Console(stderr=True, highlight=False, soft_wrap=True)
        for path, reason in self.failures:  # escaped: "[bold]" or "x[/red]y" in a path is text, not markup
            console.print(f"[red]failed[/red] {escape(path)}: {escape(reason)}")
        parts = [
            f"{self.written} written",
            f"{self.skipped} skipped (already there)",
            f"{len(self.failures)} failed",
        ]
        if self.not_images:
            parts.append(f"{self.not_images} skipped (not an image)")
        if aborted_by:
            left = "not counted" if self.not_started is None else str(self.not_started)
            console.print(f"[yellow]aborted[/yellow] by {aborted_by}: {self.unit} not started: {left}")
        elif not (self.written or self.skipped or self.failures):  # an empty folder, a typo'd glob, an empty shard
            console.print("[yellow]warning[/yellow]: no inputs, nothing to do")
        extra = ", ".join(f"{k} {v}" for k, v in self.extra.items())
        console.print(escape(f"cinn {self.command}: " + ", ".join(parts) + (f"; {extra}" if extra else "")))
        if aborted_by:
            return 143 if aborted_by == "SIGTERM" else 130
        return self.exit_code


def display_name(path: Any) -> str:
    """A path as one line of valid UTF-8 for messages and JSON: bytes that are not UTF-8 become
    ``\\xNN`` escapes (losslessly), and a name with a line break or other control character is
    quoted (``repr``), so one failure is always one line."""
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return repr(text) if any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
