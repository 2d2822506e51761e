"""Errors a user can act on, and the command-line wrapper that prints them as one line.

Every command turns :class:`InputError` (and operating-system errors) into
``error: <message>`` on stderr and exit code 2, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Callable

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input the user can fix: the message names the file, the problem and what was expected."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else str(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(" ".join(text.split()))  # always one line


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a command's parser the ``--debug`` flag :func:`cli_entry` reacts to."""
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback instead of a one-line error (and re-raise failures "
                             "a command would otherwise report and go past)")
    return parser


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: the path(s), the reason, and nothing of Python's.

    ``[Errno 28] No space left on device: 'out/x.nc'`` becomes ``out/x.nc: no space left on device``.
    """
    paths = [str(p) for p in (exc.filename, getattr(exc, "filename2", None)) if p is not None]
    if not exc.strerror:
        return " ".join(f"{' -> '.join(paths + [''])}{type(exc).__name__}: {exc}".split())
    reason = exc.strerror.rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    text = f"{' -> '.join(paths)}: {reason}" if paths else reason
    return " ".join(text.split())


def ensure_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Create ``path`` (and parents) and check that files can be written there, before the work.

    Raises :class:`InputError` naming ``what`` when the path lies under a file, is a file, or is
    not writable, so a long command fails in its first second rather than after hours.
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{out} is a file, expected a directory", what) from None
    except NotADirectoryError:
        raise InputError(f"{out} lies under a file, expected a directory path", what) from None
    except OSError as exc:
        raise InputError(f"cannot create {out} ({os_error_message(exc)})", what) from None
    if not out.is_dir():
        raise InputError(f"{out} is not a directory", what)
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"{out} is not writable", what)
    return out


def cli_entry(main: Callable[[list[str]], int | None],
              resume_hint: str = "rerun the same command to resume",
              prog: str | None = None) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main(argv)`` so bad input exits 2 with a one-line message.

    Bad input (:class:`InputError`) and operating-system errors (a full disk, a path under a
    file, no permission: :class:`OSError`) print ``<prog>: error: <one line>`` and exit 2.
    ``--debug`` in argv re-raises them with the traceback; the command's own parser declares
    the flag (:func:`add_debug_flag`) and passes ``args.debug`` on to code that reports a
    failure and goes on. ``resume_hint`` is printed after Ctrl-C (commands differ in how they
    resume). ``prog`` names the command in messages (default: the console script's name; give
    it for commands run as ``python -m``, whose argv[0] is a file path).
    """

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        name = prog or (os.path.basename(sys.argv[0]) if argv is None else main.__module__)
        try:
            code = main(args)
        except InputError as exc:
            if debug:
                raise
            print(f"{name}: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OSError as exc:
            if debug:
                raise
            print(f"{name}: error: {os_error_message(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"{name}: interrupted; {resume_hint}", file=sys.stderr)
            return 130
        return int(code or 0)

    return wrapper
