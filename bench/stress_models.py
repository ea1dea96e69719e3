#!/usr/bin/env python3
"""Writes large, pathologically shaped models for the scale and deadline
checks of issue 15 (docs/OPTIMIZER.md, "Size guards and one deadline"): every scheduler mode must finish
within --time-limit and in bounded memory on them.

    python bench/stress_models.py OUTDIR [--ops N]

writes OUTDIR/chain_N.onnx (N Relu ops in a line), sum_N.onnx (N Relu ops
on one input, joined by one Sum), fanout_N.onnx (one input read by N Relu
ops, joined by a Concat) and ladder_N.onnx (a chain whose every op also
reads the graph input, so no op is a cut point for the decomposition).
"""
import argparse
import os

import onnx
from onnx import TensorProto, helper


def value(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def save(nodes, inputs, outputs, path):
    graph = helper.make_graph(nodes, os.path.basename(path), inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def chain(n, path):
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"], name=f"r{i}") for i in range(n)]
    save(nodes, [value("x", [1, 16])], [value(f"t{n - 1}", [1, 16])], path)


def join(n, op, path, **attrs):
    nodes = [helper.make_node("Relu", ["x"], [f"t{i}"], name=f"r{i}") for i in range(n)]
    nodes.append(helper.make_node(op, [f"t{i}" for i in range(n)], ["y"], name="join", **attrs))
    out_dims = [1, 16] if op == "Sum" else [n, 16]
    save(nodes, [value("x", [1, 16])], [value("y", out_dims)], path)


def ladder(n, path):
    nodes = [helper.make_node("Add", ["x", "x" if i == 0 else f"t{i - 1}"], [f"t{i}"], name=f"a{i}") for i in range(n)]
    save(nodes, [value("x", [1, 16])], [value(f"t{n - 1}", [1, 16])], path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--ops", type=int, action="append", help="op counts (default 100000 and 200000)")
    ap.add_argument("--kind", action="append", choices=["chain", "sum", "fanout", "ladder"])
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for n in args.ops or [100_000, 200_000]:
        for kind in args.kind or ["chain", "sum", "fanout", "ladder"]:
            path = os.path.join(args.outdir, f"{kind}_{n}.onnx")
            {"chain": chain, "ladder": ladder, "sum": lambda n, p: join(n, "Sum", p),
             "fanout": lambda n, p: join(n, "Concat", p, axis=0)}[kind](n, path)
            print(path)


if __name__ == "__main__":
    main()
