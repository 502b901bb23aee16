"""What every stage's command-line module shares: the parsers, option types and helpers that turn
a library call into a subcommand. Kept free of heavy imports: `adl --help` loads every stage's
command module."""

from __future__ import annotations

import argparse
import importlib

from adl.choices import DEVICE_HELP, SCALES
from adl.errors import AdlError
from adl.options import device_name, integer


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on error; one line naming the option is enough."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class OptionsParser(OneLineParser):
    """A subcommand whose options are the fields of a dataclass (adl.options). The module holding
    the dataclass is imported only when that subcommand is parsed, so that `adl --help` stays fast."""

    def __init__(self, *args, options: str | None = None, extra=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = (options, extra) if options else None

    def populate(self) -> None:
        if self._pending:
            (path, extra), self._pending = self._pending, None
            from adl.options import add_options

            add_options(self, dataclass_at(path))
            if extra:
                extra(self)

    def parse_known_args(self, args=None, namespace=None):
        self.populate()
        return super().parse_known_args(args, namespace)


def dataclass_at(path: str):
    """"adl.downsampler.options:DownsamplerOptions" -> the class."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def scale(text: str) -> int:
    value = integer(text)
    if value not in SCALES:
        raise argparse.ArgumentTypeError(f"{text}: scale must be {' or '.join(map(str, SCALES))}")
    return value


def device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device_name, default="auto", help=f"{DEVICE_HELP} (default auto)")


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def tag_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", type=_tag, action="append", metavar="KEY=VALUE",
                   help="label stored in the JSON output for `adl table` (repeatable)")


def tags(args) -> dict[str, str]:
    """The --tag KEY=VALUE options as a dict; a key given twice is an error."""
    found: dict[str, str] = {}
    for key, value in args.tag or []:
        if key in found:
            raise AdlError(f"--tag {key}: given twice ({found[key]!r} and {value!r}); give each key once")
        found[key] = value
    return found
