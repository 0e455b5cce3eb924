"""The end-of-run summary (stderr, or JSON on stdout) and the exit code that tells the truth.

Exit codes: 0 everything was written or already there, 1 some inputs failed (each is named with
its reason), 2 usage errors (raised by Click before any work).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunReport:
    command: str
    json_lines: bool = False
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def wrote(self, path: str, **fields: Any) -> None:
        self.written += 1
        if self.json_lines:
            emit_json({"event": "written", "path": str(path), **fields})

    def skip(self, path: str) -> None:
        self.skipped += 1
        if self.json_lines:
            emit_json({"event": "skipped", "path": str(path), "reason": "exists (use --overwrite)"})

    def fail(self, path: str, reason: str) -> None:
        self.failures.append((str(path), reason))
        if self.json_lines:
            emit_json({"event": "failed", "path": str(path), "reason": reason})

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def finish(self) -> int:
        """Print the summary (stderr; plus a JSON object on stdout with ``--json``)."""
        summary = {
            "event": "summary",
            "command": self.command,
            "written": self.written,
            "skipped": self.skipped,
            "failed": len(self.failures),
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
        if not (self.written or self.skipped or self.failures):  # an empty folder, a typo'd glob, an empty shard
            console.print("[yellow]warning[/yellow]: no inputs, nothing to do")
        extra = ", ".join(f"{k} {v}" for k, v in self.extra.items())
        console.print(escape(f"cinn {self.command}: " + ", ".join(parts) + (f"; {extra}" if extra else "")))
        return self.exit_code


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
