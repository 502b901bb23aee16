"""Splitting one generation into N parts that separate jobs run, and sizing shards by bytes.

A generation's samples and shard boundaries depend only on the HR list and the options, never on
how many parts run it: part I of N writes the whole shards [⌊(I−1)·K/N⌋, ⌊I·K/N⌋) of the K shards an
unsplit run writes, under the same names and with the same bytes. Changing N only moves shard
boundaries between jobs, and the union of any N parts is the unsplit run, shard by shard.
"""

from __future__ import annotations

from adl.errors import UsageError


def parse_part(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3); parts count from 1."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise UsageError(f"--part {text!r}: expected I/N, e.g. 2/3 for the second of three parts") from None
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--part {text!r}: expected I/N with 1 <= I <= N, e.g. 2/3 for the second of three parts")
    return i, n


def part_shards(shards: int, index: int, count: int) -> range:
    """The shard indices part ``index`` of ``count`` writes: a contiguous run, sizes differing by at most one."""
    return range((index - 1) * shards // count, index * shards // count)


def sample_bytes(patch: int, scale: int) -> int:
    """Uncompressed bytes of one sample: an RGB uint8 HR patch and its LR patch."""
    return 3 * (patch * patch + (patch // scale) ** 2)


def shard_size_for_bytes(shard_bytes: int, patch: int, scale: int) -> int:
    """Samples per shard for ``--shard-bytes``. Counted on uncompressed bytes, so the size is fixed before
    anything is generated (parts must agree on shard boundaries) and compressed shards stay below it."""
    return max(1, shard_bytes // sample_bytes(patch, scale))


def images_of_shards(shards: list[int], shard_size: int, per_image: int, total: int) -> list[int]:
    """Indices of the images whose patches fall in ``shards`` (sample g is patch g mod n of image g div n)."""
    images: set[int] = set()
    for k in shards:
        first, last = k * shard_size, min((k + 1) * shard_size, total) - 1
        images.update(range(first // per_image, last // per_image + 1))
    return sorted(images)
