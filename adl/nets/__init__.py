"""Network architectures. Each lives in its own module; these re-exports are the public names."""

from adl.nets.discriminator import Discriminator
from adl.nets.downsampler import Downsampler

__all__ = ["Discriminator", "Downsampler"]
