"""The ``onnx-memsched`` console script: the Rust CLI, run in-process.

Its output and exit codes are the binary's byte for byte (both are
``onnx_memsched::cli::main_with_args``). Ctrl-C ends the process as it ends the
binary: Python's KeyboardInterrupt handler is replaced by the default action
before the CLI starts.
"""

import signal
import sys

from . import _native


def main() -> None:
    """Run the CLI with ``sys.argv`` and exit with its code."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raise SystemExit(_native.run_cli(sys.argv))
