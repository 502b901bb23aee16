"""How much host memory applying G takes, and the budget ``--max-memory`` sets on it (issue 20).

G normalises each of its nine convolutions with InstanceNorm over the whole image, so every output
pixel depends on every input pixel: unlike the SR networks (adl.tiling), G cannot run in tiles and
equal its whole-image output, whatever the halo (tests/test_memory.py shows it). Its memory
therefore grows with the photo's area. What adl does instead: it knows that memory in advance
(measured per HR pixel, docs/performance.md), runs two images at once only when both fit the
budget, and refuses in one line, before running out of memory, an image that alone would not fit.
Torch-free: the ONNX Runtime path of ``adl generate`` uses it.
"""

from __future__ import annotations

import os

from adl.errors import AdlError, UsageError

MIB = 1 << 20

# Peak host bytes per HR pixel of one image inside G in fp32 on CPU, beyond the process's fixed
# cost, measured with a width-64 G at 1020x680 and 2040x1356 (docs/performance.md, "Generation
# memory"): ~7.4 float32 maps of 64 channels live at ONNX Runtime's peak (its NCHWc layout copies),
# ~5.1 in torch's eager forward. The ×4 graph peaks in its first (full-size) pass: the same figure.
BYTES_PER_PIXEL = {"onnxruntime": 1_920, "torch": 1_340}
# The interpreter, the libraries and the model before any image (measured: ~90 MiB for ONNX
# Runtime, which imports no torch; ~250 MiB with torch), with a margin for the pipeline's own buffers.
FIXED_BYTES = {"onnxruntime": 128 * MIB, "torch": 320 * MIB}
# A decoded HR image is 3 bytes a pixel; the decoding pool reads ahead (adl.shards.generate._decoded).
DECODED_BYTES_PER_PIXEL = 3


def default_budget() -> int:
    """Half the machine's physical memory: room for the rest of a laptop, and a clear refusal
    instead of swapping or the kernel's OOM killer."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small laptop
        return 4 << 30


def describe(size: int) -> str:
    return f"{size / (1 << 30):.2f} GiB" if size >= 1 << 30 else f"{size / MIB:.0f} MiB"


def estimate(backend: str, pixels: int, in_flight: int = 1, read_ahead: int = 0) -> int:
    """Peak host bytes of ``in_flight`` images of ``pixels`` HR pixels inside G, plus ``read_ahead``
    decoded images waiting for it."""
    return FIXED_BYTES[backend] + pixels * (in_flight * BYTES_PER_PIXEL[backend]
                                            + (in_flight + read_ahead) * DECODED_BYTES_PER_PIXEL)


def check_budget(backend: str, budget: int, option: str = "--max-memory") -> None:
    """A budget below what the backend takes before any image can hold no image at all."""
    if budget <= FIXED_BYTES[backend]:
        raise UsageError(f"{option} {describe(budget)}: below the {describe(FIXED_BYTES[backend])} that the "
                         f"{backend} backend takes before any image; give at least "
                         f"{describe(estimate(backend, 64 * 64))} (docs/performance.md)")


def check_image(backend: str, budget: int, height: int, width: int, read_ahead: int = 0,
                option: str = "--max-memory") -> None:
    """Refuse an image that alone would take G past the budget: no tile can help (see above)."""
    need = estimate(backend, height * width, 1, read_ahead)
    if need > budget:
        raise AdlError(f"{width}x{height} needs about {describe(need)} in G ({backend}, whole image: G's "
                       f"InstanceNorm cannot be tiled), over {option} {describe(budget)}; raise {option} "
                       f"or crop the photo")


def images_in_flight(backend: str, budget: int, largest_pixels: int, read_ahead: int, wanted: int) -> int:
    """As many images at once (up to ``wanted``) as fit the budget at the largest image's size; at least one."""
    for n in range(wanted, 1, -1):
        if estimate(backend, largest_pixels, n, read_ahead) <= budget:
            return n
    return 1
