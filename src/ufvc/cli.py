"""The `ufvc` command line: discovers sub-commands and maps errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from ufvc import __version__, commands
from ufvc.errors import (
    BitstreamError,
    CheckpointError,
    InputFormatError,
    ModelMismatchError,
    OutputError,
    UfvcError,
    UfvcWarning,
)

# Most specific first: the first matching class decides the exit code.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InputFormatError, 2),
    (BitstreamError, 3),
    (ModelMismatchError, 4),
    (CheckpointError, 4),
    (OutputError, 5),
    (UfvcError, 1),
    (FileNotFoundError, 2),
    (PermissionError, 5),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per module in `ufvc.commands`."""
    parser = argparse.ArgumentParser(
        prog="ufvc", description="Ultra-fast neural video codec (DCVC-UF)."
    )
    parser.add_argument("--version", action="version", version=f"ufvc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not a sub-command
            continue
        module = importlib.import_module(f"ufvc.commands.{info.name}")
        module.register(subparsers)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `with` block cleans up."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (main thread only), as Ctrl-C raises
    KeyboardInterrupt: the writers' `with` blocks then remove their temporary files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv`; an unknown option is reported with the sub-command's own usage."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subparsers = next(a for a in parser._actions
                          if isinstance(a, argparse._SubParsersAction))
        command = subparsers.choices[args.command]
        # argparse stops filling a positional list at the first option after it
        # (`ufvc train --config c key=1 --out o key=2`); parsed intermixed, the sub-command
        # takes them all, and reports what is still unknown with its own usage.
        words = sys.argv[1:] if argv is None else argv
        try:
            sub = command.parse_intermixed_args(words[words.index(args.command) + 1:])
        except TypeError:  # a sub-command whose arguments cannot be intermixed
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
        vars(args).update(vars(sub))
    return args


def exit_code_for(error: BaseException) -> int:
    """The exit code that `error` maps to (1 when no table row matches)."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """ufvc's own warnings as one `ufvc: warning:` line; others as Python shows them."""
    if issubclass(category, UfvcWarning):
        print(f"ufvc: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and a non-zero exit code."""
    args = parse_args(build_parser(), argv)
    # Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads
    # took cores from each other and from other programs (README, "Threads"). This must
    # be set before torch loads, which the sub-commands do only when they run.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with sigterm_raises(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("ufvc: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("ufvc: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # The reader of our output went away (`ufvc info ... | head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's flush quiet
        return 141
    except (UfvcError, OSError) as error:
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename and not isinstance(error, UfvcError):
            message = f"{error.strerror or message}: {error.filename}"
        print(f"ufvc: error: {message}", file=sys.stderr)
        return exit_code_for(error)


if __name__ == "__main__":
    sys.exit(main())
