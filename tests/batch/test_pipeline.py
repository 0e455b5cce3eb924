"""Batch pipelines: reproducibility (batch size, workers, shards), cron safety, bad inputs, provenance."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, invoke, photo, tiny_mnist_file, tree
from PIL import Image

from cinn_cli.batch.stream import Pool, in_shard, parse_shard
from cinn_cli.files.atomic import file_sha256
from cinn_cli.files.latents import derive_seed, load_latent
from cinn_cli.files.model_file import package_version

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def weights(colorize_weights):
    """This module's ``weights``: the tiny colorization model (conftest's ``colorize_weights``)."""
    return colorize_weights


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Nine small photos in nested folders (sizes vary, so batches mix shapes across photos)."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(9):
        folder = root / ("" if i < 3 else f"set{i % 2}") / ("deep" if i % 4 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(i, 18 + i, 24 - i)).save(folder / f"p{i}.png")
    return root


def colorize(src, out, weights, *extra):
    result = invoke("colorize", src, out, "-n", 3, "--seed", 7, "--weights", weights, *extra)
    assert result.exit_code == 0, result.output
    return tree(out)


# --------------------------------------------------------------------------- reproducibility


def test_outputs_do_not_depend_on_batch_size_workers_or_shards(weights, photos, tmp_path):
    reference = colorize(photos, tmp_path / "ref", weights, "--batch-size", 16, "--workers", 4)
    assert len(reference) == 9 * 3 * 2  # an image and a latent per output
    assert colorize(photos, tmp_path / "b1", weights, "--batch-size", 1, "--workers", 1) == reference
    shards = [colorize(photos, tmp_path / f"s{i}", weights, "--shard", f"{i}/2") for i in range(2)]
    assert shards[0] and shards[1] and not set(shards[0]) & set(shards[1])  # both non-empty, disjoint
    assert {**shards[0], **shards[1]} == reference


def test_shard_is_a_hash_of_the_relative_path():
    keys = [f"dir/{i}.png" for i in range(400)]
    counts = [sum(in_shard(k, (i, 4)) for k in keys) for i in range(4)]
    assert sum(counts) == 400 and min(counts) > 60  # a partition, roughly even
    assert in_shard("a/b.png", (0, 3)) == in_shard("a/b.png", (0, 3))  # no state, no order
    assert all(in_shard(k, None) for k in keys)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_bad_shard_and_workers_are_usage_errors(weights, photos, tmp_path):
    for args in (("--shard", "2/2"), ("--shard", "x"), ("--workers", 0)):
        result = invoke("colorize", photos, tmp_path / "o", "--weights", weights, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert invoke("encode", photos, tmp_path / "z", "--shard", "3/2").exit_code == 2


def test_encode_shards_equal_the_unsplit_run(tmp_path):
    w = tiny_mnist_file(tmp_path / "m.safetensors", 0)
    rng = np.random.default_rng(0)
    for i in range(8):
        (tmp_path / "in" / str(i % 3)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(tmp_path / "in" / str(i % 3) / f"{i}.png")
    runs = {}
    for name, extra in (("all", ()), ("s0", ("--shard", "0/2")), ("s1", ("--shard", "1/2", "--workers", 1))):
        result = invoke("encode", tmp_path / "in", tmp_path / name, "--model", w, "--batch-size", 3, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = tree(tmp_path / name)
    assert len(runs["all"]) == 8 and runs["s0"] and runs["s1"] and {**runs["s0"], **runs["s1"]} == runs["all"]


def test_encode_reports_bad_inputs_and_writes_the_rest(tmp_path):
    w = tiny_mnist_file(tmp_path / "m.safetensors", 0)
    src = tmp_path / "in" / "4"
    src.mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(src / "ok.png")
    (src / "empty.png").write_bytes(b"")
    (src / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    result = invoke("encode", tmp_path / "in", tmp_path / "z", "--model", w)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "empty.png: is empty (0 bytes)" in result.stderr and "bomb.png: declares more than" in result.stderr
    assert (tmp_path / "z" / "4" / "ok.safetensors").is_file()


def test_an_empty_input_folder_is_no_error_but_says_so(weights, tmp_path):
    (tmp_path / "in").mkdir()
    result = invoke("colorize", tmp_path / "in", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 0 and "no inputs, nothing to do" in result.stderr
    (tmp_path / "in" / "a.png").write_bytes(b"")  # one (bad) input: no warning, exit 1
    result = invoke("colorize", tmp_path / "in", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 1 and "nothing to do" not in result.stderr


def test_inputs_whose_outputs_would_collide_fail_with_a_reason(weights, tmp_path):
    for folder in ("in", "x", "y"):
        (tmp_path / folder).mkdir()
    Image.fromarray(photo(1, 12, 12)).save(tmp_path / "in" / "a.jpg")
    Image.fromarray(photo(2, 12, 12)).save(tmp_path / "in" / "a.png")  # same stem: a-1.png twice
    folder = invoke("colorize", tmp_path / "in", tmp_path / "o1", "-n", 1, "--weights", weights, "--no-latents")
    assert folder.exit_code == 1
    assert f"{tmp_path / 'in' / 'a.png'}: its outputs (a-*) would overwrite those of {tmp_path / 'in' / 'a.jpg'}" in (
        folder.stderr
    )
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["a-1.png"]
    for d in ("x", "y"):  # stdin names outputs by file name only
        Image.fromarray(photo(3, 12, 12)).save(tmp_path / d / "IMG_1.png")
    paths = f"{tmp_path / 'x' / 'IMG_1.png'}\n{tmp_path / 'y' / 'IMG_1.png'}\n{tmp_path / 'x' / 'IMG_1.png'}\n"
    piped = invoke("colorize", "-", tmp_path / "o2", "-n", 1, "--weights", weights, "--json", input=paths)
    summary = json.loads(piped.stdout.splitlines()[-1])
    assert piped.exit_code == 1 and summary["written"] == 1  # the repeated x/IMG_1.png is one input
    assert [f["path"] for f in summary["failures"]] == [str(tmp_path / "y" / "IMG_1.png")]


def test_discover_is_lazy_and_keeps_the_sorted_order(tmp_path):
    from cinn_cli.batch.images import discover

    read = []

    def lines():
        for name in ("b.png", "a.png", "c.png"):
            read.append(name)
            yield f"/x/{name}\n"

    paths = discover("-", stdin=lines())
    assert next(paths) == (Path("/x/b.png"), Path("b.png")) and read == ["b.png"]  # one line read, in stdin order
    for rel in ("a b/x.png", "a/b.png", "a-b.png", "a.png", "A.png", "ü/z.PNG", ".hidden/y.png", "a/.h.png", "a/n.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = [rel.as_posix() for _, rel in discover(str(tmp_path))]
    expected = ["A.png", "a/b.png", "a b/x.png", "a-b.png", "a.png", "ü/z.PNG"]  # part by part: "a" < "a b"
    assert found == expected == [p.as_posix() for p in sorted(map(Path, expected))]


def test_an_output_folder_inside_the_input_folder_is_not_read(weights, tmp_path):
    """Listing is lazy, so outputs written into IN/out would otherwise become inputs of the same
    run (and each rerun would colorize the last run's outputs)."""
    Image.fromarray(photo(1, 12, 12)).save(tmp_path / "a.png")
    for _ in range(2):
        result = invoke("colorize", tmp_path, tmp_path / "out", "-n", 2, "--weights", weights, "--json")
        assert result.exit_code == 0, result.output
    assert sorted(tree(tmp_path / "out")) == ["a-1.png", "a-1.safetensors", "a-2.png", "a-2.safetensors"]
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["written"], summary["skipped"]) == (0, 2)


