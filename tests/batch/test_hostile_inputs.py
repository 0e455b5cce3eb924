"""A hostile-input corpus, built by code in tmp_path: special files, links, names, odd modes, lying
files, overlapping folders, files already at output paths, stale temporary files, signals.

Every CLI case asserts: no traceback, no hang (subprocesses under a timeout), no file replaced
that the run did not make, the documented exit code, one line naming each bad file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import Terminal, child_env, cli, invoke, photo, tiny_mnist_file, tree, watchdog
from PIL import Image

from cinn_cli.batch.images import discover
from cinn_cli.batch.photos import PhotoError, read_gray
from cinn_cli.batch.report import RunReport, Terminated, display_name

pytestmark = pytest.mark.usefixtures("single_thread")
LONG_OK = "l" * 236 + ".png"  # 240 bytes: its latent name (<stem>-1.safetensors) is 254 bytes
LONG_BAD = "b" * 251 + ".png"  # 255 bytes: legal, but its outputs cannot be named


@pytest.fixture(scope="module")
def weights(colorize_weights):
    """This module's ``weights``: the tiny colorization model (conftest's ``colorize_weights``)."""
    return colorize_weights


def gray_image(mode: str, value: float, size=(20, 16)) -> Image.Image:
    """A flat image of ``value`` in ``mode`` (the values a user's tool would store there)."""
    if mode in ("F", "I"):
        return Image.fromarray(np.full(size[::-1], value, np.float32 if mode == "F" else np.int32), mode)
    return Image.new(mode, size, value)


def hostile_folder(root: Path) -> dict[str, str]:
    """A folder of good and bad inputs; returns {bad entry name: expected reason fragment}."""
    root.mkdir()
    Image.fromarray(photo(0, 20, 24)).save(root / "good.png")
    Image.fromarray(photo(1, 20, 24)).save(root / LONG_OK)
    Image.fromarray(photo(2, 20, 24)).save(root / LONG_BAD)
    Image.fromarray(photo(3, 20, 24)).save(root / "sheet.ppm")  # a format Pillow reads
    (root / "notes.txt").write_text("not an image")
    os.mkfifo(root / "fifo.png")
    os.symlink("loop.png", root / "loop.png")
    os.symlink("nowhere.png", root / "broken.png")
    (root / "lying.png").write_text("this is text")
    (root / "truncated.png").write_bytes((root / "good.png").read_bytes()[:60])
    (root / "new\nline.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")
    Image.new("L", (1, 400)).save(root / "strip.png")
    Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(root / "nan.tif")
    bad = {
        "fifo.png": "not a regular file",
        "loop.png": "symbolic link loop",
        "broken.png": "broken symbolic link",
        "lying.png": "not an image",
        "truncated.png": "cannot be decoded",
        "new\\nline.png": "not an image",  # quoted: the whole path is printed as repr()
        "strip.png": "aspect ratio",
        "nan.tif": "NaN",
        LONG_BAD: "longer than 255 bytes",
    }
    try:
        fd = os.open(os.fsencode(root) + b"/\xff.png", os.O_WRONLY | os.O_CREAT)
        os.write(fd, (root / "good.png").read_bytes())
        os.close(fd)
    except OSError:  # a file system that refuses non-UTF-8 names: the case is not testable here
        pass
    return bad


def test_a_hostile_folder_fails_each_bad_entry_alone(weights, tmp_path):
    bad = hostile_folder(tmp_path / "in")
    args = ("colorize", tmp_path / "in", tmp_path / "out", "-n", 1, "--seed", 1, "--weights", weights, "--json")
    proc = subprocess.run(cli(*args), capture_output=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 1 and "Traceback" not in err, err
    failed = [line for line in err.splitlines() if line.startswith("failed ")]
    assert len(failed) == len(bad), err  # one line per failure, a newline in a name included
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in failed), (name, err)
    out = tmp_path / "out"
    assert (out / "good-1.png").is_file() and (out / "sheet-1.png").is_file()
    assert (out / (LONG_OK[:-4] + "-1.safetensors")).is_file()
    if os.path.exists(os.fsencode(tmp_path / "in") + b"/\xff.png"):
        assert os.path.exists(os.fsencode(out) + b"/\xff-1.png")
    assert not [p for p in out.iterdir() if p.name.startswith(".cinn-tmp-")]
    summary = json.loads(proc.stdout.decode().splitlines()[-1])
    assert summary["not_images"] == 1 and "1 skipped (not an image)" in err


def test_encode_colorize_refuses_extreme_aspect_ratios_at_once(weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for w, h in ((1, 4000), (4000, 3), (65500, 2)):
        Image.new("RGB", (w, h)).save(src / f"{w}x{h}.png")
    start = time.monotonic()
    result = invoke("encode", src, tmp_path / "z", "--model", weights)
    assert time.monotonic() - start < 20
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.count("aspect ratio above 32:1") == 3, result.stderr


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("F", 128.0, 128), ("F", 0.5, 128), ("I", 128, 128), ("I", 32768, 128), ("I;16", 32768, 128)],
)
def test_documented_value_range_of_each_mode(tmp_path, mode, value, expected):
    """F: 0-1 when its maximum is at most 1.5, else 0-255; I: 0-255 when its maximum is at most
    255, else 0-65535; I;16: 0-65535."""
    path = tmp_path / "x.tif" if mode != "I;16" else tmp_path / "x.png"
    im = gray_image(mode if mode != "I;16" else "I", value)
    (im if mode != "I;16" else Image.fromarray(np.full((16, 20), value, np.uint16))).save(path)
    gray, _ = read_gray(path)
    assert abs(float(gray.mean()) * 255 - expected) < 1.5


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "1", "RGBA"])
def test_other_modes_read_as_gray(tmp_path, mode):
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    Image.new(mode, (9, 7)).save(path)
    gray, alpha = read_gray(path)
    assert gray.shape == (7, 9) and (alpha is not None) == (mode in ("LA", "RGBA"))


