"""The harness's own errors share one base class, and entry points turn them into one line on stderr with
exit code 2 (``HYDRA_FULL_ERROR=1`` or ``--debug`` shows the traceback). A leaf module."""
from __future__ import annotations

import os
import sys
from typing import Callable, Tuple, Type

EXIT_USAGE = 2


class GroundingError(Exception):
    """A mistake in the input — a config value, a file, a row, a run directory. The message names it and
    says how to fix it; command-line entry points print it without a traceback (exit code 2)."""


class ConfigError(GroundingError, ValueError):
    """A configuration value is invalid; the message names the key and what is expected."""


ON_ERROR = ("raise", "skip")


def check_on_error(value) -> str:
    """The one check of ``on_error``: ``raise`` (a bad row stops the run) or ``skip`` (a recorded miss)."""
    if value not in ON_ERROR:
        raise ConfigError(f"on_error={value!r}: expected raise or skip")
    return value


def user_errors() -> Tuple[Type[BaseException], ...]:
    """Exceptions that describe a mistake in the input (message names the file/key and the fix)."""
    return (GroundingError, FileNotFoundError, IsADirectoryError, PermissionError)


def short_warnings() -> None:
    """Warnings as one line (``warning: …``) instead of Python's two-line format with source."""
    import warnings

    warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"


def debug_requested(argv=None) -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or "--debug" in (argv or [])


def fail(message: str, hint: str = "") -> int:
    """Print ``error: message`` (and a hint) on stderr; return the usage exit code."""
    first = " ".join(str(message).split())
    print(f"error: {first}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_USAGE


def guarded(fn: Callable[[], int], argv=None) -> int:
    """Run ``fn``; turn the harness's errors into :func:`fail` unless debugging was asked for."""
    try:
        return fn()
    except user_errors() as e:
        if debug_requested(argv):
            raise
        return fail(str(e))