# --------------------------------------------------------------------------- the thread pool


def test_pool_keeps_order_bounds_read_ahead_and_hands_back_errors():
    pulled = []

    def items():
        for i in range(50):
            pulled.append(i)
            yield i

    def work(i):
        time.sleep(0.001 * (i % 3))  # finish out of order
        if i == 7:
            raise ValueError("seven")
        return i * i

    done = []
    with Pool(3) as pool:
        for consumed, (i, value) in enumerate(pool.read_ahead(items(), work)):
            assert len(pulled) <= consumed + 1 + pool.depth  # lazy: never the whole input
            assert isinstance(value, ValueError) if i == 7 else value == i * i
            pool.write(lambda i=i: threading.current_thread().name, lambda err, i=i: done.append((i, err)))
    assert [i for i, _ in done] == list(range(50)) and all(err is None for _, err in done)


def test_an_interrupt_reports_the_writes_that_finished_and_drops_the_queued_ones():
    """Ctrl-C or SIGTERM while writes are pending: the running write completes and is reported
    (its file is there, so the summary counts it); the queued ones never start."""
    from cinn_cli.batch.stream import Pool

    done, ran = [], []

    def slow(i):
        time.sleep(0.3)
        ran.append(i)

    with pytest.raises(KeyboardInterrupt), Pool(1) as pool:
        for i in range(2):  # depth 2: both are pending, the first one running
            pool.write(lambda i=i: slow(i), lambda err, i=i: done.append((i, err)))
        time.sleep(0.05)
        raise KeyboardInterrupt
    assert ran == [0] and done == [(0, None)]


