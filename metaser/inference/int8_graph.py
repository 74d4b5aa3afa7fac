"""The ``static`` int8 graph: which nodes become int8, and how (ONNX graph surgery).

Three rewrites, all on the encoder; everything else (the waveform convolution, norms, GELU,
attention products, the heads) stays fp32:

* ``taps``: a plain 1-D convolution (one group, no padding; the CNN's layers after the first) as
  a sum over its kernel taps of int8 matrix products, ``y[t] = sum_j x[s*t + j] @ W_j``. Its input
  is quantised **per frame**, symmetrically to 8 bits (each frame's own largest magnitude: a
  quiet frame keeps its resolution, and a frame's value never depends on the other frames or
  utterances of the batch); the weights are int8 per output channel. ``MatMulIntegerToFloat``
  gives float outputs, scaled back per frame. (Per-tensor ranges flatten the CNN's near-silent
  frames to zero, and the feature projection's layer norm then magnifies that error.
  Asymmetric per-frame ranges cost a per-frame zero-point correction for no measurable gain.)
* ``qlinearconv``: any other convolution (WavLM's grouped positional convolution) as
  ``QLinearConv`` with fixed input / output ranges from calibration.
* ``matmul``: a linear layer (MatMul with a constant 2-D weight, both sides >= 16) as
  ``QuantizeLinear`` (fixed range from calibration, shared by the layers reading one tensor)
  + ``MatMulIntegerToFloat`` with int8 per-column weights, its bias ``Add`` folded in.

Ranges are fixed, or per frame, never per batch: an utterance's answer does not depend on the
other utterances in its batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Int8Plan", "plan_int8", "collect_ranges", "rewrite_static", "MIN_LINEAR_SIDE", "ENCODER_SCOPE"]

MIN_LINEAR_SIDE = 16  # smaller linear layers (WavLM's 64 x 8 position gate) stay fp32
#: node-name scopes of the encoder's linear layers (transformers' wav2vec2-family module names)
ENCODER_SCOPE = re.compile(r"/(encoder|feature_projection|layers\.\d+/(attention|feed_forward))/")
MS_DOMAIN = "com.microsoft"


@dataclass
class Int8Plan:
    """Node names per rewrite (see the module doc)."""

    taps: list[str] = field(default_factory=list)
    qlinearconv: list[str] = field(default_factory=list)
    matmul: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"conv_taps": len(self.taps), "conv_qlinear": len(self.qlinearconv), "linear": len(self.matmul)}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph) -> dict:
    """Initializers by name, also under the names of the Identity nodes that copy them (the
    exporter shares tensors that way)."""
    out = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Identity" and n.input[0] in out:
            out[n.output[0]] = out[n.input[0]]
    return out


def plan_int8(model) -> Int8Plan:
    """What :func:`rewrite_static` changes in ``model`` (an fp32 ``onnx.ModelProto``).

    Convolutions: every one with a constant weight but the waveform convolution (one input
    channel). Linear layers: MatMuls inside the encoder's modules (:data:`ENCODER_SCOPE`, matched
    on the exporter's node names, which follow the module path), not the heads'.
    """
    weights = _constants(model.graph)
    plan = Int8Plan()
    for n in model.graph.node:
        if len(n.input) < 2 or n.input[1] not in weights:
            continue
        w = list(weights[n.input[1]].dims)
        if n.op_type == "Conv" and len(w) == 3:  # (C_out, C_in / groups, k)
            if len(n.input) > 2 and n.input[2] and n.input[2] not in weights:
                continue  # a computed bias: leave it alone
            a = _attrs(n)
            group, pads = int(a.get("group", 1)), list(a.get("pads", [0, 0]))
            if w[1] == 1 and group == 1:
                continue  # the waveform convolution: one input channel, cheap, the raw signal
            plain = group == 1 and not any(pads) and all(d == 1 for d in a.get("dilations", [1]))
            (plan.taps if plain else plan.qlinearconv).append(n.name)
        elif n.op_type == "MatMul" and len(w) == 2 and min(w) >= MIN_LINEAR_SIDE and ENCODER_SCOPE.search(n.name):
            plan.matmul.append(n.name)
    return plan


def _range_tensors(model, plan: Int8Plan) -> list[str]:
    by_name = {n.name: n for n in model.graph.node}
    out = [by_name[k].input[0] for k in plan.matmul]
    for k in plan.qlinearconv:
        out += [by_name[k].input[0], by_name[k].output[0]]
    return sorted(set(out))


def collect_ranges(model, plan: Int8Plan, audio: Sequence[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Min / max of every tensor that gets a fixed range, over ``audio`` run one at a time (fp32)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    names = _range_tensors(model, plan)
    if not names:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in names)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    inputs = {i.name for i in sess.get_inputs()}
    for x in audio:
        feed = {"waveforms": x[None].astype(np.float32), "lengths": np.array([x.shape[0]], dtype=np.int64)}
        feed = {k: v for k, v in feed.items() if k in inputs}
        for t, v in zip(names, sess.run(names, feed)):
            lo[t], hi[t] = min(lo[t], float(v.min())), max(hi[t], float(v.max()))
    return {t: (lo[t], hi[t]) for t in names}


def _uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric uint8 scale and zero point covering [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def _int8_weights(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per slice along ``axis`` (the output channels): (int8 weights, scales)."""
    w = w.astype(np.float64)
    red = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.abs(w).max(axis=red) / 127.0
    scale[scale == 0] = 1.0
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


