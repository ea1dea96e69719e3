"""An int8 transformer for timing and conformance checks, without torch.

Usage: python bench/make_int8_transformer.py OUT.onnx

A MiniLM-shaped encoder (6 layers, hidden 384, 12 heads, FFN 1536) with
symbolic batch and sequence, written the way torch's TorchScript exporter
does (Shape/Gather/Unsqueeze/Concat chains feed every Reshape), random
weights, then onnxruntime.quantization.quantize_dynamic (MatMulInteger,
DynamicQuantizeLinear): 438 nodes. Check it with
`scripts/conformance.py --tool TOOL --model OUT.onnx`.
"""
import os
import sys
import tempfile
import numpy as np
import onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh

H, NH, F, L, V = 384, 12, 1536, 6, 1000
rng = np.random.default_rng(0)
nodes, inits = [], []
cnt = [0]
def name(p):
    cnt[0] += 1
    return f"{p}_{cnt[0]}"
def init(a, p="w"):
    n = name(p)
    inits.append(nh.from_array(np.asarray(a), n))
    return n
def node(op, ins, nout=1, **kw):
    outs = [name(op) for _ in range(nout)]
    nodes.append(h.make_node(op, ins, outs, name=name(op + "_n"), **kw))
    return outs[0] if nout == 1 else outs
def linear(x, i, o):
    w = init((rng.standard_normal((i, o)) * 0.05).astype(np.float32))
    b = init((rng.standard_normal(o) * 0.01).astype(np.float32))
    return node("Add", [node("MatMul", [x, w]), b])
def ln(x):
    g = init(np.ones(H, np.float32)); b = init(np.zeros(H, np.float32))
    return node("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-12)
def dim(x, i):
    return node("Unsqueeze", [node("Gather", [node("Shape", [x]), init(np.array(i, np.int64))], axis=0), init(np.array([0], np.int64))])

ids, mask, tt = "input_ids", "attention_mask", "token_type_ids"
emb = node("Gather", [init((rng.standard_normal((V, H)) * 0.05).astype(np.float32)), ids])
pos_ids = node("Unsqueeze", [node("Range", [init(np.array(0, np.int64)), node("Gather", [node("Shape", [ids]), init(np.array(1, np.int64))], axis=0), init(np.array(1, np.int64))]), init(np.array([0], np.int64))])
x = node("Add", [emb, node("Gather", [init((rng.standard_normal((512, H)) * 0.05).astype(np.float32)), pos_ids])])
x = node("Add", [x, node("Gather", [init((rng.standard_normal((2, H)) * 0.05).astype(np.float32)), tt])])
x = ln(x)
m = node("Unsqueeze", [node("Unsqueeze", [mask, init(np.array([1], np.int64))]), init(np.array([2], np.int64))])
m = node("Mul", [node("Sub", [init(np.array(1.0, np.float32)), node("Cast", [m], to=T.FLOAT)]), init(np.array(-10000.0, np.float32))])
for _ in range(L):
    b, s = dim(x, 0), dim(x, 1)
    shape4 = node("Concat", [b, s, init(np.array([NH], np.int64)), init(np.array([H // NH], np.int64))], axis=0)
    def heads(t, perm):
        return node("Transpose", [node("Reshape", [t, shape4])], perm=perm)
    q = heads(linear(x, H, H), [0, 2, 1, 3])
    k = heads(linear(x, H, H), [0, 2, 3, 1])
    v = heads(linear(x, H, H), [0, 2, 1, 3])
    sc = node("Add", [node("Div", [node("MatMul", [q, k]), init(np.array(8.0, np.float32))]), m])
    ctx = node("Transpose", [node("MatMul", [node("Softmax", [sc], axis=-1), v])], perm=[0, 2, 1, 3])
    shape3 = node("Concat", [dim(ctx, 0), dim(ctx, 1), init(np.array([H], np.int64))], axis=0)
    ctx = node("Reshape", [ctx, shape3])
    x = ln(node("Add", [linear(ctx, H, H), x]))
    f = linear(x, H, F)
    f = node("Mul", [node("Mul", [f, node("Add", [node("Erf", [node("Div", [f, init(np.array(1.4142135, np.float32))])]), init(np.array(1.0, np.float32))])]), init(np.array(0.5, np.float32))])
    x = ln(node("Add", [linear(f, F, H), x]))
nodes[-1].output[0] = "last_hidden_state"
ins = [h.make_tensor_value_info(n, T.INT64, ["batch", "sequence"]) for n in (ids, mask, tt)]
out = h.make_tensor_value_info("last_hidden_state", T.FLOAT, ["batch", "sequence", H])
g = h.make_graph(nodes, "minilm", ins, [out], inits)
model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

with tempfile.TemporaryDirectory() as d:
    fp32 = os.path.join(d, "fp32.onnx")
    onnx.save(model, fp32)
    quantize_dynamic(fp32, sys.argv[1], weight_type=QuantType.QInt8)
