"""What every streaming command shares, passed to its pipeline as one value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinn_cli.batch.report import RunReport


@dataclass(frozen=True)
class BatchRun:
    """Where a batch command reads (``source``: a file, a folder searched recursively, or ``-``
    for paths on stdin) and writes (``out``), whether existing outputs are replaced
    (``overwrite``), the report it fills, the torch ``device`` its model runs on, the number of
    read-ahead/write-behind threads (``workers``; ``None``: ``default_workers()``) and the shard
    ``(i, N)`` of the inputs it takes (``None``: all)."""

    source: str
    out: Path
    report: RunReport
    device: Any  # torch.device (not imported here: the command line starts without torch)
    overwrite: bool = False
    workers: int | None = None
    shard: tuple[int, int] | None = None
