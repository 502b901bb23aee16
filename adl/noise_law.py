"""Signal-dependent (Poisson–Gaussian) noise of a known law: variance = a·I + b, I the clean
intensity, variance and I both in 8-bit levels. Used twice: by ``adl degrade --noise`` to make the
noisy LR sets of a synthetic protocol (docs/noise.md), and by a fitted noise model's ``fit`` mode
(adl.data.noise_model), so that the truth and the fitted model draw noise the same way.

A law is written ``gaussian:SIGMA`` (a = 0, b = SIGMA²; σ = 5/255 is ``gaussian:5``) or
``poisson-gaussian:A,B``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adl.errors import AdlError

DEGRADE_NOISE_STREAM = 7  # keeps `adl degrade --noise` draws apart from every other seeded stream
LAW_FORMS = "gaussian:SIGMA or poisson-gaussian:A,B (8-bit levels, variance = A·I + B)"


def signal_dependent_noise(clean: np.ndarray, a, b, rng: np.random.Generator) -> np.ndarray:
    """Noise for an HxWxC float image ``clean`` (8-bit levels), float32; ``a``, ``b`` scalars or per channel."""
    variance = np.asarray(a) * np.clip(clean, 0, 255) + np.asarray(b)
    return (np.sqrt(np.maximum(variance, 0)) * rng.standard_normal(clean.shape)).astype(np.float32)


@dataclass(frozen=True)
class NoiseLaw:
    a: float
    b: float
    spec: str

    @classmethod
    def parse(cls, spec: str, option: str = "--noise") -> "NoiseLaw":
        kind, _, values = spec.partition(":")
        try:
            numbers = [float(v) for v in values.split(",")] if values else []
        except ValueError:
            numbers = []
        if kind == "gaussian" and len(numbers) == 1 and numbers[0] >= 0:
            return cls(0.0, numbers[0] ** 2, spec)
        if kind == "poisson-gaussian" and len(numbers) == 2 and min(numbers) >= 0:
            return cls(numbers[0], numbers[1], spec)
        raise AdlError(f"{option} {spec}: not a noise law; write {LAW_FORMS}, with non-negative numbers")

    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return signal_dependent_noise(clean, self.a, self.b, rng)

    def sigma(self, clean: np.ndarray) -> float:
        """The law's noise level over an image: √mean(a·I + b)."""
        return float(np.sqrt(np.mean(self.a * np.clip(clean, 0, 255) + self.b)))


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` (sorted order) of a folder degraded with noise."""
    return np.random.default_rng([seed, DEGRADE_NOISE_STREAM, index])
