"""The workflow's result tables as CSV: Table 1 (LR PSNR), Table 3 (SR PSNR) and kernel similarity.

Each input is one JSON file holding one cell: ``adl psnr --json``, ``adl evaluate-sr`` or
``adl kernel-similarity --json``, run with ``--tag`` options that say which row and kernel column
the value belongs to. A table has one row per row-tag combination and one column per kernel; beside
it, ``<name>_vs_paper.csv`` sets every cell the paper also reports against the paper's value
(adl.report.paper).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from adl.atomic import write_text
from adl.choices import SR_MODELS
from adl.errors import AdlError
from adl.report import paper

# Row order of the paper's Table 1 (data terms) and Table 3 (methods); lfl-gauss is our ablation.
DATA_TERMS = ("bicubic", "avgpool", "lfl", "lfl-gauss", "adl")
SR_METHODS = ("bicubic", "oracle", "lfl", "adl")


@dataclass(frozen=True)
class Kind:
    value_key: str  # the JSON field holding the cell value
    row_tags: tuple[str, ...]  # tags naming a row, in CSV column order
    sort_tags: tuple[str, ...]  # the same tags in row-sorting priority
    choices: dict[str, tuple[str, ...]]  # allowed values (and their order) of some row tags
    decimals: int
    paper: dict  # row key (row_tags values) -> {kernel: the paper's value}


KINDS = {
    "table1": Kind("psnr", ("scale", "method"), ("scale", "method"), {"method": DATA_TERMS}, 2, paper.TABLE1),
    # The paper lists Table 3 method by method (EDSR Bicubic, RRDB Bicubic, EDSR Oracle, …).
    "table3": Kind("psnr", ("scale", "model", "method"), ("scale", "method", "model"),
                   {"method": SR_METHODS, "model": SR_MODELS}, 2, paper.TABLE3),
    "kernels": Kind("similarity", ("scale", "method"), ("scale", "method"), {}, 4, paper.KERNEL_SIMILARITY),
}


def _natural(text: str) -> tuple:
    """k2 before k10: digit runs compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def read_cell(path: str | Path, kind: Kind) -> tuple[tuple[str, ...], str, float]:
    """(row key, kernel, value) of one result file, or an AdlError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AdlError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdlError(f"{path}: not a JSON result file ({exc}); rerun the command that wrote it") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(tags, dict):
        raise AdlError(f'{path}: no "tags" object; write it with --tag options ({", ".join(kind.row_tags)}, kernel)')
    for name in (*kind.row_tags, "kernel"):
        if name not in tags:
            raise AdlError(f"{path}: tag {name!r} is missing; add --tag {name}=... to the command that wrote it")
    tags = {k: str(v) for k, v in tags.items()}
    if not re.fullmatch(r"\d+", tags["scale"]):
        raise AdlError(f"{path}: tag scale={tags['scale']!r} is not a whole number")
    for name, allowed in kind.choices.items():
        if tags[name] not in allowed:
            raise AdlError(f"{path}: tag {name}={tags[name]!r} is not one of {', '.join(allowed)}")
    value = data.get(kind.value_key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise AdlError(f'{path}: no numeric "{kind.value_key}" value; it is not a result of the expected command')
    return tuple(tags[t] for t in kind.row_tags), tags["kernel"], float(value)


def collect(kind: Kind, files: list[str | Path]) -> dict[tuple[str, ...], dict[str, float]]:
    """Row key -> {kernel: value}; two files for the same cell are an error naming both."""
    cells: dict[tuple[str, ...], dict[str, float]] = {}
    source: dict[tuple, Path] = {}
    for path in files:
        row, kernel, value = read_cell(path, kind)
        if (row, kernel) in source:
            where = ", ".join(f"{t}={v}" for t, v in zip(kind.row_tags, row))
            raise AdlError(f"{path}: same cell ({where}, kernel={kernel}) as {source[row, kernel]}; "
                           f"each cell needs exactly one file")
        source[row, kernel] = Path(path)
        cells.setdefault(row, {})[kernel] = value
    return cells


def _row_order(kind: Kind, row: tuple[str, ...]) -> tuple:
    tags = dict(zip(kind.row_tags, row))
    key = []
    for name in kind.sort_tags:
        value = tags[name]
        if name == "scale":
            key.append((int(value), ""))
        elif name in kind.choices:
            key.append((kind.choices[name].index(value), ""))
        else:  # any method name (kernel table): the paper's order first, then by name
            rank = DATA_TERMS.index(value) if value in DATA_TERMS else len(DATA_TERMS)
            key.append((rank, _natural(value)))
    return tuple(key)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _note(kernel: str) -> str:
    """Free of commas, so that the CSV needs no quoting."""
    if kernel == "k0":
        return "k0 is the paper's kernel (bicubic; method.md §1)"
    return (f"{kernel} is our own kernel (method.md §1) and not the paper's random one: "
            f"only the pattern across kernels carries over")


def vs_paper_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_vs_paper{output.suffix}")


def write_table(kind_name: str, output: str | Path, files: list[str | Path]) -> tuple[Path, Path]:
    """Write the table and its ``_vs_paper`` sibling; return both paths."""
    kind = KINDS[kind_name]
    cells = collect(kind, files)
    rows = sorted(cells, key=lambda r: _row_order(kind, r))
    kernels = sorted({k for values in cells.values() for k in values}, key=_natural)
    d = kind.decimals

    table = [[*kind.row_tags, *kernels]]
    for row in rows:
        table.append([*row, *(_fmt(cells[row][k], d) if k in cells[row] else "" for k in kernels)])

    compared = [[*kind.row_tags, "kernel", "ours", "paper", "diff", "note"]]
    for row in rows:
        reported = kind.paper.get(row, {})
        for k in kernels:
            if k not in cells[row] or k not in reported:
                continue
            ours = _fmt(cells[row][k], d)
            # The difference of the printed values, in exact decimals: ours − paper as the reader computes it.
            diff = (_fmt(Decimal(ours) - Decimal(str(reported[k])), d) if math.isfinite(cells[row][k]) else ours)
            compared.append([*row, k, ours, _fmt(reported[k], d), diff, _note(k)])

    output = Path(output)
    sibling = vs_paper_path(output)
    write_text(output, _csv(table))
    write_text(sibling, _csv(compared))
    return output, sibling