@pytest.mark.parametrize("wait", ["read", "write", "result"])
def test_a_stop_requested_during_a_long_wait_for_a_worker_is_acted_on_at_once(wait):
    """A stop requested (by a signal) while the main thread waits for a worker raises from the
    wait within a few polls, not after the worker's job; a write in flight still finishes."""
    from cinn_cli.batch.report import RunReport, Terminated

    report = RunReport("colorize")
    release, done = threading.Event(), []
    threading.Timer(0.2, lambda: setattr(report, "stop_requested", "SIGTERM")).start()
    threading.Timer(3.0, release.set).start()  # the job, which would hold the wait for 3 s
    start, stopped = time.monotonic(), []
    with pytest.raises(Terminated), Pool(1, report.checkpoint) as pool:
        try:
            if wait == "read":
                list(pool.read_ahead([0], lambda _: release.wait()))
            elif wait == "write":
                for i in range(3):  # the third waits for the first, which runs until released
                    pool.write(release.wait, lambda err, i=i: done.append(i))
            else:
                pool.result(pool.submit(release.wait))
        finally:
            stopped.append(time.monotonic() - start)
    assert stopped[0] < 2.0
    assert done == ([0] if wait == "write" else [])  # the write in flight, finished and reported on the way out


def test_progress_is_drawn_only_on_a_terminal(monkeypatch, tmp_path):
    from cinn_cli.batch.report import RunReport
    from cinn_cli.batch.stream import progress_bar

    for tty in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda tty=tty: tty)
        with progress_bar("-", tmp_path, None, RunReport("colorize")) as bar:
            assert bar.disable is not tty


# --------------------------------------------------------------------------- cron safety


def test_json_lines_summary_and_exit_codes(weights, photos, tmp_path):
    out = tmp_path / "o"
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(1, 20, 20)).save(src / "good.png")
    (src / "bad.png").write_bytes(b"not a png")
    first = invoke("colorize", src, out, "-n", 2, "--seed", 1, "--weights", weights, "--json")
    assert first.exit_code == 1
    lines = [json.loads(line) for line in first.stdout.splitlines()]  # stdout holds JSON only
    assert [e["event"] for e in lines] == ["failed", "written", "written", "summary"]
    assert lines[-1]["written"] == 2 and lines[-1]["failed"] == 1
    assert f"{src / 'bad.png'}: is not an image this tool can read" in first.stderr  # path and reason
    (src / "bad.png").unlink()
    again = invoke("colorize", src, out, "-n", 2, "--seed", 1, "--weights", weights)
    assert again.exit_code == 0 and "0 written, 2 skipped" in again.stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_paths_that_look_like_markup_are_printed_verbatim(weights, tmp_path):
    (tmp_path / "in" / "x[").mkdir(parents=True)
    (tmp_path / "in" / "x[" / "red]y.png").write_bytes(b"x")  # the path holds "[/red]"
    (tmp_path / "in" / "[bold]z.png").write_bytes(b"x")
    out = tmp_path / "o[" / "b]"  # and the summary names OUT, which holds "[/b]"
    result = invoke("colorize", tmp_path / "in", out, "--weights", weights)
    assert result.exit_code == 1 and "Traceback" not in result.output and f"out {out}" in result.stderr
    assert f"{tmp_path / 'in' / '[bold]z.png'}: is not an image" in result.stderr
    assert f"{tmp_path / 'in' / 'x[' / 'red]y.png'}: is not an image" in result.stderr


