"""``python -m onnx_memsched ...`` runs the CLI, like the ``onnx-memsched`` command."""

from ._cli import main

main()
