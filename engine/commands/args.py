"""Command-line parsing shared by every ``python -m engine`` command: ``Parser`` (argument errors as
``EngineError``: one line and exit code 2) and argparse types with ranges.
"""

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from engine.util.errors import EngineError


class Parser(argparse.ArgumentParser):
    """argparse that raises EngineError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise EngineError(f"{message} (see '{self.prog} --help')")


def intrinsics(text: str) -> list[float]:
    """``--K`` "fx,fy,cx,cy" (pixels) -> [fx, fy, cx, cy]; finite, fx and fy > 0."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--K expects fx,fy,cx,cy in pixels, got {text!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"--K expects four finite numbers fx,fy,cx,cy with fx, fy > 0, got {text!r}")
    return values


def number(kind: type, low: float | None = None, high: float | None = None, what: str = "a number",
           above: bool = False) -> Callable[[str], float]:
    """An argparse type: ``kind`` (int or float), finite, ``low <= x <= high`` (``low < x`` with ``above``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)) or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