class _Builder:
    """New nodes and constants for one graph, with unique names."""

    def __init__(self, graph):
        self.graph = graph
        self.nodes: list = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}/int8_{self._n}"

    def const(self, value, dtype, base: str = "c") -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def op(self, op_type: str, inputs: list[str], base: str, outputs: list[str] | None = None, **attrs) -> str:
        from onnx import helper

        outs = outputs or [self.name(base)]
        domain = MS_DOMAIN if op_type == "MatMulIntegerToFloat" else ""
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(base), domain=domain, **attrs))
        return outs[0]


def _taps(b: _Builder, node, w: np.ndarray, bias: np.ndarray | None) -> None:
    """y = conv1d(x, w) (B, C, T) -> (B, N, T') as per-frame-quantised int8 taps (module doc)."""
    from onnx import TensorProto, helper

    a = _attrs(node)
    n_out, c, k = w.shape
    s = int(a.get("strides", [1])[0])
    base = node.name
    f32, i64 = np.float32, np.int64
    xt = b.op("Transpose", [node.input[0]], base, perm=[0, 2, 1])  # (B, T, C)
    rows = b.op("Reshape", [xt, b.const([-1, c], i64)], base)  # (B*T, C)
    pool_in = b.op("Unsqueeze", [rows, b.const([0], i64)], base)  # (1, B*T, C)
    peak = b.op("GlobalMaxPool", [b.op("Abs", [pool_in], base)], base)  # (1, B*T, 1) largest magnitude per frame
    scale = b.op("Mul", [b.op("Max", [peak, b.const(1e-30, f32)], base), b.const(1.0 / 127.0, f32)], base)
    scale1 = b.op("Reshape", [scale, b.const([-1], i64)], base)  # (B*T,)
    mid = helper.make_tensor("value", TensorProto.UINT8, [1], [128])
    zp = b.op("ConstantOfShape", [b.op("Shape", [scale1], base)], base, value=mid)  # (B*T,) all 128
    q = b.op("QuantizeLinear", [rows, scale1, zp], base, axis=0)  # (B*T, C) uint8, 128 = 0
    q = b.op("Reshape", [q, b.op("Shape", [xt], base)], base)  # (B, T, C)
    bt1 = b.op("Concat", [b.op("Shape", [xt], base, start=0, end=2), b.const([1], i64)], base, axis=0)
    frame_scale = b.op("Reshape", [scale1, bt1], base)  # (B, T, 1)
    t = b.op("Shape", [xt], base, start=1, end=2)
    last = b.op(
        "Mul",
        [b.op("Div", [b.op("Sub", [t, b.const([k], i64)], base), b.const([s], i64)], base), b.const([s], i64)],
        base,
    )
    one_f, zp_a = b.const(1.0, f32), b.const(128, np.uint8)
    acc = None
    for j in range(k):
        wq, ws = _int8_weights(w[:, :, j].T, axis=1)  # (C, N) int8, (N,)
        sl = [b.const([j], i64), b.op("Add", [last, b.const([j + 1], i64)], base), b.const([1], i64), b.const([s], i64)]
        y = b.op(
            "MatMulIntegerToFloat",
            [
                b.op("Slice", [q, *sl], base),
                b.const(wq, np.int8),
                one_f,
                b.const(ws, f32),
                zp_a,
                b.const(np.zeros(n_out), np.int8),
            ],
            base,
        )  # (B, T', N), in units of each frame's scale
        y = b.op("Mul", [y, b.op("Slice", [frame_scale, *sl], base)], base)
        acc = y if acc is None else b.op("Add", [acc, y], base)
    if bias is not None:
        acc = b.op("Add", [acc, b.const(bias, f32)], base)
    b.op("Transpose", [acc], base, outputs=[node.output[0]], perm=[0, 2, 1])  # (B, N, T')


