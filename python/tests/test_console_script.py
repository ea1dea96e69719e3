"""The ``onnx-memsched`` console script is the CLI binary, byte for byte."""

import pytest

from conftest import MODELS, run

MODEL = str(MODELS / "randwire.onnx")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["--version"],
        [],  # usage error: exit 2
        ["--scheduler", "nope", MODEL, "--dry-run"],  # usage error from clap
        ["--dry-run", MODEL, "/tmp/extra.onnx"],  # usage error from the CLI
        ["--dry-run", MODEL],
        ["--dry-run", "--scheduler", "greedy", MODEL],
        ["--check", "--tolerance", "0", MODEL],  # exit 3 (randwire's file order is not the best)
        ["--fail-above", "1KiB", "--dry-run", MODEL],  # exit 3, naming the live tensors
        ["--dry-run", "does/not/exist.onnx"],  # exit 1
    ],
)
def test_same_output_and_exit_code(cli_bin, console_script, args):
    expected = run([cli_bin, *args])
    got = run([console_script, *args])
    assert got == expected
    assert expected[1] or expected[2], "the case printed nothing: it checks nothing"


def test_written_models_and_stdout_are_identical(cli_bin, console_script, tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    expected = run([cli_bin, "--report", tmp_path / "a.json", MODEL, a])
    got = run([console_script, "--report", tmp_path / "b.json", MODEL, b])
    assert got[0] == expected[0] == 0
    assert got[1:] == tuple(x.replace(b"a.onnx", b"b.onnx") for x in expected[1:])
    assert a.read_bytes() == b.read_bytes()
    # A model through standard input and output.
    data = (MODELS / "nas_cell.onnx").read_bytes()
    expected = run([cli_bin, "-", "-"], stdin=data)
    got = run([console_script, "-", "-"], stdin=data)
    assert got == expected and expected[0] == 0 and len(expected[1]) == len(data)


def test_bad_input_exit_code_and_message(cli_bin, console_script, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model at all")
    out = tmp_path / "out.onnx"
    expected = run([cli_bin, bad, out])
    got = run([console_script, bad, out])
    assert got == expected
    assert expected[0] == 1 and expected[2].startswith(b"onnx-memsched: error: ")
    assert not out.exists()
