"""Type stub of the compiled module ``onnx_memsched._native`` (src/python.rs)."""

from os import PathLike
from typing import List, Optional, Sequence, Tuple, Union

__version__: str

class MemschedError(Exception):
    """A bad model or option, with the CLI's one-line message."""

def run_cli(argv: Sequence[Union[str, "PathLike[str]"]]) -> int:
    """Run the onnx-memsched command line (program name first); return its exit code."""

def plan(
    *,
    path: Optional[Union[str, "PathLike[str]"]],
    data: Optional[bytes],
    name: str,
    scheduler: str,
    target: str,
    time_limit: float,
    dims: List[Tuple[str, int]],
    input_shapes: List[Tuple[str, List[int]]],
    inplace: bool,
    inputs_live_whole_run: bool,
    rewrite: bool,
) -> Tuple[str, Optional[bytes], List[str]]:
    """Plan one model: (report JSON, reordered model bytes if ``rewrite``, warnings)."""
