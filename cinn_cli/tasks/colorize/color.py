"""Colour space and edge-aware upsampling on torch tensors (CPU or GPU, any float dtype).

    lab = rgb_to_lab(rgb)          # (..., 3, H, W) sRGB in [0, 1] -> CIE Lab, L in [0, 100]
    rgb = lab_to_rgb(lab)          # the inverse, clipped to [0, 1]
    ab = guided_upsample(ab_low, L_full)   # colour at low resolution, edges from full-res L
    colour = LabColourer(L, ab_size)       # both for many ab under one L: rgb = colour(ab)

The Lab conversion is ``skimage.color.rgb2lab`` / ``lab2rgb`` (D65, 2-degree observer, the
sRGB matrix of the skimage source) written in torch, so training batches and full-size photos
are converted on the device without a NumPy round trip. Channels are on dimension ``dim``
(default ``-3``: ``(3, H, W)`` and ``(B, 3, H, W)`` alike).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.nn import functional as F

# skimage.color.colorconv.xyz_from_rgb (sRGB, D65) and the D65 / 2-degree reference white.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.95047, 1.0, 1.08883)


def _matrix(rows, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(like.device, like.dtype)


@functools.cache
def _rgb_from_xyz() -> list[list[float]]:
    """The inverse of ``_XYZ_FROM_RGB``, in float64 as skimage's ``linalg.inv`` computes it."""
    return torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)).tolist()


def _apply(x: Tensor, m: Tensor, dim: int) -> Tensor:
    """Multiply the 3-vectors on dimension ``dim`` by the ``(3, 3)`` matrix ``m``."""
    return (x.movedim(dim, -1) @ m.t()).movedim(-1, dim)


def _white(like: Tensor, dim: int) -> Tensor:
    shape = [1] * like.dim()
    shape[dim] = 3
    return torch.tensor(_WHITE, dtype=like.dtype, device=like.device).reshape(shape)


def rgb_to_lab(rgb: Tensor, dim: int = -3) -> Tensor:
    """sRGB in [0, 1] -> CIE Lab (L in [0, 100], a and b roughly in [-128, 127]); same shape."""
    # The clamps only keep pow() away from values the other branch of the where() takes.
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _apply(lin, _matrix(_XYZ_FROM_RGB, rgb), dim) / _white(rgb, dim)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim)


def lab_to_rgb(lab: Tensor, dim: int = -3) -> Tensor:
    """CIE Lab -> sRGB clipped to [0, 1]; same shape. As skimage, a negative Z is clipped to 0
    (skimage also warns; out-of-gamut colours are common in generated ab, so this does not)."""
    L, a, b = lab.unbind(dim)
    fy = (L + 16.0) / 116.0
    return _rgb_from_parts(fy, _f_inverse(fy) * _WHITE[1], a, b, dim)


def _rgb_from_parts(fy: Tensor, y: Tensor, a: Tensor, b: Tensor, dim: int) -> Tensor:
    """``lab_to_rgb`` from the lightness's ``fy = (L + 16) / 116`` and ``Y``, and ``a``, ``b``
    (all one shape; the channels are stacked on ``dim``)."""
    # Channel by channel with the matrix as scalars, in place on temporaries, gamma through
    # exp/log: 2.5x faster than the same maths out of place with pow at 1600x1000 on one thread
    # (it runs once per full-size colorize output).
    x = _f_inverse(torch.add(fy, a, alpha=1 / 500.0)).mul_(_WHITE[0])
    z = _f_inverse(torch.sub(fy, b, alpha=1 / 200.0).clamp_min_(0.0)).mul_(_WHITE[2])
    channels = [_srgb_gamma((x * r[0]).add_(y, alpha=r[1]).add_(z, alpha=r[2])) for r in _rgb_from_xyz()]
    return torch.stack(channels, dim)


def _f_inverse(f: Tensor) -> Tensor:
    """Inverse of the Lab companding function ``f``."""
    return torch.where(f > 0.2068966, (f * f).mul_(f), (f - 16.0 / 116.0).div_(7.787))


def _srgb_gamma(lin: Tensor) -> Tensor:
    """Linear RGB -> sRGB in [0, 1]."""
    lin = lin.clamp(0.0, 1.0)  # the curve is increasing and maps 0 to 0 and 1 to 1
    # x ** (1 / 2.4) as exp(log(x) / 2.4): 2x faster than pow on the CPU
    curve = lin.clamp_min(0.0031308).log_().mul_(1 / 2.4).exp_().mul_(1.055).sub_(0.055)
    return torch.where(lin > 0.0031308, curve, lin * 12.92).clamp_(0.0, 1.0)


