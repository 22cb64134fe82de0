"""Deterministic pixel phantoms: cheap, plausible-looking and never patient data.

Images need real pixel data so archives compress, viewers window and checksums differ
per instance, but generating it must stay fast enough for load tests (512x512x16-bit
in a few milliseconds). Shapes are ellipses over a cached coordinate grid; each
instance varies with its position in the series and gets seeded noise.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulators.world.seeding import derived_int


@lru_cache(maxsize=16)
def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates in [-1, 1] (y down, x right); cached per image size."""
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, cols, dtype=np.float32)[None, :]
    return y, x


def _ellipse(rows: int, cols: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = _grid(rows, cols)
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _noise(rows: int, cols: int, seed: int, key: tuple[object, ...], scale: float) -> np.ndarray:
    rng = np.random.default_rng(derived_int(seed, "pixels", *key) % 2**63)
    return rng.standard_normal((rows, cols), dtype=np.float32) * scale


def cross_section(rows: int, cols: int, position: float, seed: int,
                  key: tuple[object, ...]) -> np.ndarray:
    """An axial body section in Hounsfield-like units (-1000 air .. ~1000 bone).

    ``position`` in [0, 1] moves through the volume so consecutive slices differ.
    """
    wobble = 0.05 * np.sin(position * np.pi)
    image = np.full((rows, cols), -1000.0, dtype=np.float32)
    image[_ellipse(rows, cols, 0.0, 0.0, 0.62 + wobble, 0.85)] = 40.0       # soft tissue
    for side in (-1.0, 1.0):                                               # lungs
        image[_ellipse(rows, cols, -0.05, side * 0.38, 0.42 - wobble, 0.26)] = -820.0
    image[_ellipse(rows, cols, 0.42, 0.0, 0.12, 0.10)] = 700.0              # vertebra
    image[_ellipse(rows, cols, -0.05, 0.08, 0.16 + wobble, 0.14)] = 55.0    # heart
    return image + _noise(rows, cols, seed, key, 8.0)


def projection(rows: int, cols: int, position: float, seed: int,
               key: tuple[object, ...]) -> np.ndarray:
    """A radiograph-like attenuation map in [0, 1] (1 = most attenuating)."""
    y, x = _grid(rows, cols)
    image = np.full((rows, cols), 0.05, dtype=np.float32)
    body = _ellipse(rows, cols, 0.05, 0.0, 0.95, 0.75 + 0.05 * position)
    image[body] = 0.45
    for side in (-1.0, 1.0):
        image[_ellipse(rows, cols, -0.05, side * 0.33, 0.6, 0.25)] = 0.2
    image[(np.abs(x) < 0.06) & body] = 0.85                                # spine
    ribs = (np.sin((y + 1.0) * 18.0) > 0.85) & body
    image[ribs] = np.maximum(image[ribs], 0.6)
    return np.clip(image + _noise(rows, cols, seed, key, 0.01), 0.0, 1.0)


def breast(rows: int, cols: int, position: float, seed: int, key: tuple[object, ...],
           right: bool) -> np.ndarray:
    """A mammogram-like map in [0, 1]: a half ellipse against the chest wall."""
    y, x = _grid(rows, cols)
    wall = 1.0 if right else -1.0   # chest wall on the image edge facing the patient
    image = np.full((rows, cols), 0.02, dtype=np.float32)
    tissue = ((y / (0.85 - 0.05 * position)) ** 2 + ((x - wall) / 1.4) ** 2) <= 1.0
    image[tissue] = 0.5
    image[_ellipse(rows, cols, 0.1, wall * 0.55, 0.18, 0.12) & tissue] = 0.75
    return np.clip(image + _noise(rows, cols, seed, key, 0.02), 0.0, 1.0)


def sector(rows: int, cols: int, position: float, seed: int,
           key: tuple[object, ...]) -> np.ndarray:
    """An ultrasound fan with speckle, values in [0, 1]."""
    y, x = _grid(rows, cols)
    depth = y + 1.0
    fan = (np.abs(x) <= depth * 0.55) & (depth <= 1.9) & (depth > 0.05)
    speckle = np.abs(_noise(rows, cols, seed, key, 0.35)) + 0.15
    image = np.where(fan, speckle, 0.0).astype(np.float32)
    organ = _ellipse(rows, cols, 0.2 + 0.1 * position, -0.1, 0.35, 0.3) & fan
    image[organ] *= 0.45
    return np.clip(image, 0.0, 1.0)


def to_unsigned(values: np.ndarray, low: float, high: float, bits: int) -> np.ndarray:
    """Map ``[low, high]`` linearly onto ``0 .. 2**bits - 1`` as uint16 (or uint8)."""
    top = 2**bits - 1
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * top
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.rint(scaled).astype(dtype)


__all__ = ["cross_section", "projection", "breast", "sector", "to_unsigned"]
