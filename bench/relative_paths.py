"""One-off: replace the build machine's absolute paths in model files' metadata by relative ones.

The shipped files' training records (and recorded evaluations' classifier) named paths such as
``/work/runs/s11/ft/log.jsonl`` and ``/work/shared/data/mnist`` (the build machine's layout,
meaningless elsewhere). Each such path
becomes relative to the repository checkout the models were built in (``/work/main``):
``../runs/s11/ft/log.jsonl``, ``../shared/data/mnist``; other absolute paths become ``<path>``.
The header is rewritten (metadata keys sorted, re-padded); the tensor bytes are copied unchanged
and checked to be identical. The file's SHA-256 changes.

    python bench/relative_paths.py weights/*.safetensors
"""

from __future__ import annotations

import json
import os
import re
import sys

BUILD_ROOT = "/work/main"
# an absolute path inside a JSON string: a slash not preceded by a word character, dot or slash
ABSOLUTE = re.compile(r"(?<![\w./~-])/(?:[\w.@+-]+/)*[\w.@+-]+")


def relative(match: re.Match) -> str:
    path = match.group(0)
    if path.startswith("/work/"):
        return os.path.relpath(path, BUILD_ROOT)
    return "<path>"


def rewrite(path: str) -> None:
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    header["__metadata__"] = {
        k: ABSOLUTE.sub(relative, v) if k in ("training", "metrics") else v for k, v in sorted(meta.items())
    }
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    out = len(text).to_bytes(8, "little") + text + raw[8 + n :]
    assert out[8 + len(text) :] == raw[8 + n :]  # the tensors' bytes, unchanged
    with open(path + ".tmp", "wb") as f:
        f.write(out)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        rewrite(p)
