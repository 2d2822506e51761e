"""Errors a user can act on, and the command-line wrapper that prints them as one line.

Every command turns :class:`InputError` into ``error: <message>`` on stderr and exit
code 2, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input the user can fix: the message names the file, the problem and what was expected."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else str(path)
        text = message if path is None else f"{path}: {message}"
        super().__init__(" ".join(text.split()))  # always one line


def cli_entry(main: Callable[[list[str] | None], int | None],
              resume_hint: str = "rerun the same command to resume",
              prog: str | None = None) -> Callable[[list[str] | None], int]:
    """Wrap a command's ``main(argv)`` so bad input exits 2 with a one-line message.

    ``--debug`` anywhere in argv (or ``MD_DEBUG=1``) re-raises to show the traceback.
    ``resume_hint`` is printed after Ctrl-C (commands differ in how they resume). ``prog``
    names the command in messages (default: the console script's name; give it for commands
    run as ``python -m``, whose argv[0] is a file path).
    """

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args or os.environ.get("MD_DEBUG") == "1"
        args = [a for a in args if a != "--debug"]
        name = prog or (os.path.basename(sys.argv[0]) if argv is None else main.__module__)
        previous = os.environ.get("MD_DEBUG")
        if debug:  # code that reports a failure and goes on re-raises under MD_DEBUG
            os.environ["MD_DEBUG"] = "1"
        try:
            code = main(args)
        except InputError as exc:
            if debug:
                raise
            print(f"{name}: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"{name}: interrupted; {resume_hint}", file=sys.stderr)
            return 130
        finally:  # in-process callers (tests) must not inherit --debug
            if previous is None:
                os.environ.pop("MD_DEBUG", None)
            else:
                os.environ["MD_DEBUG"] = previous
        return int(code or 0)

    return wrapper
