"""``python -m sk_reweight``: the command line of :mod:`sk_reweight.harness`."""

import signal
from collections.abc import Sequence

from sk_reweight.harness import main as run_command


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sk-reweight`` and return its exit status; the process then exits undisturbed.

    Once the command has returned, its results and report are written: a
    Ctrl-C or SIGTERM that comes while the interpreter shuts down (torch
    takes a moment) is ignored, instead of printing a traceback and
    replacing the exit status.
    """
    status = run_command(argv)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
