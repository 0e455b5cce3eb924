"""Model files: ``.safetensors`` tensors plus JSON metadata, and the shipped-weight lookup.

Metadata keys (all strings, as safetensors requires):

    format          "cinn-model"
    format_version  "1"
    task            "mnist" (the model family; decides which config class rebuilds it)
    config          the model config as JSON
    training        JSON: command, data, steps, time (free-form, shown by ``cinn info``)
    metrics         JSON: e.g. {"test_bits_per_dim": 1.08}
    cinn_version    the package version that wrote the file

Loading checks each of these and says in one sentence what is wrong.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cinn_cli.files.atomic import NotReadable, atomic_write_bytes, open_regular

MODEL_FORMAT = "cinn-model"
MODEL_FORMAT_VERSION = "1"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is one sentence for the user."""


@dataclass
class ModelInfo:
    """What a model file says about itself (besides its tensors)."""

    path: Path
    task: str
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cinn_version: str = ""
    sha256: str = ""


@functools.cache  # read from the installed metadata once: every output's provenance text asks
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cinn")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its metadata keys sorted.

    safetensors serializes the metadata from a hash map, so the same tensors and metadata give
    different bytes from one call to the next; sorting makes equal contents equal files (what
    ``--seed`` promises for latents, and what lets two model files be compared by their bytes or
    SHA-256). Tensor entries and data are unchanged; the header is re-padded with
    spaces to a multiple of 8 bytes, as the format asks.
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


def shipped_weights(name: str) -> Path:
    """Path of a model shipped in the package (``weights/<name>.safetensors`` in the repository).

    Found through ``importlib.resources``, so a non-editable install works too.
    """
    return Path(str(resources.files("cinn_cli.weights") / f"{name}.safetensors"))


def save_model(
    model,
    path: str | os.PathLike,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
) -> None:
    """Write ``model`` (a core model with ``.config``) atomically as a model file.

    ``half=True`` stores floating-point tensors as float16 (loading returns float32).
    """
    from safetensors.torch import save

    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if half and t.is_floating_point():
            t = t.half()
        tensors[name] = t.contiguous()
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "task": model.config.task,
        "config": json.dumps(model.config.to_dict()),
        "training": json.dumps(training or {}),
        "metrics": json.dumps(metrics or {}),
        "cinn_version": package_version(),
    }
    atomic_write_bytes(path, canonical_safetensors(save(tensors, metadata=metadata)))


def record_evaluation(result: dict[str, Any]) -> None:
    """Store an evaluation ``result`` (``cinn eval ... --record``) in the metadata of the model file
    it names (``result["weights"]``), without the file's own path and SHA-256."""
    record_metrics(result["weights"], {k: v for k, v in result.items() if k not in ("weights", "model_sha256")})


def record_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> None:
    """Merge ``metrics`` into a model file's metadata (rewritten atomically; tensors unchanged).

    The file's SHA-256 changes, so do this before making latents with it.
    """
    from safetensors import safe_open
    from safetensors.torch import save

    read_model_info(path)  # refuse anything that is not a model file
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["metrics"] = json.dumps({**json.loads(metadata.get("metrics", "{}")), **metrics})
    atomic_write_bytes(path, canonical_safetensors(save(tensors, metadata=metadata)))


# dtypes a cinn file may hold, with their size in bytes; anything else (int8 weights, strings) is refused
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "BOOL": 1}
MAX_HEADER_BYTES = 100_000_000


def _open_model_file(path: Path):
    try:
        return open_regular(path, "a .safetensors file")
    except NotReadable as e:
        raise ModelFileError(f"{path}: {e}") from None