def test_a_file_name_that_is_not_utf8_is_colorized_encoded_and_decoded(weights, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes, as an old disk or archive may hold
    try:
        Image.fromarray(photo(4, 12, 12)).save(tmp_path / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    result = invoke("colorize", tmp_path / name, tmp_path / "o", "-n", 1, "--seed", 2, "--weights", weights)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "o" / os.fsdecode(b"caf\xe9-1.png")) as im:
        assert im.text["cinn:source"] == "caf\\xe9.png"
    (tmp_path / "3").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "3" / name)
    encoded = invoke("encode", tmp_path / "3", tmp_path / "z", "--model", tiny_mnist_file(tmp_path / "m", 0))
    assert encoded.exit_code == 0, encoded.output
    assert load_latent(tmp_path / "z" / os.fsdecode(b"caf\xe9.safetensors")).extra["source"] == "caf\\xe9.png"
    decoded = invoke("sample", "--from-latent", tmp_path / "z", "--weights", tmp_path / "m", "-o", tmp_path / "d")
    assert decoded.exit_code == 0, decoded.output
    with Image.open(tmp_path / "d" / os.fsdecode(b"caf\xe9.png")) as im:
        assert im.text["cinn:latent"] == "caf\\xe9.safetensors"


def test_an_output_that_cannot_be_written_fails_alone(weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(3, 20, 20)).save(src / "a.png")
    (tmp_path / "o" / "a-1.png").mkdir(parents=True)  # a folder where the output should go
    result = invoke("colorize", src, tmp_path / "o", "-n", 2, "--seed", 1, "--weights", weights, "--overwrite")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "a.png: cannot write" in result.stderr and "a-1.png" in result.stderr
    assert (tmp_path / "o" / "a-2.png").is_file()
    file = tmp_path / "file"
    file.write_text("x")
    blocked = invoke("colorize", src, file / "out", "--weights", weights)  # OUT under a file
    assert blocked.exit_code == 1 and "cannot create the output folder" in blocked.output
    assert "Traceback" not in blocked.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads and writes despite permissions")
def test_unreadable_input_and_read_only_output(weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(3, 20, 20)).save(src / "a.png")
    Image.fromarray(photo(4, 20, 20)).save(src / "locked.png")
    (src / "locked.png").chmod(0)
    result = invoke("colorize", src, tmp_path / "o", "-n", 1, "--weights", weights)
    assert result.exit_code == 1 and "locked.png: cannot be read (permission denied)" in result.stderr
    assert (tmp_path / "o" / "a-1.png").is_file()
    (tmp_path / "ro").mkdir(mode=0o555)
    blocked = invoke("colorize", src / "a.png", tmp_path / "ro", "--weights", weights)
    assert blocked.exit_code == 1 and "the output folder is not writable" in blocked.output


