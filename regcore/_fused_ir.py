"""The LLVM IR of a fused batch kernel (see :mod:`regcore.fused`), built with llvmlite.

One function per network shape, C signature
``void kernel(T* theta, T* grad, T* x, T* y, i64 width, i64 count, T* scratch)``:

- ``theta``, ``grad``: one model's parameters, layer after layer ``W[l]`` (C order) then
  ``b[l]`` (as :func:`regcore.compiled_engine.kernel_layout`); ``grad`` becomes the gradient of
  the batch's data term ``(1/count) sum L``;
- ``x`` ``(n[0], width)`` and ``y`` ``(n_out, width)``: the batch, C order, ``count`` samples
  then zeros (``width`` a multiple of 8);
- ``scratch``: :func:`scratch_size` entries.

The batch goes through in chunks of :data:`CHUNK` samples. A chunk's inputs and targets are
copied into the scratch, then each pass over the chunk reads and writes scratch rows only,
:data:`LANES` samples at a time as vectors: the forward pass a block of units at a time, the
output layer and the loss's delta (0 past ``count``), and backward, per layer, the weight
gradient (a block of sums kept in registers) and the deltas of the layer below; the first
layer's deltas, when it has few inputs, go straight into its gradient's sums, never stored.
The sums of a chunk are added to per-parameter lane sums, reduced once at the end.

Arithmetic follows the generic kernels of :mod:`regcore._kernels` (relu, ``tanh = 1 - 2 /
(exp(2z) + 1)``, sigmoid or softmax output, exp by the same polynomial, exp in float64 for
float32 networks); only the order of the sums differs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from llvmlite import ir

from regcore._vector_ir import LANES, VectorBuilder

#: samples per pass (a chunk's rows stay in the L1 cache); the rows' stride in the scratch (not
#: a multiple of 64 entries: rows 512 bytes apart would share cache sets); sums held in
#: registers at once, per pass
CHUNK, STRIDE, BLOCK = 64, 72, 16


def _blocks(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class Layout:
    """Where things are: entries of a model's parameter block, and rows of the scratch (the
    chunk's inputs and targets, hidden activations, every layer's deltas), then the lane sums
    (``LANES`` entries per parameter)."""

    sizes: tuple[int, ...]

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def weight(self, layer: int, i: int, j: int) -> int:
        before = sum(a * b + b for a, b in itertools.pairwise(self.sizes[: layer + 1]))
        return before + i * self.sizes[layer] + j

    def bias(self, layer: int, i: int) -> int:
        return self.weight(layer, 0, 0) + self.sizes[layer] * self.sizes[layer + 1] + i

    @property
    def size(self) -> int:
        return sum(a * b + b for a, b in itertools.pairwise(self.sizes))

    def input_row(self, j: int) -> int:
        return j

    def target_row(self, i: int) -> int:
        return self.sizes[0] + i

    def activation_row(self, layer: int, i: int) -> int:
        """Hidden layer ``layer``'s unit ``i``, after the activation."""
        return self.sizes[0] + self.sizes[-1] + sum(self.sizes[1 : layer + 1]) + i

    def delta_row(self, layer: int, i: int) -> int:
        """Layer ``layer``'s delta dZ for unit ``i``."""
        return self.activation_row(self.n_layers - 1, 0) + sum(self.sizes[1 : layer + 1]) + i

    @property
    def rows(self) -> int:
        return self.delta_row(self.n_layers, 0)

    @property
    def sums_at(self) -> int:
        return self.rows * STRIDE


def scratch_size(sizes: Sequence[int]) -> int:
    """Entries of scratch the kernel of a network needs."""
    layout = Layout(tuple(sizes))
    return layout.sums_at + layout.size * LANES