def _check_header(path: Path, header: Any, data_size: int) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Validate a parsed safetensors header field by field; one ``ModelFileError`` sentence per fault.

    safetensors and torch would otherwise fail with messages that name no file (or a traceback).
    """

    def bad(why: str) -> ModelFileError:
        return ModelFileError(f"{path}: not a valid safetensors file ({why})")

    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad("__metadata__ is not an object")
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise bad(f"metadata value {k!r} is not a string")
    spans = []
    tensors = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise bad(f"tensor {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise ModelFileError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has no valid shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise bad(f"tensor {name!r} has no valid data offsets")
        if not 0 <= offsets[0] <= offsets[1]:
            raise bad(f"tensor {name!r} has data offsets out of order")
        if offsets[1] > data_size:
            raise ModelFileError(f"{path}: the file is truncated (tensor {name!r} ends past the end)")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise bad(f"tensor {name!r} has a shape that does not match its data size")
        spans.append((offsets[0], offsets[1]))
        tensors[name] = {"dtype": dtype, "shape": shape}
    pos = 0
    for begin, stop in sorted(spans):
        if begin != pos:  # a gap or an overlap: the data area must be the tensors, back to back
            raise bad("tensor data overlaps or leaves gaps")
        pos = stop
    if pos != data_size:
        raise bad(f"{data_size - pos} bytes after the last tensor")
    return metadata, tensors


def read_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Read and strictly check a safetensors file's header without loading tensors.

    Returns ``(metadata, tensors)`` where ``tensors`` maps names to ``{"dtype", "shape"}``.
    Raises ``ModelFileError`` (one sentence naming the file) for a missing, special, unreadable,
    non-safetensors, malformed or truncated file.
    """
    path = Path(path)
    with _open_model_file(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{path}: not a safetensors file (too short)")
            n = int.from_bytes(head, "little")
            if n <= 1 or n > min(size - 8, MAX_HEADER_BYTES):
                raise ModelFileError(f"{path}: not a safetensors file (bad header length)")
            header = json.loads(f.read(n))
        except OSError as e:
            raise ModelFileError(f"{path}: cannot be read ({e.strerror})") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelFileError(f"{path}: not a safetensors file (header is not JSON)") from None
        except RecursionError:
            raise ModelFileError(f"{path}: not a safetensors file (header JSON nested too deeply)") from None
    return _check_header(path, header, size - 8 - n)


def read_tensors(path: str | os.PathLike) -> dict[str, Any]:
    """The tensors of a file ``read_header`` accepted; non-finite floats are refused by name."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    with _open_model_file(path) as f:
        data = f.read()  # not load_file: it refuses paths that are not UTF-8
    try:
        tensors = load(data)
    except SafetensorError as e:
        raise ModelFileError(f"{path}: the tensors cannot be read ({e})") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return tensors


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Check a model file's metadata and return it (tensors are not loaded)."""
    metadata, _ = read_header(path)
    fmt = metadata.get("format")
    if fmt != MODEL_FORMAT:
        what = f"a {fmt!r} file" if fmt else "a safetensors file without cinn metadata"
        raise ModelFileError(f"{path}: not a cinn model file ({what})")
    if metadata.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {metadata.get('format_version')!r} is not supported "
            f"by this cinn (it reads version {MODEL_FORMAT_VERSION})"
        )
    try:
        config = json.loads(metadata["config"])
        training = json.loads(metadata.get("training", "{}"))
        metrics = json.loads(metadata.get("metrics", "{}"))
    except (KeyError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: the model config in the metadata is missing or not JSON") from None
    return ModelInfo(
        path=Path(path),
        task=metadata.get("task", ""),
        config=config,
        training=training,
        metrics=metrics,
        cinn_version=metadata.get("cinn_version", ""),
    )


# Bounds on a stored config, far above any real model's, checked before anything is built: the
# issue's hostile files asked for work_size 100000 (15 GB), blocks 3000 (a minute), hidden 10^6 (36 TB).
CONFIG_BOUNDS = {
    "blocks": (1, 64),
    "hidden": (1, 4096),
    "cond_channels": (0, 4096),
    "cond_widths": (1, 4096),
    "global_dim": (1, 4096),
    "subnet_depth": (1, 16),
    "mid_kernel": (1, 7),
    "ab_downscale": (1, 8),
    "crop_size": (8, 4096),
    "work_size": (8, 4096),
    "n_classes": (1, 1000),
    "image_shape": (1, 64),
}
MAX_LEVELS = 8
MAX_PARAMETERS = 200_000_000


def check_config(path: str | os.PathLike, config: Any) -> None:
    """Refuse a stored config with values out of range, in one sentence (before building)."""
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: the stored config is not a JSON object")
    for key, (low, high) in CONFIG_BOUNDS.items():
        if key not in config:
            continue
        value = config[key]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > MAX_LEVELS:
            raise ModelFileError(f"{path}: the stored config's {key} has {len(value)} levels (at most {MAX_LEVELS})")
        if not all(type(v) is int and low <= v <= high for v in values):
            raise ModelFileError(f"{path}: the stored config's {key} {value!r} is out of range ({low} to {high})")
    for key, value in config.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ModelFileError(f"{path}: the stored config's {key} is not finite")
