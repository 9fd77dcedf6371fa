"""Run the ``zcproxy`` command line in-process for tests: exit code, stdout and stderr."""
from __future__ import annotations

from zcproxy.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)`` with argparse usage errors (SystemExit) turned into their exit code."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
