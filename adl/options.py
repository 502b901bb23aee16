"""One declaration per option: a dataclass field holds an option's default and help text, and both
the command line (``adl train-downsampler``, ``train-sr``, ``generate``) and the workflow's config
keys are derived from the fields. Adding a field is all a new option needs.

Kept free of heavy imports: the workflow imports it to check a config before any job runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import re
import typing

MISSING = dataclasses.MISSING


def option(default=MISSING, help: str = "", *, choices: typing.Sequence | None = None,
           minimum: int | None = None, maximum: int | None = None, required: bool | None = None,
           metavar: str | None = None, parse: typing.Callable[[str], typing.Any] | None = None,
           several: bool = False):
    """A dataclass field that is also a command-line option ``--name-with-dashes``.

    ``help`` describes the option; a concrete default is appended to it on the command line, so a
    help text names only defaults that are derived ("default 80 epochs"). A field without a default
    is a required option unless ``required=False`` (then the command line's default is None).
    A boolean defaulting to True becomes ``--no-NAME``. ``parse`` replaces the converter the type
    implies (e.g. positive_float): a value it refuses is a usage error on the command line and a
    config error in the workflow alike. ``several`` takes one or more values (a ``list[str]`` field,
    which a config may also give as one string). ``choices``, ``minimum``, ``maximum`` and ``parse``
    are enforced wherever the options come from (check_fields), so that a dataclass's ``resolved()``
    checks only what relates fields to each other.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum,
                "maximum": maximum, "required": required, "metavar": metavar, "parse": parse, "several": several}
    return dataclasses.field(default=default, metadata={"adl_option": metadata})


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # argparse would say "invalid integer value", naming our function instead of the problem.
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative integer")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _finite(text: str, least: float, strict: bool) -> float:
    value = _number(text)
    # Written so that NaN fails: every comparison with NaN is false.
    if not (math.isfinite(value) and (value > least if strict else value >= least)):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number {'above' if strict else 'of at least'} {least:g}")
    return value


