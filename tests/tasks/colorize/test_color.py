"""RGB <-> Lab in torch against skimage, and the edge-aware upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from cinn_cli.tasks.colorize.color import (
    LabColourer,
    gray_to_lightness,
    guided_upsample,
    lab_to_rgb,
    resize,
    rgb_to_lab,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def random_rgb(seed: int = 0, shape=(2, 3, 17, 13)) -> torch.Tensor:
    """float64 RGB in [0, 1] including exact 0, 1 and values near the sRGB knee (0.04045)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x[0, :, 0, :4] = torch.tensor([0.0, 1.0, 0.04045, 0.0404])[:, None].T.expand(3, 4)
    return x


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.movedim(-3, -1).numpy()


def test_rgb_to_lab_matches_skimage():
    rgb = random_rgb()
    ours = rgb_to_lab(rgb)
    ref = skcolor.rgb2lab(to_hwc(rgb))
    assert np.abs(to_hwc(ours) - ref).max() < 1e-4


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    g = torch.Generator().manual_seed(1)
    lab = torch.stack(
        [
            100 * torch.rand(2, 9, 11, generator=g, dtype=torch.float64),
            (torch.rand(2, 9, 11, generator=g, dtype=torch.float64) - 0.5) * 200,  # many out of gamut
            (torch.rand(2, 9, 11, generator=g, dtype=torch.float64) - 0.5) * 200,
        ],
        dim=1,
    )
    ours = lab_to_rgb(lab)
    with pytest.warns(UserWarning):  # skimage warns about the negative Z it clips; we clip silently
        ref = skcolor.lab2rgb(to_hwc(lab))
    assert np.abs(to_hwc(ours) - ref).max() < 1e-4
    assert np.abs(to_hwc(lab_to_rgb(lab.float())).astype(np.float64) - ref).max() < 1e-4


def test_round_trip_and_float32_and_unbatched():
    rgb = random_rgb(2)
    # 3e-8 at the sRGB knee: the standard's thresholds (0.04045 / 0.0031308) meet only to 7 digits
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-6
    single = rgb[0].float()  # (3, H, W), float32
    ref = skcolor.rgb2lab(to_hwc(rgb[0]))
    assert np.abs(to_hwc(rgb_to_lab(single)).astype(np.float64) - ref).max() < 1e-3


def test_channel_dim_argument():
    rgb = random_rgb(3)
    last = rgb_to_lab(rgb.movedim(1, -1), dim=-1)
    assert torch.allclose(last.movedim(-1, 1), rgb_to_lab(rgb), atol=1e-12)


def test_gray_lightness_is_lab_l_of_the_gray_image():
    gray = torch.linspace(0, 1, 256, dtype=torch.float64).reshape(1, 1, 16, 16)
    lab = rgb_to_lab(gray.expand(1, 3, 16, 16))
    assert (gray_to_lightness(gray)[:, 0] - lab[:, 0]).abs().max() < 1e-9
    assert lab[:, 1:].abs().max() < 0.02  # the sRGB white is D65 to 4 digits: a, b of grays ~ 0


def test_lab_colourer_is_guided_upsample_then_lab_to_rgb():
    """The per-photo colourer (what depends on L computed once) gives what the two functions
    give, for several ab under one L, in float64 and in float32."""
    g = torch.Generator().manual_seed(4)
    L = 100 * torch.rand(1, 1, 40, 56, generator=g, dtype=torch.float64)
    colour = LabColourer(L, (10, 14))
    for _ in range(3):
        ab = (torch.rand(1, 2, 10, 14, generator=g, dtype=torch.float64) - 0.5) * 160
        ref = lab_to_rgb(torch.cat([L, guided_upsample(ab, L / 100)], dim=1))
        out = colour(ab)
        assert out.shape == (1, 3, 40, 56) and (out - ref).abs().max() < 1e-12
    L32, ab32 = L.float(), ab.float()
    single = LabColourer(L32, (10, 14))(ab32)
    assert single.dtype == torch.float32
    assert (single - lab_to_rgb(torch.cat([L32, guided_upsample(ab32, L32 / 100)], dim=1))).abs().max() < 1e-6
    assert (single.double() - ref).abs().max() < 2e-4  # float32 rounding in the guided filter


def test_guided_upsample_keeps_colour_edges_sharp():
    """A colour step at low resolution, a lightness step at full resolution in the middle of a
    low-resolution pixel: the guided result follows the lightness edge; bilinear smears it."""
    H, W, s = 32, 32, 8
    edge = 13  # not a multiple of the scale factor
    guide = torch.zeros(1, 1, H, W, dtype=torch.float64)
    guide[..., edge:] = 1.0
    truth = torch.where(guide > 0.5, -40.0, 40.0).to(torch.float64)
    low = resize(truth, (H // s, W // s))
    guided = guided_upsample(low, guide, radius=1, eps=1e-4)
    bilinear = resize(low, (H, W))
    err_guided = (guided - truth).abs().max().item()
    err_bilinear = (bilinear - truth).abs().max().item()
    assert err_guided < 4.0 < 30.0 < err_bilinear
    assert guided.shape == (1, 1, H, W)


def test_guided_upsample_flat_guide_gives_smooth_colour_and_works_per_channel():
    low = torch.randn(2, 2, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = guided_upsample(low, torch.full((2, 1, 20, 28), 0.5, dtype=torch.float64))
    assert out.shape == (2, 2, 20, 28) and torch.isfinite(out).all()
    # with a constant guide the filter is a (twice) box-smoothed, bilinearly upsampled copy
    assert (out.mean() - low.mean()).abs() < 0.3


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_conversions_on_device_match_skimage(device):
    rgb = random_rgb(4).to(device)
    lab = rgb_to_lab(rgb)
    assert lab.device.type == device
    assert np.abs(to_hwc(lab.cpu()) - skcolor.rgb2lab(to_hwc(rgb.cpu()))).max() < 1e-4
    assert (lab_to_rgb(lab) - rgb).abs().max().item() < 1e-6
    out = guided_upsample(lab[:, 1:, ::2, ::2], lab[:, :1] / 100)
    assert out.shape == (2, 2, 17, 13) and out.device.type == device
