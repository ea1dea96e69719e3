"""Reorder the nodes of an ONNX model for the lowest peak activation memory.

>>> import onnx_memsched
>>> result = onnx_memsched.optimize("net.onnx", time_limit=30)
>>> result.peak_before, result.peak_after, result.optimal
>>> onnx.save(result.model, "net.sched.onnx")

The figures, messages and written node order are the ``onnx-memsched`` CLI's
(the same Rust code runs): ``optimize`` is the CLI with an output file,
``measure`` is ``--dry-run``, and ``Result.report`` has exactly the keys of the
CLI's ``--report`` JSON. The search runs without the GIL; Ctrl-C stops it and
raises ``KeyboardInterrupt``. ``onnx`` is optional: without it, pass paths or
bytes and get bytes back.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._native import MemschedError

__all__ = ["optimize", "measure", "Result", "MemschedError", "__version__"]
__version__: str = _native.__version__

MemschedError.__module__ = "onnx_memsched"

# Protocol buffers cannot serialize a message of 2 GiB or more.
_PROTO_LIMIT = 2**31 - 1

ModelInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]
"""A path (str or os.PathLike), the bytes of a model, or an ``onnx.ModelProto``."""


class Result:
    """What ``optimize`` returns.

    Attributes:
        model: the reordered model: an ``onnx.ModelProto`` when ``onnx`` is
            importable and the input was a path or a ModelProto, else the bytes
            of the model file. Only the order of ``graph.node`` differs from the
            input. A path's external data is not loaded (the tool never reads
            weights): save the model in the input's folder, or next to a copy
            of its data files.
        report: the CLI's ``--report`` JSON as a dict (``output`` is None).
    """

    __slots__ = ("model", "report")

    def __init__(self, model: Any, report: Dict[str, Any]) -> None:
        self.model = model
        self.report = report

    @property
    def peak_before(self) -> int:
        """Peak live bytes of the input's node order (``report["peak_bytes_before"]``)."""
        return int(self.report["peak_bytes_before"])

    @property
    def peak_after(self) -> int:
        """Peak live bytes of the new node order (``report["peak_bytes_after"]``)."""
        return int(self.report["peak_bytes_after"])

    @property
    def optimal(self) -> bool:
        """Whether the new order is proved to have the least peak (``report["optimal"]``)."""
        return bool(self.report["optimal"])

    def __repr__(self) -> str:
        return (
            f"Result(peak_before={self.peak_before}, peak_after={self.peak_after}, "
            f"optimal={self.optimal}, method={self.report.get('method')!r})"
        )


def optimize(
    model: ModelInput,
    *,
    scheduler: str = "auto",
    target: str = "all-runtimes",
    time_limit: float = 60.0,
    dims: Optional[Mapping[str, int]] = None,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    inplace: bool = False,
    inputs_live_whole_run: bool = False,
) -> Result:
    """Reorder ``model``'s nodes for the lowest peak activation memory.

    Args:
        model: a path (weights are never read), the bytes of a model, or an
            ``onnx.ModelProto`` (under 2 GB; save a larger one with external
            data and pass its path).
        scheduler: ``--scheduler``: ``auto`` (proves optimality where it can)
            or a single method (``input``, ``dfs``, ``bfs``, ``greedy``,
            ``lpmf``, ``liu``, ``dp``, ``ilp``).
        target: ``--target``: ``all-runtimes`` (the default: the least file-order peak with onnxruntime's default order no worse than the input's), ``file-order`` or ``ort-default``.
        time_limit: ``--time-limit`` in seconds; the best order found is kept.
        dims: ``--dim``: values of symbolic dimensions, e.g. ``{"batch": 8}``.
        input_shapes: ``--input-shape``: e.g. ``{"images": [1, 3, 224, 224]}``.
        inplace: ``--inplace`` memory model.
        inputs_live_whole_run: ``--inputs-live-whole-run`` memory model.

    Returns:
        a ``Result`` with the reordered model and the report.

    Raises:
        MemschedError: a bad model or option, with the CLI's one-line message.
        TypeError: ``model`` is none of the accepted kinds.
        KeyboardInterrupt: Ctrl-C during the search (the search stops).
    """
    kind, report, data = _run(
        model, True, scheduler, target, time_limit, dims, input_shapes, inplace, inputs_live_whole_run
    )
    assert data is not None
    out: Any = data
    if kind in ("path", "proto"):
        try:
            import onnx
        except ImportError:
            pass
        else:
            out = onnx.load_model_from_string(data)
    return Result(out, report)


def measure(
    model: ModelInput,
    *,
    scheduler: str = "auto",
    target: str = "all-runtimes",
    time_limit: float = 60.0,
    dims: Optional[Mapping[str, int]] = None,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    inplace: bool = False,
    inputs_live_whole_run: bool = False,
) -> Dict[str, Any]:
    """The report of ``optimize`` without rewriting the model (the CLI's ``--dry-run --report``).

    Takes the same arguments as ``optimize`` and raises the same errors.
    """
    return _run(model, False, scheduler, target, time_limit, dims, input_shapes, inplace, inputs_live_whole_run)[1]


def _run(
    model: ModelInput,
    rewrite: bool,
    scheduler: str,
    target: str,
    time_limit: float,
    dims: Optional[Mapping[str, int]],
    input_shapes: Optional[Mapping[str, Sequence[int]]],
    inplace: bool,
    inputs_live_whole_run: bool,
) -> Tuple[str, Dict[str, Any], Optional[bytes]]:
    kind, path, data, name = _source(model)
    try:
        limit = float(time_limit)
    except (TypeError, ValueError):
        raise MemschedError(f"time limit must be a number of seconds >= 0, got {time_limit!r}") from None
    report_json, out, notes = _native.plan(
        path=path,
        data=data,
        name=name,
        scheduler=str(scheduler),
        target=str(target),
        time_limit=limit,
        dims=[(str(k), int(v)) for k, v in (dims or {}).items()],
        input_shapes=[(str(k), _shape(k, v)) for k, v in (input_shapes or {}).items()],
        inplace=bool(inplace),
        inputs_live_whole_run=bool(inputs_live_whole_run),
        rewrite=rewrite,
    )
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    return kind, json.loads(report_json), out


def _shape(name: str, dims: Sequence[int]) -> list:
    shape = [int(d) for d in dims]
    if any(d < 0 for d in shape):
        raise MemschedError(f"input shape of `{name}`: {list(dims)} has a negative dimension")
    return shape


def _source(model: ModelInput) -> Tuple[str, Optional[str], Optional[bytes], str]:
    """(kind, path, data, name) for the native planner."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return "path", path, None, path
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "bytes", None, bytes(model), "<bytes>"
    if type(model).__name__ == "ModelProto" and hasattr(model, "SerializeToString"):
        size = model.ByteSize()
        if size > _PROTO_LIMIT:
            raise MemschedError(
                f"<ModelProto>: the model is {size:,} bytes, over protobuf's 2 GB limit; save it with "
                "onnx.save(model, path, save_as_external_data=True) and pass the path"
            )
        return "proto", None, model.SerializeToString(), "<ModelProto>"
    raise TypeError(
        f"model must be a path (str or os.PathLike), bytes or an onnx.ModelProto, not {type(model).__name__}"
    )
