"""Streaming for the batch commands: decode ahead and write behind in worker threads, shards.

    with Pool(workers) as pool:
        for item, decoded in pool.read_ahead(items, decode):   # in order; decoded may be an exception
            ...                                                 # the model runs here, on the calling thread
            pool.write(job, on_done)                            # on_done(None | exception), in order

Threads, not processes: Pillow releases the GIL while it decodes and encodes, zlib while it
compresses and torch while the model runs, so the three overlap without pickling images between
processes. Memory stays bounded whatever the folder size: at most ``2 * workers`` decoded inputs
wait ahead and ``2 * workers`` outputs wait to be written; the input iterator is pulled lazily.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from cinn_cli.batch.images import discover
from cinn_cli.batch.report import RunReport

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Decode/encode threads: one per core up to 4 (beyond that the model, not I/O, is the limit)."""
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def shared_cores(device, workers: int):
    """Around ``cinn colorize`` (and its colour transfer) on ``device`` with a pool of ``workers``
    threads: on the CPU, torch's threads are shared out, each of the ``workers + 1`` Python threads
    (the model's and the pool's) running its operations on ``cores // (workers + 1)`` torch threads
    (at least one); restored after.

    Why: with torch's default (one thread per core) each operation of the model thread and of every
    worker (which brings each colouring to full size) forks a team of one thread per core, and the
    teams fight over the same cores. On this 2-core machine (one torch thread each) colorize runs
    200 small photos (-n 1) in 9.5 s instead of 14.9 s, and 41 val photos (-n 5) at 3.1-3.5 photos/s
    instead of 2.6 (bench/README.md). Not for ``cinn encode``, whose workers only decode: there the
    model thread needs every core (one thread was 1.2-1.6x slower). ``OMP_NUM_THREADS``, when set,
    decides instead. Enter before the pool's threads start: each thread takes torch's setting when
    it first runs an operation.
    """
    import torch

    if device.type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        yield
        return
    cores = torch.get_num_threads()
    torch.set_num_threads(max(1, cores // (workers + 1)))
    try:
        yield
    finally:
        torch.set_num_threads(cores)


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; raises ``ValueError`` with the reason."""
    i, sep, n = spec.partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        raise ValueError(f"{spec!r} is not i/N (e.g. 0/4)") from None
    if not sep or count < 1 or not 0 <= index < count:
        raise ValueError(f"{spec!r}: need 0 <= i < N (e.g. 0/4 ... 3/4)")
    return index, count


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the input with relative path ``key`` belongs to ``shard`` ``(i, N)``.

    A hash of the path, not the position in the listing: machines of a job array that see the
    folder at different moments (files added, another sort order) still split it the same way.
    """
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "little") % count == index


def readable(
    pool: Pool,
    items: Iterable[T],
    read: Callable[[T], R],
    report,
    bad_input: type[Exception],
    path_of: Callable[[T], Path],
    bar=None,
) -> Iterator[tuple[T, R]]:
    """``pool.read_ahead`` over inputs that may be bad: an item whose ``read`` raised
    ``bad_input`` is reported failed with that one-line reason and left out; any other exception
    is a bug, not a bad input, and propagates. ``bar`` (if given) counts every item."""
    for item, value in pool.read_ahead(items, read):
        if bar is not None:
            bar.update()
        if isinstance(value, bad_input):
            report.fail(str(path_of(item)), str(value))
        elif isinstance(value, Exception):
            raise value
        else:
            yield item, value


def select(items: Iterable[tuple[Path, Path]], shard: tuple[int, int] | None, report) -> Iterator[tuple[Path, Path]]:
    """The ``(path, rel)`` inputs of ``shard`` whose outputs cannot collide with another's.

    Outputs are named after the relative path without its suffix, so ``a.jpg`` and ``a.png`` in
    one folder, or two ``IMG_0001.jpg`` from different folders on stdin (named by file name
    only), would write the same files: the first (in input order) wins, each later one fails with
    the reason (the same path listed twice is one input). Checked before the shard filter, so
    every shard of a job array agrees. The names seen are kept (about 100 bytes per input; no
    image is kept). Each input of the shard counts as started (``report.started``).
    """
    seen: dict[str, Path] = {}
    for path, rel in items:
        key = rel.with_suffix("").as_posix()
        first = seen.setdefault(key, path)
        if not in_shard(rel.as_posix(), shard):
            continue
        report.started += 1
        if first is not path:
            if first == path:  # the same file listed twice: one input
                continue
            report.fail(str(path), f"its outputs ({key}-*) would overwrite those of {first}; rename one of them")
            continue
        yield path, rel


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


class OutputError(Exception):
    """An output that cannot be written at all (a folder there, a name too long); the message is
    the reason, naming the file."""


class NameTooLong(OutputError):
    """An output name above ``NAME_MAX`` bytes: the input's other outputs are as long, so it fails whole."""


def existing_output(paths: list[Path], check_names: int | None = None) -> Path | None:
    """The first of ``paths`` that exists (a file or link: the output is skipped without
    ``--overwrite``), or ``None``. Raises ``OutputError`` when one cannot be written: a folder in
    its place, or a name above ``NAME_MAX`` bytes (of the first ``check_names`` paths, default
    all: a latent that will not be written needs no legal name)."""
    for i, p in enumerate(paths):
        if (check_names is None or i < check_names) and len(os.fsencode(p.name)) > NAME_MAX:
            raise NameTooLong(f"its output name {p.name!r} would be longer than {NAME_MAX} bytes")
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise OutputError(f"cannot check {p} ({e.strerror or e})") from None
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"cannot write {p}: is a directory")
        return p
    return None


