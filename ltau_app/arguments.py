"""argparse types for the command line: a value out of range, or an output path that cannot be
written, is refused while the arguments are parsed — before anything runs or is written — with one
line naming the option, the value and what it must be.

Relative paths stay relative: every command runs in the caller's working directory, and the
workflows that start subprocesses (train, loop, demo) resolve paths to absolute ones before they
hand them on.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not {'an integer' if kind is int else 'a number'}; give one") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = True, high_open: bool = True) -> Callable[[str], float]:
    """A finite float in (low, high) (or closed ends), e.g. ``float_in(0, 1)`` for a probability."""

    def parse(text: str) -> float:
        value = float(_number(text, float))
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            lo = "(" if low_open else "["
            hi = ")" if high_open or math.isinf(high) else "]"
            raise argparse.ArgumentTypeError(f"{value:g}: must be in {lo}{low:g}, {'inf' if math.isinf(high) else f'{high:g}'}{hi}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)
positive_float = float_in(0.0)
nonnegative_float = float_in(0.0, low_open=False)
probability = float_in(0.0, 1.0)


def output_file(*suffixes: str) -> Callable[[str], str]:
    """A file to be written: its directory exists and is writable, it is not a directory, and
    (if ``suffixes`` are given) its name ends with one of them."""

    def parse(text: str) -> str:
        path = Path(text)
        if suffixes and not any(path.name.lower().endswith(s) for s in suffixes):
            raise argparse.ArgumentTypeError(f"{text}: name it *{' or *'.join(suffixes)}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a directory; give a file name")
        _writable_parent(text, path)
        return text

    parse.__name__ = "output file"
    return parse


def output_dir(text: str) -> str:
    """A directory to be created (or filled): it is not a file, and its parent exists and is writable."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory; give a directory name")
    if path.is_dir():
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"{text}: directory is not writable; choose another")
        return text
    _writable_parent(text, path)
    return text


def _writable_parent(text: str, path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} is not writable; choose another")


def input_file(text: str) -> str:
    """A file that must exist (checked before anything heavy is imported)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text
