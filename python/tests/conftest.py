"""Shared fixtures of the Python package's tests.

The CLI binary the package is compared against is ``$ONNX_MEMSCHED_BIN``, else
``target/release/onnx-memsched`` of this repository (``cargo build --release``);
tests that need it are skipped when neither exists. Corpus tests run when
``../shared/corpus/open`` (or ``$ONNX_MEMSCHED_CORPUS``) exists.
"""

import os
import pathlib
import shutil
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "models"


def _corpus() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ONNX_MEMSCHED_CORPUS", REPO.parent / "shared" / "corpus" / "open"))


@pytest.fixture(scope="session")
def cli_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("ONNX_MEMSCHED_BIN", REPO / "target" / "release" / "onnx-memsched"))
    if not path.is_file():
        pytest.skip(f"no CLI binary at {path}: run cargo build --release or set ONNX_MEMSCHED_BIN")
    return path


@pytest.fixture(scope="session")
def console_script() -> pathlib.Path:
    """The ``onnx-memsched`` console script installed with the package (next to this Python)."""
    folder = pathlib.Path(sys.executable).parent
    path = folder / "onnx-memsched"
    if not path.is_file():
        found = shutil.which("onnx-memsched", path=str(folder))
        assert found, f"the package's console script onnx-memsched is not installed in {folder}"
        path = pathlib.Path(found)
    return path


@pytest.fixture(scope="session")
def corpus() -> pathlib.Path:
    path = _corpus()
    if not path.is_dir():
        pytest.skip(f"corpus {path} not found")
    return path


# Progress lines (runs over a second) start with the elapsed time, which no
# two runs share: `  ...    2.8 s  what`. Only that number is masked.
_ELAPSED = re.compile(rb"^(  \.\.\. +)[0-9]+\.[0-9] s", re.M)


def run(argv, stdin=None, cwd=None):
    """Runs a command, returning (exit code, stdout bytes, stderr bytes), the
    elapsed times of progress lines in stderr masked."""
    done = subprocess.run(argv, input=stdin, capture_output=True, cwd=cwd, timeout=600)
    return done.returncode, done.stdout, _ELAPSED.sub(rb"\1<t> s", done.stderr)


def many_node_model(ops: int = 4000, width: int = 30, seed: int = 1) -> bytes:
    """A model of `ops` element-wise nodes on 1x16 floats, each reading random
    recent tensors (like the corpus' many_small): no cut point and too big to
    prove, so `auto` searches until its time limit."""
    import random

    from onnx import TensorProto, helper

    rng = random.Random(seed)
    nodes, made = [], ["x"]
    for i in range(ops):
        a = made[-1 - rng.randrange(min(width, len(made)))]
        b = made[-1 - rng.randrange(min(width, len(made)))]
        op = rng.choice(["Add", "Mul", "Max"])
        nodes.append(helper.make_node(op, [a, b], [f"t{i}"], name=f"n{i}"))
        made.append(f"t{i}")
    read = {name for node in nodes for name in node.input}
    sinks = [name for name in made[1:] if name not in read]
    graph = helper.make_graph(
        nodes,
        "many",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 16]) for name in sinks],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()