class WriteError(Exception):
    """Writing ``target`` (one of an input's several files, e.g. its latent beside its image)
    failed for ``reason``: carried to the report so the failure names the file that failed."""

    def __init__(self, target: Path, reason: str):
        super().__init__(f"cannot write {target} ({reason})")
        self.target, self.reason = target, reason


def write_or_raise(target: Path, write: Callable[..., None], *args) -> None:
    """``write(target, *args)``; an OSError or ValueError (a name the metadata refuses) becomes a
    ``WriteError`` naming ``target``."""
    try:
        write(target, *args)
    except (OSError, ValueError) as e:
        raise WriteError(target, getattr(e, "strerror", None) or str(e)) from None


class TempSweeper:
    """Removes our stale temporary files (``storage.remove_stale_temps``) from each output
    folder once, the first time a run plans an output there: lazily, so a huge tree is not
    walked up front, and only folders this run writes into."""

    def __init__(self):
        self.started = time.time()
        self.seen: set[Path] = set()

    def __call__(self, folder: Path) -> None:
        if folder not in self.seen:
            from cinn_cli.files.atomic import remove_stale_temps

            self.seen.add(folder)
            remove_stale_temps(folder, self.started)


def progress_bar(source: str, skip: Path, shard: tuple[int, int] | None, report, unit: str = "img"):
    """A tqdm counter with the rate (images/s) on stderr, shown only when stderr is a terminal, so
    cron mails, log files and ``2>file`` stay free of carriage-return noise.

    The inputs of ``source`` (a file or folder; not ``-``, whose lines are still to come) that
    this run would read -- ``skip`` (OUT) not entered, only ``shard`` -- are counted in a
    background thread (names only, no image opened), so a huge tree still starts at once. Once
    the count is done the bar has its total (hence an ETA) and ``report.total`` is set, from
    which an interrupted run's summary says how many inputs were not started."""
    import threading

    bar = stage_bar(None, None, unit)
    if source != "-":

        def count() -> None:
            from cinn_cli.batch.images import discover

            try:
                total = sum(1 for _, rel in discover(source, skip=skip) if in_shard(rel.as_posix(), shard))
            except Exception:  # the count is a nicety: the run itself reports what it meets
                return
            bar.total = total
            report.total = total

        report.counting = threading.Thread(target=count, name="cinn-count", daemon=True)
        report.counting.start()
    return bar


