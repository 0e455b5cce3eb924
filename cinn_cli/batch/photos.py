"""Photo decoding and encoding for colorization: EXIF orientation, odd modes, alpha, formats.

    rgb = read_rgb(path, max_short=256)      # (H, W, 3) uint8, training and evaluation photos
    gray, alpha = read_gray(path)            # (H, W) float32 in [0, 1], (H, W) uint8 or None
    data = encode_image(pixels, "png", text) # PNG (with text chunks), JPEG or WebP bytes

Colour inputs to ``cinn colorize`` are reduced to gray with PIL's ``convert('L')`` (ITU-R 601
luma, L = 0.299 R + 0.587 G + 0.114 B), as EVALUATION.md prescribes for whole-image evaluation;
the output keeps that gray's Lab lightness exactly.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cinn_cli.batch.images import png_bytes
from cinn_cli.files.atomic import NotReadable, open_regular

# PIL only warns about images between MAX_PIXELS and twice that (and raises above); _check_size
# refuses them all with a reason, so the warning would be noise on stderr. (A process-wide filter:
# catch_warnings() is not thread-safe, and images are decoded in worker threads.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Likewise PIL's notes on damaged metadata ("Corrupt EXIF data", odd TIFF tags) and numpy's
# RuntimeWarnings on odd pixel values: the image either decodes (the warning is noise beside our
# own lines) or fails with our own one-line reason; NaN pixels are refused by read_gray.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(PIL|numpy)\.")

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # PIL's default, 89.5 M: a 12,000 x 7,450 photo still fits
# The colorize model's working size keeps the aspect ratio at a fixed short side, so a 1x4000 strip
# would run it at 64x256000 (minutes, gigabytes). Every command refuses such inputs from the
# header, in the one reader (open_image). Panoramas (10:1) pass.
MAX_ASPECT = 32


class PhotoError(ValueError):
    """An input that cannot be used; the message is the reason (without the path)."""


def open_image(path: Path):
    """Open, fully decode and apply the EXIF orientation; raises ``PhotoError``.

    Images above ``MAX_PIXELS`` are refused from their header, before any pixel is decoded: a
    small file can declare a huge size (a decompression bomb) and would take gigabytes.
    """
    try:
        f = open_regular(path, "an image")
    except NotReadable as e:
        raise PhotoError(str(e)) from None
    try:
        with f:
            if os.fstat(f.fileno()).st_size == 0:
                raise PhotoError("is empty (0 bytes)")
            with Image.open(f) as im:
                _check_size(*im.size)
                im.load()
                return ImageOps.exif_transpose(im)
    except PhotoError:
        raise
    except PermissionError:
        raise PhotoError("cannot be read (permission denied)") from None
    except Image.DecompressionBombError:
        raise PhotoError(f"declares more than {MAX_PIXELS:,} pixels (a decompression bomb?); refused") from None
    except OSError as e:
        if isinstance(e, UnidentifiedImageError):
            raise PhotoError("is not an image this tool can read") from None
        if e.errno is not None:  # an I/O error of the file system, not of the data
            raise PhotoError(f"cannot be read ({e.strerror or e})") from None
        raise PhotoError(f"cannot be decoded ({e})") from None
    except Exception as e:  # truncated or corrupt data: PIL's decoders raise many types
        raise PhotoError(f"cannot be decoded ({getattr(e, 'strerror', None) or e})") from None


def _check_size(width: int, height: int) -> None:
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise PhotoError(f"is {width}x{height}: an aspect ratio above {MAX_ASPECT}:1 is not supported")
    if width * height > MAX_PIXELS:
        raise PhotoError(
            f"is {width}x{height} = {width * height:,} pixels, above the limit of {MAX_PIXELS:,} "
            "(a decompression bomb?); refused"
        )


def read_rgb(path: Path, max_short: int | None = None):
    """``(H, W, 3)`` uint8 RGB, downscaled (antialiased) so the short side is at most
    ``max_short``. Alpha is dropped (composited on nothing: training wants the photo's colours)."""
    im = open_image(path).convert("RGB")
    short = min(im.size)
    if max_short is not None and short > max_short:
        w, h = im.size
        im = im.resize((round(w * max_short / short), round(h * max_short / short)), Image.Resampling.LANCZOS)
    return np.asarray(im)


def read_gray(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``gray_of`` the image at ``path`` (opened and checked by ``open_image``)."""
    return gray_of(open_image(path))


def gray_of(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """``(gray (H, W) float32 in [0, 1], alpha (H, W) uint8 or None)`` of a decoded image.

    Value ranges by pixel mode (a mode carries no range of its own, so it is read from the data):
    ``I;16*`` is 0-65535; ``I`` (32-bit) is 0-255 when its maximum is at most 255 (what PIL's
    ``convert('I')`` of an 8-bit image gives), else 0-65535; ``F`` (float) is 0-1 when its
    maximum is at most 1.5, else 0-255. Values outside the range are clipped; a float image with
    NaN or infinite pixels is refused. Palette, RGB, CMYK etc. go through ``convert('L')``; an
    alpha channel (or palette transparency) is returned so the output can carry it.
    """
    alpha = None
    with np.errstate(all="ignore"):  # odd pixel values: refused or clipped below, not warned about
        try:
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                alpha = np.asarray(im.convert("RGBA"))[..., 3].copy()
            if im.mode.startswith("I;16"):
                gray = np.asarray(im, dtype=np.float32) / 65535.0
            elif im.mode in ("I", "F"):
                gray = np.asarray(im, dtype=np.float32)
                if not np.isfinite(gray).all():
                    raise PhotoError(f"has NaN or infinite pixel values (mode {im.mode}); refused")
                top = float(gray.max(initial=0.0))
                if im.mode == "I":
                    gray = gray / (255.0 if top <= 255 else 65535.0)
                elif top > 1.5:
                    gray = gray / 255.0
            else:
                gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except (ValueError, TypeError, OSError) as e:  # a mode PIL cannot convert
            if isinstance(e, PhotoError):
                raise
            raise PhotoError(f"has pixel mode {im.mode}, which cannot be converted to gray ({e})") from None
    return np.clip(gray, 0.0, 1.0), alpha


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(size, size, 3)``: short side resized to ``size``, then the centre."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = Image.fromarray(rgb).resize((nw, nh), Image.Resampling.LANCZOS)
    x, y = (nw - size) // 2, (nh - size) // 2
    return np.array(im.crop((x, y, x + size, y + size)))  # writable, for torch.from_numpy


def encode_image(pixels: np.ndarray, fmt: str, text: dict[str, str] | None = None) -> bytes:
    """``(H, W, 3|4)`` uint8 -> file bytes. PNG carries ``text`` as iTXt chunks; JPEG (quality 95,
    no alpha: it is dropped) and WebP (quality 95) carry none."""
    if fmt == "png":
        # zlib level 1: 3.5x faster than level 6 on a 1600x1000 colouring, 0.1 % more bytes
        return png_bytes(pixels, text, level=1)
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    if fmt == "jpg":
        im.convert("RGB").save(buf, format="JPEG", quality=95)
    elif fmt == "webp":
        im.save(buf, format="WEBP", quality=95)
    else:
        raise ValueError(f"unknown image format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return buf.getvalue()
