"""PNG encoding (pixels and text read back by PIL) and contact sheets."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cinn_cli.batch.images import grid, png_bytes


@pytest.mark.parametrize("shape, mode", [((28, 28), "L"), ((5, 7, 3), "RGB"), ((6, 1, 4), "RGBA"), ((1, 1), "L")])
@pytest.mark.parametrize("level", [1, 6])
def test_png_round_trips_pixels_and_text(shape, mode, level):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    text = {"Software": "cinn 1", "cinn:source": "fôtos/ünï 写真.png", "Comment": ""}
    data = png_bytes(pixels, text, level)
    Image.open(io.BytesIO(data)).verify()  # signature and every chunk's CRC
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode and im.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(im), pixels)
        assert im.text == text


def test_png_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate (an undecodable file name) is no text
        png_bytes(np.zeros((4, 4), np.uint8), {"cinn:source": "bad\udcff"})


def test_grid_tiles_row_major_with_padding():
    tiles = [np.full((2, 3), i, np.uint8) for i in range(5)]
    sheet = grid(tiles, columns=2, pad=1, background=9)
    assert sheet.shape == (3 * 3 + 1, 2 * 4 + 1)
    assert sheet[1, 1] == 0 and sheet[1, 5] == 1 and sheet[4, 1] == 2 and sheet[7, 1] == 4
    assert sheet[0, 0] == 9 and sheet[7, 5] == 9  # padding and the empty sixth cell