def positive_float(text: str) -> float:
    return _finite(text, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    return _finite(text, 0.0, strict=False)


def byte_size(text: str) -> int:
    """'512M' -> 536870912: sizes in bytes with an optional K, M, G or T (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip().upper().rstrip("IB"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 1G, 256M, 1000000)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive size")
    return value


def device_name(text: str) -> str:
    """The spelling of --device is a usage error (exit 2); whether CUDA is there is checked later (exit 1)."""
    from adl.choices import DEVICE_CHOICES

    if text in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device; use {', '.join(DEVICE_CHOICES)} or cuda:N")


_INTEGERS = {None: integer, 0: non_negative_int, 1: positive_int}


def _bounded(text: str, least: int | None, most: int | None) -> int:
    value = integer(text)
    if (least is not None and value < least) or (most is not None and value > most):
        bounds = f"{least} to {most}" if least is not None and most is not None else (
            f"at least {least}" if least is not None else f"at most {most}")
        raise argparse.ArgumentTypeError(f"{text} is not an integer {bounds}")
    return value


@dataclasses.dataclass(frozen=True)
class Option:
    """One field seen as an option: its name, value type, default and command-line form."""

    name: str
    kind: type  # int, float, str or bool
    default: typing.Any  # MISSING for a required option
    help: str
    choices: tuple | None
    minimum: int | None
    required: bool
    metavar: str | None
    parse: typing.Callable[[str], typing.Any] | None = None
    several: bool = False
    maximum: int | None = None

    @property
    def flag(self) -> str:
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.kind is bool and self.default is True else f"--{dashed}"

    def converter(self):
        if self.parse is not None:
            return self.parse
        if self.kind is int:
            if self.minimum in _INTEGERS and self.maximum is None:
                return _INTEGERS[self.minimum]
            return functools.partial(_bounded, least=self.minimum, most=self.maximum)
        return _number if self.kind is float else str

    def help_text(self) -> str:
        shown = self.default not in (MISSING, None) and self.kind is not bool
        return f"{self.help} (default {self.default})" if shown and self.help else self.help


def options_of(cls) -> list[Option]:
    """The options a dataclass declares, in field order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("adl_option")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with adl.options.option()")
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        if meta.get("several"):  # str | list[str]: the command line gives a list
            kinds = [t for t in kinds if typing.get_origin(t) is not list]
        if len(kinds) != 1 or kinds[0] not in (int, float, str, bool):
            raise TypeError(f"{cls.__name__}.{f.name}: type {hints[f.name]} is not int, float, str or bool (or None)")
        required = meta["required"] if meta["required"] is not None else f.default is MISSING
        found.append(Option(f.name, kinds[0], f.default, meta["help"], meta["choices"], meta["minimum"], required,
                            meta["metavar"], meta.get("parse"), bool(meta.get("several")), meta.get("maximum")))
    return found


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    """Add a dataclass's fields to a parser as ``--name`` options."""
    for o in options_of(cls):
        if o.kind is bool:
            parser.add_argument(o.flag, dest=o.name, action="store_false" if o.default is True else "store_true",
                                help=o.help_text())
            continue
        default = None if o.default is MISSING else o.default
        parser.add_argument(o.flag, dest=o.name, type=o.converter(), default=default, required=o.required,
                            choices=o.choices, metavar=o.metavar, help=o.help_text(),
                            **({"nargs": "+"} if o.several else {}))


def from_args(cls, args: argparse.Namespace):
    """The dataclass instance of parsed arguments."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def config_error(cls, given: dict, where: str, exclude: typing.Collection[str] = ()) -> str | None:
    """Why a config mapping of options (``{"lr_patch": 32}``) would be refused by the command line,
    or None. Checks names (naming the closest valid one) and values, with the command line's own
    converters, so that a bad key fails before any job runs, not when its job does."""
    known = {o.name: o for o in options_of(cls) if o.name not in exclude}
    for key, value in given.items():
        o = known.get(key)
        if o is None:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(known)}"
            return f"{where}.{key}: unknown option; {hint}"
        if o.kind is bool:
            if not isinstance(value, bool):
                return f"{where}.{key}: {value!r} is not true or false"
            continue
        values = value if o.several and isinstance(value, list) and value else [value]
        for value in values:
            if value is None or isinstance(value, (bool, dict, list)):
                return f"{where}.{key}: {value!r} is not a single {o.kind.__name__} value"
            try:
                converted = o.converter()(str(value))
            except argparse.ArgumentTypeError as error:
                return f"{where}.{key}: {error}"
            if o.choices and converted not in o.choices:
                return f"{where}.{key}: {value!r}; choose from {', '.join(map(str, o.choices))}"
    return None


def check_fields(obj) -> None:
    """Refuse a field value that its option's metadata forbids, as the command line would: the
    same checks hold for options built in Python (tests, benchmarks) and for resumed configs."""
    from adl.errors import UsageError

    for o in options_of(type(obj)):
        value = getattr(obj, o.name)
        if value is None or value is MISSING or o.kind is bool:
            continue
        values = value if o.several and isinstance(value, list) else [value]
        for value in values:
            where = f"{o.flag} {value}"
            if o.choices and value not in o.choices:
                raise UsageError(f"{where}: unknown; choose from {', '.join(map(str, o.choices))}")
            if o.kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise UsageError(f"{where}: not a number")
            if o.minimum is not None and value < o.minimum:
                raise UsageError(f"{where}: must be at least {o.minimum}" if o.minimum else f"{where}: must not be negative")
            if o.maximum is not None and value > o.maximum:
                raise UsageError(f"{where}: must be at most {o.maximum}")
            if o.parse is not None:
                try:
                    o.parse(str(value))
                except argparse.ArgumentTypeError as error:
                    raise UsageError(f"{o.flag}: {error}") from None