def module_ir(sizes: Sequence[int], activation: str, dtype: str) -> str:
    """The LLVM IR (text) of the fused kernel of a network ``n[0..L]``."""
    layout = Layout(tuple(int(n) for n in sizes))
    sizes = layout.sizes
    top, n_out, n_in0 = layout.n_layers - 1, sizes[-1], sizes[0]
    module = ir.Module(name="regcore_fused")
    element = ir.DoubleType() if dtype == "float64" else ir.FloatType()
    pointer, i64 = element.as_pointer(), ir.IntType(64)
    signature = ir.FunctionType(ir.VoidType(), [pointer] * 4 + [i64, i64, pointer])
    function = ir.Function(module, signature, name="kernel")
    theta, grad, x, y, width, count, scratch = function.args
    for argument in (theta, grad, x, y, scratch):
        argument.add_attribute("noalias")
    e = VectorBuilder(function, dtype)
    b = e.b

    def row(index: int, t: ir.Value) -> ir.Value:
        return b.add(e.int(index * STRIDE), t)

    def sums(entry: int) -> ir.Value:
        return e.int(layout.sums_at + entry * LANES)

    weights = {}
    for layer in range(layout.n_layers):
        for i in range(sizes[layer + 1]):
            for j in range(sizes[layer]):
                weights[layer, i, j] = b.load(e.at(theta, e.int(layout.weight(layer, i, j))))
            weights[layer, i, "b"] = b.load(e.at(theta, e.int(layout.bias(layer, i))))

    def w(*key: object) -> ir.Value:
        return e.splat(weights[key])

    for entry in range(layout.size):
        e.vstore(e.const(0.0), scratch, sums(entry))
    scale = b.fdiv(ir.Constant(ir.DoubleType(), 1.0), b.sitofp(count, ir.DoubleType()))
    if dtype != "float64":  # as the generic kernel: (1 / count) in the network's dtype
        scale = b.fpext(b.fptrunc(scale, element), ir.DoubleType())
    scale = e.splat(scale, e.vd)
    chunk = e.int(CHUNK)

    # for c0 in range(0, width, CHUNK): the chunk [c0, c0 + n), n a multiple of LANES
    before = b.block
    head = function.append_basic_block("chunk")
    body = function.append_basic_block("chunk.body")
    done = function.append_basic_block("done")
    b.branch(head)
    b.position_at_end(head)
    c0 = b.phi(i64, "c0")
    c0.add_incoming(e.int(0), before)
    b.cbranch(b.icmp_signed("<", c0, width), body, done)
    b.position_at_end(body)
    n = b.sub(width, c0)
    n = b.select(b.icmp_signed("<", n, chunk), n, chunk)

    def inputs(layer: int, t: ir.Value, which: Sequence[int]) -> dict[int, ir.Value]:
        if layer == 0:
            return {j: e.vload(scratch, row(layout.input_row(j), t)) for j in which}
        return {j: e.vload(scratch, row(layout.activation_row(layer - 1, j), t)) for j in which}

    def deltas(layer: int, t: ir.Value, which: Sequence[int]) -> dict[int, ir.Value]:
        return {i: e.vload(scratch, row(layout.delta_row(layer, i), t)) for i in which}

    def pre_activation(layer: int, i: int, ins: dict[int, ir.Value]) -> ir.Value:
        return e.dot([(w(layer, i, j), ins[j]) for j in range(sizes[layer])], w(layer, i, "b"))

    # --- the passes over a chunk: each gets t, the chunk's first sample of this iteration

    def copy(t: ir.Value, _: list, source: ir.Value, j: int, into: int) -> None:
        """Row ``j`` of ``x`` or ``y`` into scratch row ``into``."""
        at = b.add(b.mul(e.int(j), width), b.add(c0, t))
        e.vstore(e.vload(source, at), scratch, row(into, t))

    def forward(t: ir.Value, _: list, layer: int, units: range) -> None:
        ins = inputs(layer, t, range(sizes[layer]))
        for i in units:
            z = pre_activation(layer, i, ins)
            if activation == "relu":
                a = e.positive_part(z, z)
            else:
                twice = b.fmul(e.to_double(z), e.const(2.0, e.vd))
                ratio = b.fdiv(e.const(2.0, e.vd), b.fadd(e.exp(twice), e.const(1.0, e.vd)))
                a = e.to_t(b.fsub(e.const(1.0, e.vd), ratio))
            e.vstore(a, scratch, row(layout.activation_row(layer, i), t))

    lane = ir.Constant(e.vi, list(range(LANES)))

    def output(t: ir.Value, _: list) -> None:
        """The output layer and the loss's delta, (output activation - y) / count, for the
        batch's samples (0 on the columns past them)."""
        ins = inputs(top, t, range(sizes[top]))
        zs = [e.to_double(pre_activation(top, i, ins)) for i in range(n_out)]
        sample = b.add(e.splat(b.add(c0, t), e.vi), lane)
        in_batch = b.icmp_signed("<", sample, e.splat(count, e.vi))
        one = e.const(1.0, e.vd)
        if n_out == 1:
            probabilities = [b.fdiv(one, b.fadd(one, e.exp(b.fsub(e.const(0.0, e.vd), zs[0]))))]
        else:
            largest = zs[0]
            for z in zs[1:]:
                largest = b.select(b.fcmp_ordered(">", largest, z), largest, z)
            exps = [e.exp(b.fsub(z, largest)) for z in zs]
            total = exps[0]
            for value in exps[1:]:
                total = b.fadd(total, value)
            probabilities = [b.fdiv(value, total) for value in exps]
        for i, p in enumerate(probabilities):
            target = e.to_double(e.vload(scratch, row(layout.target_row(i), t)))
            delta = e.to_t(b.fmul(b.fsub(p, target), scale))
            delta = b.select(in_batch, delta, e.const(0.0))
            e.vstore(delta, scratch, row(layout.delta_row(top, i), t))

    def gradient(t: ir.Value, sums_: list, layer: int, pairs: list[tuple[int, int]]) -> list:
        """Sums of ``delta_i * input_j`` (the bias where j is n_in) for a block of entries."""
        n_in = sizes[layer]
        ds = deltas(layer, t, sorted({i for i, _ in pairs}))
        ins = inputs(layer, t, sorted({j for _, j in pairs if j < n_in}))
        return [
            b.fadd(value, ds[i]) if j == n_in else e.fma(ds[i], ins[j], value)
            for (i, j), value in zip(pairs, sums_, strict=True)
        ]

    def delta_below(t: ir.Value, ds: dict[int, ir.Value], layer: int, j: int) -> ir.Value:
        """The delta of layer ``layer - 1``'s unit j: (W.T delta)_j times the activation's
        derivative."""
        back = e.dot([(w(layer, i, j), ds[i]) for i in range(sizes[layer + 1])], None)
        a = e.vload(scratch, row(layout.activation_row(layer - 1, j), t))
        if activation == "relu":
            return e.positive_part(back, a)
        return b.fmul(b.fsub(e.const(1.0), b.fmul(a, a)), back)

    def backward(t: ir.Value, _: list, layer: int, below: range) -> None:
        """The deltas of layer ``layer - 1``'s units ``below``, into the scratch."""
        ds = deltas(layer, t, range(sizes[layer + 1]))
        for j in below:
            e.vstore(delta_below(t, ds, layer, j), scratch, row(layout.delta_row(layer - 1, j), t))

    def backward_to_gradient(t: ir.Value, sums_: list, below: range) -> list:
        """The first layer's deltas for its units ``below``, straight into the sums of their
        weight gradient: sums for (unit, input) pairs, the bias last, unit by unit."""
        ds = deltas(1, t, range(sizes[2]))
        ins = inputs(0, t, range(n_in0))
        following = iter(sums_)
        out = []
        for j in below:
            delta = delta_below(t, ds, 1, j)
            out += [e.fma(delta, ins[k], next(following)) for k in range(n_in0)]
            out.append(b.fadd(next(following), delta))
        return out

    # the chunk's inputs and targets; then the passes, bounded by n (LLVM, not knowing it,
    # does not unroll them whole, which would spill their sums out of the registers)
    for source, rows, first in ((x, n_in0, 0), (y, n_out, layout.target_row(0))):
        for j in range(rows):
            e.loop(n, LANES, partial(copy, source=source, j=j, into=first + j))

    for layer in range(top):
        for units in _blocks(sizes[layer + 1], BLOCK):
            e.loop(n, LANES, partial(forward, layer=layer, units=units))
    e.loop(n, LANES, output)
    # the first layer's gradient from its deltas directly, where a block of its units' sums fits
    direct = top >= 1 and BLOCK // (n_in0 + 1) >= 3
    for layer in range(top, 0 if direct else -1, -1):
        n_in, n_o = sizes[layer], sizes[layer + 1]
        for units in _blocks(n_o, min(n_o, 8)):
            for columns in _blocks(n_in + 1, max(1, BLOCK // len(units))):  # n_in: the bias
                pairs = [(i, j) for i in units for j in columns]
                zeros = [e.const(0.0)] * len(pairs)
                totals = e.loop(n, LANES, partial(gradient, layer=layer, pairs=pairs), zeros)
                for (i, j), total in zip(pairs, totals, strict=True):
                    entry = layout.bias(layer, i) if j == n_in else layout.weight(layer, i, j)
                    e.vstore(b.fadd(e.vload(scratch, sums(entry)), total), scratch, sums(entry))
        if layer > 1 or (layer == 1 and not direct):
            for below in _blocks(n_in, BLOCK):
                e.loop(n, LANES, partial(backward, layer=layer, below=below))
    if direct:
        for below in _blocks(sizes[1], BLOCK // (n_in0 + 1)):
            zeros = [e.const(0.0)] * (len(below) * (n_in0 + 1))
            totals = iter(e.loop(n, LANES, partial(backward_to_gradient, below=below), zeros))
            for j in below:
                for entry in [*(layout.weight(0, j, k) for k in range(n_in0)), layout.bias(0, j)]:
                    total = next(totals)
                    e.vstore(b.fadd(e.vload(scratch, sums(entry)), total), scratch, sums(entry))
    c0.add_incoming(b.add(c0, chunk), b.block)
    b.branch(head)

    b.position_at_end(done)
    for entry in range(layout.size):
        lanes = e.vload(scratch, sums(entry))
        total = b.call(e.reduce, [ir.Constant(e.t, 0.0), lanes], fastmath=("reassoc",))
        b.store(total, e.at(grad, e.int(entry)))
    b.ret_void()
    return str(module)
