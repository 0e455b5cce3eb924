"""Which latent each colouring gets: output 1 is the best guess (z = 0), the others seeded draws."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cinn_cli.files.latents import draw_latent

BEST_GUESS_INDEX = 1  # colorize: sample 1 is the best guess, the latent's mode (z = 0), not a draw


def colorize_latent(shapes: list[tuple[int, ...]], seed: int, temperature: float | Sequence[float], index: int):
    """Colorize sample ``index``'s latent levels: for sample 1 (``BEST_GUESS_INDEX``) all zeros,
    the mode of the latent Gaussian (temperature 0), which the flow maps to the model's most
    probable colouring in latent space, so a user who takes only the first file gets the best
    guess; for the others ``draw_latent(shapes, seed, temperature)``, diverse draws as before."""
    if index == BEST_GUESS_INDEX:
        return [torch.zeros(shape) for shape in shapes]
    return draw_latent(shapes, seed, temperature)
