"""Running a batch command: the device, the output folder, signals and the summary's exit."""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from cinn_cli.batch.report import RunReport, Terminated
from cinn_cli.clikit.options import DEVICE_HELP


def resolve_device(spec: str):
    import torch

    _end_startup()  # every command that runs a model comes here once, after its heavy imports

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise click.BadParameter(f"{spec!r} is not a device ({DEVICE_HELP})", param_hint="--device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA was requested but is not available", param_hint="--device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise click.BadParameter("MPS was requested but is not available", param_hint="--device")
    return device


def prepare_output_folder(out: Path) -> None:
    """Create OUT before any work, so a folder that cannot be written is one error (exit 1),
    not the same failure once per input. (A sub-folder that cannot be written fails per input.)"""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"{out}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise click.ClickException(f"{out}: the output folder is not writable")


# How long a run stopped by SIGTERM or Ctrl-C may take to finish its writes in flight and print its
# summary before the process ends regardless. Finishing normally takes well under a second; the
# bound is for what no test can rule out (a step or a wait that never returns), so that `timeout`,
# a scheduler or a cron wrapper always sees the process end.
STOP_GRACE_SECONDS = 60.0


@contextmanager
def signals_stop(report: RunReport):
    """Let SIGTERM (kill, timeout, a scheduler stopping the job) and Ctrl-C end a run: the first
    signal asks ``report`` to stop the run at its next checkpoint (``RunReport.checkpoint``) and starts
    the grace deadline; a second ends the process at once (each file is written atomically, so
    nothing half-written is left). Exit 143 for SIGTERM, 130 for Ctrl-C. A signal this process
    was started with ignored (``nohup``, a background job) stays ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may
        yield
        return

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        if report.stop_requested:
            _end_now(_EXIT_CODES[name], f"cinn: second {name}, exiting at once\n".encode())
        report.stop_requested = name
        threading.Thread(target=_deadline, args=(name,), name="cinn-stop-deadline", daemon=True).start()
        # straight to the descriptor: the main thread may be inside a write to sys.stderr right now
        os.write(2, f"cinn: {name}: stopping after the outputs in progress ({name} again: at once)\n".encode())

    previous = {}
    for s in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(s) is not signal.SIG_IGN:
            previous[s] = signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():  # None: a handler not set from Python, left as the default
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


_EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}  # 128 + the signal, as a shell reports a process it killed


def _deadline(name: str) -> None:
    import time

    seconds = STOP_GRACE_SECONDS
    time.sleep(seconds)
    _end_now(_EXIT_CODES[name], f"cinn: still running {seconds:g} s after {name}, exiting\n".encode())


def _end_now(code: int, message: bytes) -> None:
    """Exit without running Python's shutdown (which could wait on the very thing that is stuck);
    the message goes straight to file descriptor 2, past any stream lock another thread may hold."""
    try:
        os.write(2, message)
    finally:
        os._exit(code)


@contextmanager
def interruptible(report):
    """Around a batch run: SIGTERM or Ctrl-C stops it, then the summary of what was done is printed
    (written, skipped, failed; the rest not started; ``--json`` ends with a summary marked
    ``"aborted": true``) and the exit code is 143 (SIGTERM) or 130 (Ctrl-C), as a shell reports
    a process killed by that signal."""
    import threading

    with signals_stop(report):
        try:
            yield
        except KeyboardInterrupt as e:
            code = report.finish(aborted_by="SIGTERM" if isinstance(e, Terminated) else "SIGINT")
            # Every write has finished and been reported (Pool.__exit__), but a worker may still be
            # decoding an input (seconds for a huge photo), and a normal exit would wait for it.
            busy = [t for t in threading.enumerate() if t.name.startswith("cinn-io")]
            for t in busy:
                t.join(timeout=0.5)  # idle ones end at once
            if any(t.is_alive() for t in busy):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            sys.exit(code)


@contextmanager
def output_folder(source: str, out: Path):
    """Check that OUT can be used with IN, create it, and remove it again (when this run made it
    and it is still empty) if the run then fails on usage or on its first check, so a mistyped
    command leaves nothing behind.

    OUT = IN, or IN inside OUT, is refused (exit 2): outputs would land among the inputs, a rerun
    would take them for inputs, and a photo named like an output (d-1.png) could be replaced. OUT
    inside IN is allowed: the listing never enters OUT (``discover``'s ``skip``)."""
    if source != "-" and Path(source).is_dir():
        src, dst = Path(source).resolve(), out.resolve()
        if src == dst or dst in src.parents:
            raise click.BadParameter(
                f"{out} is {'the input folder' if src == dst else 'a folder holding the input folder'}; "
                "write the outputs to another folder (a rerun would take them for inputs)",
                param_hint="OUT",
            )
    made = None  # the outermost folder this run creates
    for p in (out, *out.absolute().parents):
        if p.exists():
            break
        made = p
    prepare_output_folder(out)
    try:
        yield
    except click.ClickException:
        if made is not None:
            for p in (out.absolute(), *out.absolute().parents):
                try:
                    p.rmdir()  # only succeeds on an empty folder
                except OSError:
                    break
                if p == made.absolute():
                    break
        raise


def require_input(source: str) -> None:
    """IN must exist (``-`` is stdin): a usage error before any work otherwise."""
    if source != "-" and not Path(source).exists():
        raise click.BadParameter(f"{source}: no such file or folder", param_hint="IN")


_startup_gc_off = False  # set by start_without_gc(): collection is off until the command's imports are done


def start_without_gc() -> None:
    """Turn garbage collection off for start-up (see ``cinn_cli.cli.app.entry``)."""
    global _startup_gc_off
    gc.disable()
    _startup_gc_off = True


def _end_startup() -> None:
    """Freeze what start-up allocated (``gc.freeze``: never scanned again) and turn collection
    back on, once per process started by ``entry``; a no-op otherwise."""
    global _startup_gc_off
    if _startup_gc_off:
        _startup_gc_off = False
        gc.freeze()
        gc.enable()