def test_nan_float_tiff_is_refused(tmp_path):
    Image.fromarray(np.array([[0.5, np.nan]], np.float32), "F").save(tmp_path / "n.tif")
    with pytest.raises(PhotoError, match="NaN"):
        read_gray(tmp_path / "n.tif")


def test_names_print_on_one_line_and_non_utf8_losslessly():
    assert display_name("a\nb.png") == repr("a\nb.png")
    odd = os.fsdecode(b"\xff.png")
    assert display_name(odd) == "\\xff.png"
    RunReport("t").fail(odd, "x")  # never "surrogates not allowed"


def test_stdin_keeps_leading_spaces_and_scan_counts_non_images(tmp_path):
    assert [p.name for p, _ in discover("-", stdin=[" lead.png\r\n", "\n"])] == [" lead.png"]
    (tmp_path / "a.tga").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"")
    report = RunReport("t")
    assert [r.name for _, r in discover(str(tmp_path), report=report)] == ["a.tga"]
    assert report.not_images == 1


# --------------------------------------------------------------------------- no data loss


def one_photo(folder: Path, name: str = "x.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(5, 16, 20)).save(folder / name)
    return folder / name


def test_rerun_with_latents_after_no_latents_keeps_the_picked_image(weights, tmp_path):
    src = one_photo(tmp_path / "in")
    out = tmp_path / "out"
    assert invoke("colorize", src, out, "-n", 1, "--no-latents", "--weights", weights).exit_code == 0
    before = (out / "x-1.png").read_bytes()
    result = invoke("colorize", src, out, "-n", 1, "--weights", weights)  # a fresh seed
    assert result.exit_code == 0 and "1 skipped (already there)" in result.stderr
    assert (out / "x-1.png").read_bytes() == before and not (out / "x-1.safetensors").exists()


def test_a_users_file_at_an_output_path_is_never_replaced(weights, tmp_path):
    src = one_photo(tmp_path / "in", "gray.png")
    (tmp_path / "P").mkdir()
    (tmp_path / "P" / "gray-1.png").write_text("precious")
    (tmp_path / "P" / "gray-2.safetensors").write_text("mine too")
    result = invoke("colorize", src, tmp_path / "P", "-n", 2, "--weights", weights)
    assert result.exit_code == 0 and "0 written, 2 skipped" in result.stderr
    assert (tmp_path / "P" / "gray-1.png").read_text() == "precious"
    assert (tmp_path / "P" / "gray-2.safetensors").read_text() == "mine too"


@pytest.mark.parametrize("out", [".", ".."])
def test_out_equal_to_or_holding_in_is_a_usage_error(weights, tmp_path, out):
    src = tmp_path / "io"
    one_photo(src, "d.png")
    (src / "d-1.png").write_bytes((src / "d.png").read_bytes())
    before = sorted(p.name for p in src.iterdir())
    for command in ("colorize", "encode"):
        result = invoke(command, src, src / out, "--weights" if command == "colorize" else "--model", weights)
        assert result.exit_code == 2 and "input folder" in result.stderr, result.output
    assert sorted(p.name for p in src.iterdir()) == before


def test_overwrite_no_latents_removes_the_stale_latent(weights, tmp_path):
    src = one_photo(tmp_path / "in")
    out = tmp_path / "out"
    assert invoke("colorize", src, out, "-n", 1, "--weights", weights).exit_code == 0
    assert (out / "x-1.safetensors").exists()
    result = invoke("colorize", src, out, "-n", 1, "--overwrite", "--no-latents", "--weights", weights)
    assert result.exit_code == 0 and not (out / "x-1.safetensors").exists()


def test_a_folder_at_an_output_path_fails(weights, tmp_path):
    src = one_photo(tmp_path / "in")
    (tmp_path / "out" / "x-1.png").mkdir(parents=True)
    result = invoke("colorize", src, tmp_path / "out", "-n", 1, "--weights", weights)
    assert result.exit_code == 1 and "is a directory" in result.stderr and "0 skipped" in result.stderr


def test_stale_temp_files_are_removed_and_nothing_else(weights, tmp_path):
    src = one_photo(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh_user = out / ".cinn-tmp-abcd1234", out / ".cinn-tmp-notes.txt"
    for p in (stale, fresh_user, out / "mine.tmp"):
        p.write_text("x")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    assert invoke("colorize", src, out, "-n", 1, "--weights", weights).exit_code == 0
    assert not stale.exists() and fresh_user.exists() and (out / "mine.tmp").exists()


def test_colour_transfer_removes_stale_temp_files_too(weights, tmp_path):
    src = one_photo(tmp_path / "in")
    assert invoke("encode", src, tmp_path / "z", "--model", weights).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".cinn-tmp-abcd1234"
    stale.write_text("x")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    result = invoke("colorize", src, out, "--from-latent", tmp_path / "z", "--weights", weights)
    assert result.exit_code == 0 and not stale.exists() and (out / "x-from-x.png").exists()


def test_a_run_failing_its_first_check_leaves_no_output_folder(tmp_path):
    src = one_photo(tmp_path / "in")
    (tmp_path / "bad.safetensors").write_text("not a model")
    result = invoke("colorize", src, tmp_path / "new" / "out", "--weights", tmp_path / "bad.safetensors")
    assert result.exit_code == 1 and not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_prints_the_summary_and_ends_the_json_stream(weights, tmp_path, name, code):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(80):
        Image.fromarray(photo(i, 24, 24)).save(src / f"{i:03}.png")
    args = ("colorize", src, tmp_path / "o", "-n", 2, "--seed", 3, "--weights", weights, "--json")
    proc = subprocess.Popen(cli(*args), env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with watchdog(proc, 120):
        first = proc.stdout.readline()  # the first written output: the run is under way
        assert json.loads(first)["event"] == "written"
        proc.send_signal(getattr(signal, name))
        # stdout's own buffer may hold more lines already: communicate() would read past them
        rest, err = proc.stdout.read(), proc.stderr.read()
        proc.wait()
    lines = [json.loads(line) for line in (first + rest).decode().splitlines()]
    assert proc.returncode == code and b"Traceback" not in err, err
    assert lines[-1]["event"] == "summary" and lines[-1]["aborted"] is True
    listed = sum(line["event"] == "written" for line in lines)
    assert listed == lines[-1]["written"] < 160  # the run stops between reports, never inside one
    assert listed == len(list((tmp_path / "o").glob("*.png")))  # every file there is counted
    assert f"aborted by {name}".encode() in err and f"{name}: stopping after the outputs in progress".encode() in err
    not_started = lines[-1]["not_started"]  # 80 inputs, counted in the background
    assert 0 < not_started < 80 and f"inputs not started: {not_started}".encode() in err


# A run stuck in a step that never returns, so it never reaches its next report: argv[1] is the grace.
STUCK_RUN = """
import sys, threading
from cinn_cli.batch.report import RunReport
from cinn_cli.clikit import runs

runs.STOP_GRACE_SECONDS = float(sys.argv[1])
with runs.interruptible(RunReport("colorize")):
    print("running", flush=True)
    threading.Event().wait()
"""


@pytest.mark.parametrize(("name", "raised"), [("SIGTERM", Terminated), ("SIGINT", KeyboardInterrupt)])
def test_a_signal_stops_the_run_at_its_next_report_once(name, raised):
    """The handler only asks; the report raises, after counting (and printing) what it reports."""
    report = RunReport("colorize", json_lines=False)
    report.wrote("a.png")
    report.stop_requested = name
    with pytest.raises(KeyboardInterrupt) as stopped:
        report.wrote("b.png")
    assert type(stopped.value) is raised and report.written == 2
    report.wrote("c.png")  # the writes in flight, reported while the run winds down
    report.fail("d.png", "cannot write")
    assert report.written == 3 and len(report.failures) == 1


@pytest.mark.parametrize(("name", "count"), [("SIGTERM", 1), ("SIGTERM", 2), ("SIGINT", 1), ("SIGINT", 2)])
def test_a_stuck_run_still_ends_on_a_signal(name, count):
    """However a run is stuck, SIGTERM (143) or Ctrl-C (130) ends the process: after the grace
    period, or at once on a second signal."""
    grace = 2.0 if count == 1 else 600.0
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_RUN, str(grace)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with watchdog(proc, 60):
        assert proc.stdout.readline() == b"running\n"
        started = time.monotonic()
        for _ in range(count):
            proc.send_signal(getattr(signal, name))
            time.sleep(0.5)
        err = proc.stderr.read().decode()
        proc.wait()
    assert proc.returncode == (143 if name == "SIGTERM" else 130), err
    assert "Traceback" not in err
    if count == 1:
        assert f"still running 2 s after {name}" in err and time.monotonic() - started >= grace
    else:
        assert f"second {name}, exiting at once" in err


def test_sample_aborted_counts_the_samples_not_started(monkeypatch, tmp_path):
    """The summary of an interrupted ``cinn sample`` says how many samples were never drawn."""
    from cinn_cli.batch import report as report_module

    finish = report_module.RunReport.finish
    seen = {}

    def interrupt_on_second_write(self, path, **fields):
        self.written += 1
        if self.written == 2:
            raise KeyboardInterrupt

    def record_finish(self, aborted_by=None):
        seen.update(total=self.total, started=self.started, not_started=self.not_started)
        return finish(self, aborted_by)

    monkeypatch.setattr(report_module.RunReport, "wrote", interrupt_on_second_write)
    monkeypatch.setattr(report_module.RunReport, "finish", record_finish)
    result = invoke("sample", "--digit", "3,4", "-n", 5, "--batch-size", 1, "--seed", 0, "-o", tmp_path / "s")
    assert result.exit_code == 130
    assert seen == {"total": 10, "started": 2, "not_started": 8}
    assert "samples not started: 8" in result.output


def test_progress_bar_counts_the_inputs_of_the_run(monkeypatch, tmp_path):
    """On a terminal the bar gets the number of inputs (hence an ETA): OUT inside IN and other
    shards are not counted, and the report learns the same total."""
    from cinn_cli.batch.stream import in_shard, progress_bar

    src = tmp_path / "in"
    (src / "out").mkdir(parents=True)
    names = [f"{i:02}.png" for i in range(12)]
    for name in names:
        Image.fromarray(photo(0, 8, 8)).save(src / name)
        Image.fromarray(photo(0, 8, 8)).save(src / "out" / name)  # OUT inside IN: not inputs
    monkeypatch.setattr(sys, "stderr", Terminal())
    for shard, expected in ((None, 12), ((1, 3), sum(in_shard(n, (1, 3)) for n in names))):
        report = RunReport("colorize")
        with progress_bar(str(src), src / "out", shard, report) as bar:
            deadline = time.monotonic() + 10
            while report.total is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert bar.total == report.total == expected


def test_library_warnings_do_not_reach_stderr(weights, tmp_path):
    """A JPEG whose EXIF lies about a tag's size makes Pillow warn; the run says nothing of it."""
    import struct
    import warnings

    from PIL import ImageOps

    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010E, 2, 1000, 26) + struct.pack("<I", 0)
    Image.new("L", (16, 16), 100).save(tmp_path / "x.jpg", exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd)
    with warnings.catch_warnings(record=True) as caught, Image.open(tmp_path / "x.jpg") as im:
        warnings.simplefilter("always")
        ImageOps.exif_transpose(im)
    assert caught, "this file no longer makes Pillow warn: the test needs another"
    args = ("colorize", tmp_path / "x.jpg", tmp_path / "o", "-n", 1, "--seed", 0, "--weights", weights)
    proc = subprocess.run(cli(*args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.splitlines() == [
        f"cinn colorize: 1 written, 0 skipped (already there), 0 failed; seed 0, out {tmp_path / 'o'}"
    ], proc.stderr


def test_a_full_disk_fails_the_outputs_it_hits_and_leaves_nothing_half_written(weights, monkeypatch, tmp_path):
    """ENOSPC part-way through a run: the outputs that did not fit fail by name ("No space left"),
    exit 1, no temporary file stays, every file that is there decodes; once space is back, the
    rerun completes to exactly what a clean run writes."""
    import errno
    import threading

    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        Image.fromarray(photo(i, 24, 24)).save(src / f"{i}.png")
    args = ("colorize", src, tmp_path / "o", "-n", 2, "--seed", 3, "--weights", weights, "--workers", 1)
    real_fdopen, lock, budget = os.fdopen, threading.Lock(), [6000]  # bytes the disk still takes

    class FillingFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            with lock:
                if len(data) > budget[0]:
                    budget[0] = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                budget[0] -= len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **kw: FillingFile(real_fdopen(fd, *a, **kw)))
    full = invoke(*args)
    monkeypatch.undo()
    assert full.exit_code == 1 and "Traceback" not in full.output, full.output
    assert "No space left on device" in full.output
    files = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert not [f for f in files if f.startswith(".cinn-tmp-")]
    assert 0 < sum(f.endswith(".png") for f in files) < 12
    for p in (tmp_path / "o").glob("*.png"):
        with Image.open(p) as im:
            im.load()
    assert invoke(*args).exit_code == 0
    assert invoke(*args[:2], tmp_path / "ref", *args[3:]).exit_code == 0
    assert tree(tmp_path / "o") == tree(tmp_path / "ref")


# --------------------------------------------------------------------------- MNIST sheets and reports


def test_mnist_sheets_are_scaled_and_every_interpolation_file_is_reported(tmp_path):
    mnist = tiny_mnist_file(tmp_path / "m.safetensors", 0)
    s = tmp_path / "s"
    result = invoke("sample", "-d", 3, "-n", 4, "--seed", 1, "--grid", "--weights", mnist, "-o", s)
    assert result.exit_code == 0, result.output
    assert Image.open(s / "3-0001.png").size == (28, 28) and Image.open(s / "3-grid.png").size[0] > 200
    a, b = s / "3-0001.safetensors", s / "3-0002.safetensors"
    result = invoke("sample", "--interpolate", a, b, "--steps", 3, "--weights", mnist, "-o", tmp_path / "i", "--json")
    written = [json.loads(line)["path"] for line in result.stdout.splitlines()[:-1]]
    assert result.exit_code == 0 and len(written) == 4 and "4 written" in result.stderr
    result = invoke("sample", "--from-latent", a, "-d", "1,2", "--weights", mnist, "-o", tmp_path / "t")
    assert result.exit_code == 0 and Image.open(tmp_path / "t" / "3-0001-grid.png").size == (4 * 62, 4 * 32)
