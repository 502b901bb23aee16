"""adl: adaptive downsampling models for real-world super-resolution.

Kept import-light on purpose: ``import adl`` must not pull in torch.
"""

__version__ = "0.1.0"