def _qlinearconv(b: _Builder, node, w: np.ndarray, bias: np.ndarray | None, ranges) -> None:
    """Conv -> QuantizeLinear, QLinearConv (int8 per-channel weights, int32 bias), DequantizeLinear."""
    from onnx import helper

    sx, zx = _uint8_params(*ranges[node.input[0]])
    sy, zy = _uint8_params(*ranges[node.output[0]])
    wq, ws = _int8_weights(w, axis=0)
    base = node.name
    x_s, x_z = b.const(sx, np.float32), b.const(zx, np.uint8)
    y_s, y_z = b.const(sy, np.float32), b.const(zy, np.uint8)
    xq = b.op("QuantizeLinear", [node.input[0], x_s, x_z], base)
    ins = [xq, x_s, x_z, b.const(wq, np.int8), b.const(ws, np.float32), b.const(np.zeros(len(ws)), np.int8), y_s, y_z]
    if bias is not None:
        ins.append(b.const(np.round(bias / (sx * ws)), np.int32))
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    yq = b.op("QLinearConv", ins, base, **attrs)
    b.op("DequantizeLinear", [yq, y_s, y_z], base, outputs=[node.output[0]])


def rewrite_static(model, plan: Int8Plan, ranges: dict[str, tuple[float, float]]):
    """A copy of ``model`` with the nodes of ``plan`` in int8 (see the module doc)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    weights = _constants(g)
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    b = _Builder(g)
    todo = {
        **dict.fromkeys(plan.taps, "taps"),
        **dict.fromkeys(plan.qlinearconv, "qlinear"),
        **dict.fromkeys(plan.matmul, "matmul"),
    }
    quantized: dict[str, tuple[str, str, str]] = {}  # activation -> (uint8 tensor, scale, zero point)
    folded: set[str] = set()  # bias Adds taken into MatMulIntegerToFloat
    for n in g.node:
        kind = todo.get(n.name)
        if n.name in folded:
            continue
        if kind is None:
            b.nodes.append(n)
            continue
        w = numpy_helper.to_array(weights[n.input[1]])
        if kind != "matmul":
            bias = numpy_helper.to_array(weights[n.input[2]]) if len(n.input) > 2 and n.input[2] else None
            (_taps(b, n, w, bias) if kind == "taps" else _qlinearconv(b, n, w, bias, ranges))
            continue
        x = n.input[0]
        if x not in quantized:
            s, z = _uint8_params(*ranges[x])
            x_s, x_z = b.const(s, np.float32), b.const(z, np.uint8)
            quantized[x] = (b.op("QuantizeLinear", [x, x_s, x_z], x), x_s, x_z)
        xq, x_s, x_z = quantized[x]
        wq, ws = _int8_weights(w, axis=1)  # (K, N), per column
        ins = [xq, b.const(wq, np.int8), x_s, b.const(ws, np.float32), x_z, b.const(np.zeros(w.shape[1]), np.int8)]
        output = n.output[0]
        add = consumers.get(output, [])
        if len(add) == 1 and add[0].op_type == "Add" and add[0].name:
            other = [i for i in add[0].input if i != output]
            if len(other) == 1 and other[0] in weights and list(weights[other[0]].dims) == [w.shape[1]]:
                ins.append(weights[other[0]].name)  # bias (N,)
                output = add[0].output[0]
                folded.add(add[0].name)
        b.op("MatMulIntegerToFloat", ins, n.name, outputs=[output])
    del g.node[:]
    g.node.extend(b.nodes)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if not any(o.domain == MS_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return out