class LabColourer:
    """Colour one lightness many times: ``L (B, 1, H, W)`` in [0, 100] at full resolution, and
    ``colour(ab)`` for ab ``(B, 2, h, w)`` at a lower resolution ``ab_size = (h, w)`` -> sRGB
    ``(B, 3, H, W)`` in [0, 1]: ab brought to full size by the guided filter steered by ``L / 100``
    (``guided_upsample``), then ``lab_to_rgb``. What depends on ``L`` alone is computed here, once.
    """

    def __init__(self, L: Tensor, ab_size: tuple[int, int]):
        self.upsample = GuidedUpsampler(L / 100.0, ab_size)
        self.fy = (L[:, 0] + 16.0) / 116.0
        self.y = _f_inverse(self.fy) * _WHITE[1]

    def __call__(self, ab: Tensor) -> Tensor:
        a, b = self.upsample(ab).unbind(1)
        return _rgb_from_parts(self.fy, self.y, a, b, dim=1)


def gray_to_lightness(gray: Tensor) -> Tensor:
    """Gray values in [0, 1] (any shape) -> Lab L of the neutral colour (g, g, g), in [0, 100].

    Equal to ``rgb_to_lab`` of the gray RGB image's L channel (its Y is the linearised gray, as
    the sRGB matrix's middle row sums to 1).
    """
    lin = torch.where(gray > 0.04045, ((gray.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, gray / 12.92)
    y = lin * sum(_XYZ_FROM_RGB[1])
    f = torch.where(y > 0.008856, y.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


# --------------------------------------------------------------------------- upsampling


def _box(x: Tensor, r: int) -> Tensor:
    """Mean over the ``(2r+1)^2`` window, shrunk at the borders (no zero padding bias)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, C, H, W) -> (B, C, *size)``: bilinear, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def guided_upsample(src: Tensor, guide: Tensor, radius: int = 1, eps: float = 1e-3) -> Tensor:
    """Edge-aware upsampling (the fast guided filter, He and Sun 2015).

    ``src (B, C, h, w)`` (e.g. ab at the model's working resolution) and ``guide (B, 1, H, W)``
    (the full-resolution lightness, scaled to about [0, 1]) -> ``(B, C, H, W)``.

    At low resolution each output is fitted locally as ``A * guide + b`` (a ridge regression
    over a ``(2 radius + 1)^2`` window, regularised by ``eps`` in guide units squared); the smooth
    coefficients ``A`` and ``b`` are upsampled bilinearly and applied to the *full-resolution*
    guide. So a colour edge follows the lightness edge at full resolution instead of being
    smeared over one low-resolution pixel, and flat regions get the local mean colour.
    """
    return GuidedUpsampler(guide, tuple(src.shape[-2:]), radius, eps)(src)


class GuidedUpsampler:
    """``guided_upsample`` for many sources under one guide: the guide's statistics at the low
    resolution ``low_size`` are computed once. ``upsampler(src (B, C, *low_size)) -> (B, C, H, W)``."""

    def __init__(self, guide: Tensor, low_size: tuple[int, int], radius: int = 1, eps: float = 1e-3):
        self.guide, self.radius, self.eps = guide, radius, eps
        self.low = resize(guide, low_size)
        self.mean_i = _box(self.low, radius)
        self.var_i = _box(self.low * self.low, radius) - self.mean_i * self.mean_i

    def __call__(self, src: Tensor) -> Tensor:
        r = self.radius
        mean_p = _box(src, r)
        cov_ip = _box(self.low * src, r) - self.mean_i * mean_p
        a = cov_ip / (self.var_i + self.eps)
        b = mean_p - a * self.mean_i
        size = tuple(self.guide.shape[-2:])
        return torch.addcmul(resize(_box(b, r), size), resize(_box(a, r), size), self.guide)


def lab_pair(rgb: Tensor, ab_downscale: int = 1) -> tuple[Tensor, Tensor]:
    """uint8 or [0, 1] float ``(B, 3, H, W)`` RGB -> ``(ab (B, 2, H/s, W/s), L (B, 1, H, W))`` in Lab
    units, ab area-averaged by ``s = ab_downscale`` (the model's working resolution for colour)."""
    if rgb.dtype == torch.uint8:
        rgb = rgb.float() / 255.0
    lab = rgb_to_lab(rgb)
    ab = lab[:, 1:]
    if ab_downscale > 1:
        ab = F.avg_pool2d(ab, ab_downscale)
    return ab, lab[:, :1]