def test_permission_denied_becomes_a_reason_even_as_root(tmp_path, monkeypatch):
    """The mapping the chmod test checks, testable where root can read anything."""
    from cinn_cli.batch import photos

    (tmp_path / "a.png").write_bytes(b"x")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(photos.Image, "open", denied)
    with pytest.raises(photos.PhotoError, match=r"^cannot be read \(permission denied\)$"):
        photos.read_gray(tmp_path / "a.png")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_leaves_whole_files_and_a_rerun_completes(weights, tmp_path, sig):
    """Kill a real process mid-run: every output under its real name decodes; SIGTERM also
    leaves no temporary file; the rerun writes exactly what an uninterrupted run writes."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(150):
        Image.fromarray(photo(i, 32, 32)).save(src / f"{i:03}.png")
    args = ("colorize", src, tmp_path / "o", "-n", 2, "--seed", 3, "--weights", weights, "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "o").glob("*.png"))) < 20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(sig)
    stderr = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    outputs = list((tmp_path / "o").glob("*.png"))
    assert 20 <= len(outputs) < 300
    for p in outputs:
        with Image.open(p) as im:
            im.load()  # a half-written PNG would raise here
    leftovers = [p.name for p in (tmp_path / "o").iterdir() if p.name.startswith(".cinn-tmp-")]
    if sig == signal.SIGTERM:  # ends like Ctrl-C: the summary so far, and 128 + 15
        assert not leftovers and "Traceback" not in stderr and proc.returncode == 143, stderr
        assert "aborted by SIGTERM" in stderr and "written" in stderr
    rerun = invoke(*args)
    assert rerun.exit_code == 0, rerun.output
    clean = invoke(*args[:2], tmp_path / "ref", *args[3:])
    assert clean.exit_code == 0
    assert tree(tmp_path / "o") == tree(tmp_path / "ref")  # the rerun also removed stale temp files


# --------------------------------------------------------------------------- bad inputs


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` (8-bit gray) and holds no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


FAILS = {  # name -> (bytes, the reason printed for it)
    "empty.png": (lambda: b"", "is empty (0 bytes)"),
    "cut-short.png": (lambda: encoded(Image.fromarray(photo(0, 40, 40)), "PNG")[:300], "cannot be decoded"),
    "truncated.jpg": (lambda: encoded(Image.fromarray(photo(0, 40, 40)), "JPEG")[:400], "cannot be decoded"),
    "text.jpg": (lambda: b"this is a shopping list, not a photo\n", "is not an image this tool can read"),
    "bomb.png": (lambda: png_header_only(100_000, 100_000), "decompression bomb"),
    "bomb-warning-size.png": (lambda: png_header_only(10_000, 10_000), "above the limit of 89,478,485"),
    "strip.png": (lambda: encoded(Image.new("L", (66, 2), 50), "PNG"), "is 66x2: an aspect ratio above 32:1"),
}


def succeeds() -> dict[str, tuple[bytes, tuple[int, int], str]]:
    """name -> (bytes, expected output size (w, h), expected output mode)."""
    gradient16 = Image.fromarray((np.linspace(0, 65535, 24 * 16).reshape(16, 24)).astype(np.uint16))
    rgba = np.concatenate([photo(5, 14, 12), np.tile(np.arange(12, dtype=np.uint8)[None, :, None] * 20, (14, 1, 1))], 2)
    palette = Image.fromarray(photo(6, 12, 12)).quantize(8)
    exif = Image.fromarray(photo(7, 20, 30)).getexif()
    exif[0x0112] = 6  # stored 30x20, shown rotated 90 degrees clockwise: 20x30 upright
    return {
        "one pixel.png": (encoded(Image.new("L", (1, 1), 90), "PNG"), (1, 1), "RGB"),
        "cmyk.jpg": (encoded(Image.fromarray(photo(8, 16, 20)).convert("CMYK"), "JPEG"), (20, 16), "RGB"),
        "gray16.png": (encoded(gradient16, "PNG"), (24, 16), "RGB"),
        "gray16 tiff.tif": (encoded(gradient16, "TIFF"), (24, 16), "RGB"),
        "rgba.png": (encoded(Image.fromarray(rgba), "PNG"), (12, 14), "RGBA"),
        "gray-alpha.png": (encoded(Image.fromarray(photo(5, 14, 12)).convert("LA"), "PNG"), (12, 14), "RGBA"),
        "palette.png": (encoded(palette, "PNG"), (12, 12), "RGB"),
        "palette-transparent.png": (encoded(palette, "PNG", transparency=0), (12, 12), "RGBA"),
        "exif-rotated.jpg": (encoded(Image.fromarray(photo(7, 20, 30)), "JPEG", exif=exif), (20, 30), "RGB"),
        "ünïcödé name with spaces.png": (encoded(Image.fromarray(photo(9, 10, 14)), "PNG"), (14, 10), "RGB"),
    }


# pytest resets warning filters per test; the CLI itself silences this warning (cinn_cli/photos.py)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_inputs_fail_with_a_reason_and_odd_valid_ones_are_written(weights, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, (data, _) in FAILS.items():
        (src / name).write_bytes(data())
    good = succeeds()
    for name, (data, _, _) in good.items():
        (src / name).write_bytes(data)
    (src / "notes.txt").write_text("not an image suffix: not an input")
    result = invoke("colorize", src, out, "-n", 1, "--seed", 0, "--weights", weights, "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == set(FAILS), reasons
    for name, (_, reason) in FAILS.items():
        assert reason in reasons[name] and "\n" not in reasons[name]
        assert f"{src / name}: {reasons[name]}" in result.stderr
    assert summary["written"] == len(good)
    for name, (_, size, mode) in good.items():
        with Image.open(out / f"{Path(name).stem}-1.png") as im:
            assert (im.size, im.mode) == (size, mode), name
    with Image.open(out / "rgba-1.png") as im:  # alpha carried through, pixel for pixel
        assert np.array_equal(np.asarray(im)[..., 3], np.tile(np.arange(12, dtype=np.uint8) * 20, (14, 1)))
    with Image.open(out / "gray16-1.png") as im:  # 16-bit lightness kept: a smooth ramp, not clipped
        gray = np.asarray(im.convert("L"), float)
    assert gray[0].mean() < 20 and gray[-1].mean() > 235
    with Image.open(src / "exif-rotated.jpg") as stored, Image.open(out / "exif-rotated-1.png") as im:
        upright = np.asarray(stored.convert("L").transpose(Image.Transpose.ROTATE_270), float)
        assert np.abs(np.asarray(im.convert("L"), float) - upright).mean() < 4  # the content is upright too


def test_unsupported_formats_named_on_stdin_fail_with_a_reason(weights, tmp_path):
    (tmp_path / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "clip.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(40))
    Image.fromarray(photo(2, 12, 12)).save(tmp_path / "ok.png")
    paths = "".join(f"{tmp_path / n}\n" for n in ("drawing.svg", "clip.heic", "ok.png", "missing.png"))
    result = invoke("colorize", "-", tmp_path / "o", "-n", 1, "--weights", weights, input=paths)
    assert result.exit_code == 1
    for name, reason in (
        ("drawing.svg", "is not an image this tool can read"),
        ("clip.heic", "is not an image this tool can read"),
        ("missing.png", "no such file"),
    ):
        assert f"{tmp_path / name}: {reason}" in result.stderr
    assert (tmp_path / "o" / "ok-1.png").is_file()


# --------------------------------------------------------------------------- provenance


def test_png_outputs_carry_their_provenance(weights, photos, tmp_path):
    assert invoke("colorize", photos, tmp_path, "-n", 2, "--seed", 11, "-t", 0.7, "--weights", weights).exit_code == 0
    with Image.open(tmp_path / "set1" / "p3-2.png") as im:
        text = dict(im.text)
    assert text == {
        "Software": f"cinn {package_version()}",
        "Comment": "Machine-generated by cinn (conditional invertible neural network); not a photograph.",
        "cinn:model_sha256": file_sha256(weights),
        "cinn:temperature": "0.7",
        "cinn:level_temperatures": "1,1",  # the tiny model's: every level at -t
        "cinn:source": "set1/p3.png",
        "cinn:index": "2",
        "cinn:seed": str(derive_seed(11, "set1/p3.png", 2)),
        "cinn:draw": "random",  # sample 1 would say "mode" (the best guess, z = 0)
    }
