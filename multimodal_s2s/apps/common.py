"""What the apps share: the common arguments, the exit codes, one way to fail and one closing count.

Every app that reads a checkpoint takes ``--checkpoint`` (and ``--device``, but export) from here; the apps that write
files per input take ``--output-dir`` and ``--overwrite``. A setup that cannot be used (checkpoint,
options, output folder) is ``fail(message)``: one ``error: MESSAGE`` line on stderr and EXIT_BAD_SETUP.
An app that processes several files counts each one done or failed in a ``FileCount``, which prints
each failure as one ``error: PROBLEM`` line and, when any failed, the closing
``N file(s) failed, M <verb>`` line, and gives the exit code (EXIT_FAILED when any failed).
It imports the standard library only, so that it adds nothing to an app's start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

#: Exit codes: some inputs (or the one output) failed, the others were processed; nothing could start.
EXIT_FAILED, EXIT_BAD_SETUP = 1, 2
DEVICE_HELP = "cpu, cuda, cuda:N or auto (default)"


def add_checkpoint_arguments(parser: argparse.ArgumentParser, checkpoint_help: str, device: bool = True) -> None:
    """``--checkpoint`` (required) and, unless ``device`` is False, ``--device`` (default auto)."""
    parser.add_argument("--checkpoint", required=True, help=checkpoint_help)
    if device:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_output_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--output-dir`` (default: the current folder) and ``--overwrite``; ``what``: what is written there."""
    parser.add_argument("--output-dir", default=".", help=f"where {what} go (created if missing; default: here)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_batch_size_argument(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--batch-size`` with the pipeline's default; ``what``: what is decoded together."""
    parser.add_argument("--batch-size", type=int, default=default, help=f"{what} decoded together")


def fail(message: str, code: int = EXIT_BAD_SETUP) -> int:
    """Report why the run cannot go on, in one line on stderr; returns the exit code ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code


class FileCount:
    """The inputs of a run, each counted once as done or failed; the closing line and the exit code.

    ``verb`` names what was done to the files ("captioned", "segmented"); ``problems``: inputs that
    failed already (e.g. missing files). ``failed(problem)`` prints ``error: PROBLEM`` on stderr (through
    ``write`` when given, e.g. a progress bar's ``write``).
    """

    def __init__(self, verb: str, problems: Iterable[str] = ()):
        self.verb, self.done, self.failures = verb, 0, 0
        for problem in problems:
            self.failed(problem)

    def succeeded(self, count: int = 1) -> None:
        self.done += count

    def failed(self, problem: str, write: Callable[[str], None] | None = None) -> None:
        self.failures += 1
        line = f"error: {problem}"
        if write is None:
            print(line, file=sys.stderr)
        else:
            write(line)

    def closing_line(self) -> str:
        return f"{self.failures} file(s) failed, {self.done} {self.verb}"

    def exit_code(self) -> int:
        return EXIT_FAILED if self.failures else 0

    def finish(self) -> int:
        """Print the closing line on stderr when any file failed; returns the exit code."""
        if self.failures:
            print(self.closing_line(), file=sys.stderr)
        return self.exit_code()