def stage_bar(total: int | None, desc: str | None, unit: str):
    """A tqdm bar on stderr, drawn only when stderr is a terminal (cron mails, log files and
    ``2>file`` stay free of carriage-return noise): ``progress_bar``'s, and that of a long
    computation that is not a batch run (``cinn eval``), ``desc`` naming what it counts."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


STOP_POLL_SECONDS = 0.05  # how often a wait for a worker looks for a stop request


class Pool:
    """A thread pool with a bounded read-ahead queue and a bounded write-behind queue.

    Results come back on the calling thread and in submission order, so reports and ``--json``
    lines are printed in a deterministic order whatever the number of workers.
    """

    def __init__(self, workers: int, stop_check: Callable[[], None] | None = None):
        """``stop_check`` (``RunReport.checkpoint``) is called every ``STOP_POLL_SECONDS`` while this
        thread waits for a worker, so a signal's stop request is acted on during a long decode or
        write too, not only at the next report."""
        self.workers = max(1, workers)
        self.depth = 2 * self.workers
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cinn-io")
        self._writes: deque[tuple[Future, Callable[[BaseException | None], None]]] = deque()
        self._stop_check = stop_check

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
        # On an error or an interrupt, queued jobs are dropped and running ones finish: each
        # write is atomic, so nothing half-written is left either way. The writes that finished
        # are then reported, so an interrupted run's summary counts every file it left.
        # Reads still running are not waited for: they write nothing, and one decode of a huge
        # photo would hold an interrupted run for seconds (``interruptible`` ends the process
        # without joining their threads).
        self._executor.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        futures_wait([f for f, _ in self._writes if not f.cancelled()])  # a cancelled one never ends
        while self._writes:
            future, on_done = self._writes.popleft()
            if not future.cancelled():
                on_done(future.exception())

    def read_ahead(self, items: Iterable[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R | Exception]]:
        """``(item, fn(item))`` for each item, in order, with up to ``2 * workers`` computed ahead.

        An exception raised by ``fn`` is returned in place of its value (the caller decides
        whether it is a reported failure or a bug); ``items`` is pulled only as room frees up.
        """
        ahead: deque[tuple[T, Future]] = deque()
        source = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(ahead) < self.depth:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                ahead.append((item, self._executor.submit(fn, item)))
            if not ahead:
                return
            item, future = ahead.popleft()
            self._wait(future)
            try:
                value = future.result()
            except Exception as e:  # handed to the caller, see the docstring
                value = e
            yield item, value

    def submit(self, fn: Callable[..., R], *args) -> Future:
        """Start ``fn(*args)`` in a worker now; ``result`` gives its value or raises its error."""
        return self._executor.submit(fn, *args)

    def result(self, future: Future[R]) -> R:
        """``future.result()``, waited for as every wait of the pool is (``stop_check``)."""
        self._wait(future)
        return future.result()

    def _wait(self, future: Future) -> None:
        if self._stop_check is None:
            futures_wait([future])
            return
        while not futures_wait([future], timeout=STOP_POLL_SECONDS).done:
            self._stop_check()

    def write(self, job: Callable[[], None], on_done: Callable[[BaseException | None], None]) -> None:
        """Run ``job`` in a worker; ``on_done(None or its exception)`` runs later on this thread.

        Blocks while ``2 * workers`` writes are pending, which bounds the memory they hold.
        """
        self._writes.append((self._executor.submit(job), on_done))
        self._drain(block_above=self.depth)

    def flush(self) -> None:
        """Wait for every pending write and deliver its ``on_done``."""
        self._drain(block_above=0)

    def _drain(self, block_above: int) -> None:
        while self._writes and (self._writes[0][0].done() or len(self._writes) > block_above):
            future, on_done = self._writes[0]
            self._wait(future)  # a stop here leaves the write pending (reported by __exit__)
            error = future.exception()
            self._writes.popleft()
            on_done(error)


def latent_targets(
    source: str, out: Path, shard: tuple[int, int] | None, overwrite: bool, report: RunReport
) -> Iterator[tuple[Path, Path, Path]]:
    """``(path, rel, OUT/<rel>.safetensors)`` for the inputs of ``shard`` still to encode; an
    existing latent file is reported as skipped unless ``overwrite``."""
    sweep = TempSweeper()
    for path, rel in select(discover(source, skip=out, report=report), shard, report):
        target = out / rel.with_suffix(".safetensors")
        sweep(target.parent)
        try:
            there = existing_output([target])  # a folder there or a name too long fails the input
        except OutputError as e:
            report.fail(str(path), str(e))
            continue
        if there and not overwrite:
            report.skip(str(target))
        else:
            yield path, rel, target
