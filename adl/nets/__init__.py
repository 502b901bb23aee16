"""Network architectures. Each lives in its own module; these re-exports are the public names."""

from adl.nets.discriminator import Discriminator
from adl.nets.downsampler import Downsampler
from adl.nets.edsr import EDSR
from adl.nets.rrdb import RRDBNet
from adl.nets.rrdb import RRDBNet as RRDB  # the name issue 3 uses
from adl.nets.vgg import VGG19Features, load_vgg19_features

__all__ = ["Discriminator", "Downsampler", "EDSR", "RRDB", "RRDBNet", "VGG19Features", "load_vgg19_features"]
