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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from llvmlite import ir

#: samples per vector; samples per pass (a chunk's rows stay in the L1 cache); the rows' stride
#: in the scratch (not a multiple of 64 entries: rows 512 bytes apart would share cache sets);
#: sums held in registers at once, per pass
LANES, CHUNK, STRIDE, BLOCK = 8, 64, 72, 16
#: a sum of many products is built as this many interleaved sums
CHAINS = 4

#: exp(v) as regcore._kernels._exp computes it: v clamped to [-708, 709], n = floor(v log2(e) +
#: 1/2), r = v - n ln 2 in two parts, a degree-13 polynomial in r, times 2^n built from its bits
_EXP_COEFFICIENTS = (
    1.6059043836821613e-10,
    2.08767569878681e-09,
    2.505210838544172e-08,
    2.755731922398589e-07,
    2.7557319223985893e-06,
    2.48015873015873e-05,
    0.0001984126984126984,
    0.001388888888888889,
    0.008333333333333333,
    0.041666666666666664,
    0.16666666666666666,
    0.5,
    1.0,
    1.0,
)


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


class _Emitter:
    """An ``ir.IRBuilder`` with the vector operations the kernel is written in."""

    def __init__(self, function: ir.Function, dtype: str) -> None:
        self.function = function
        self.b = ir.IRBuilder(function.append_basic_block("entry"))
        self.t = ir.DoubleType() if dtype == "float64" else ir.FloatType()
        self.float64 = dtype == "float64"
        self.vt = ir.VectorType(self.t, LANES)
        self.vd = ir.VectorType(ir.DoubleType(), LANES)
        self.i64 = ir.IntType(64)
        self.vi = ir.VectorType(self.i64, LANES)
        module, suffix = function.module, "f64" if self.float64 else "f32"
        self.fmuladd = ir.Function(
            module, ir.FunctionType(self.vt, [self.vt] * 3), f"llvm.fmuladd.v{LANES}{suffix}"
        )
        self.fmuladd_d = (
            self.fmuladd
            if self.float64
            else ir.Function(
                module, ir.FunctionType(self.vd, [self.vd] * 3), f"llvm.fmuladd.v{LANES}f64"
            )
        )
        self.floor = ir.Function(
            module, ir.FunctionType(self.vd, [self.vd]), f"llvm.floor.v{LANES}f64"
        )
        self.reduce = ir.Function(
            module,
            ir.FunctionType(self.t, [self.t, self.vt]),
            f"llvm.vector.reduce.fadd.v{LANES}{suffix}",
        )

    # --- values
    def int(self, value: int) -> ir.Constant:
        return ir.Constant(self.i64, value)

    def const(self, value: float, vector: ir.VectorType | None = None) -> ir.Constant:
        """``value`` in every lane of ``vector`` (the network's vector type by default)."""
        vector = vector or self.vt
        return ir.Constant(vector, [ir.Constant(vector.element, value)] * LANES)

    def splat(self, scalar: ir.Value, vector: ir.VectorType | None = None) -> ir.Value:
        vector = vector or self.vt
        undefined = ir.Constant(vector, ir.Undefined)
        one = self.b.insert_element(undefined, scalar, ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return self.b.shuffle_vector(one, undefined, lanes)

    def at(self, base: ir.Value, index: ir.Value) -> ir.Value:
        return self.b.gep(base, [index], inbounds=True)

    def vload(self, base: ir.Value, index: ir.Value) -> ir.Value:
        return self.b.load(self.b.bitcast(self.at(base, index), self.vt.as_pointer()), align=8)

    def vstore(self, value: ir.Value, base: ir.Value, index: ir.Value) -> None:
        self.b.store(value, self.b.bitcast(self.at(base, index), self.vt.as_pointer()), align=8)

    # --- arithmetic
    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """``a * b + c``, fused where the core can."""
        return self.b.call(self.fmuladd, [a, b, c])

    def dot(self, pairs: Sequence[tuple[ir.Value, ir.Value]], start: ir.Value | None) -> ir.Value:
        """``start + sum a * b`` over ``pairs``, as up to :data:`CHAINS` interleaved sums (one
        per 8 terms): one sum of many terms waits on its multiply-adds one after the other."""
        count = max(1, min(CHAINS, len(pairs) // 8))  # short sums: extra chains cost more
        chains: list[ir.Value | None] = [start] + [None] * (count - 1)
        for index, (a, b) in enumerate(pairs):
            k = index % len(chains)
            chains[k] = self.b.fmul(a, b) if chains[k] is None else self.fma(a, b, chains[k])
        while len(chains) > 1:
            chains = [
                self.b.fadd(chains[k], chains[k + 1]) if k + 1 < len(chains) else chains[k]
                for k in range(0, len(chains), 2)
            ]
        return chains[0]

    def to_double(self, value: ir.Value) -> ir.Value:
        return value if self.float64 else self.b.fpext(value, self.vd)

    def to_t(self, value: ir.Value) -> ir.Value:
        return value if self.float64 else self.b.fptrunc(value, self.vt)

    def positive_part(self, value: ir.Value, of: ir.Value) -> ir.Value:
        """``value`` where ``of > 0``, else 0 (relu, and its derivative)."""
        zero = self.const(0.0)
        return self.b.select(self.b.fcmp_ordered(">", of, zero), value, zero)

    def exp(self, v: ir.Value) -> ir.Value:
        """exp of a float64 vector, as regcore._kernels._exp computes it."""
        b, vd = self.b, self.vd
        v = b.select(b.fcmp_ordered(">", v, self.const(709.0, vd)), self.const(709.0, vd), v)
        v = b.select(b.fcmp_ordered("<", v, self.const(-708.0, vd)), self.const(-708.0, vd), v)
        half = self.const(0.5, vd)
        n = b.call(
            self.floor, [b.call(self.fmuladd_d, [v, self.const(1.4426950408889634, vd), half])]
        )
        r = b.fsub(v, b.fmul(n, self.const(0.6931471803691238, vd)))
        r = b.fsub(r, b.fmul(n, self.const(1.9082149292705877e-10, vd)))
        p = self.const(_EXP_COEFFICIENTS[0], vd)
        for c in _EXP_COEFFICIENTS[1:]:
            p = b.call(self.fmuladd_d, [p, r, self.const(c, vd)])
        bits = b.add(
            b.fptosi(n, self.vi), ir.Constant(self.vi, [ir.Constant(self.i64, 1023)] * LANES)
        )
        bits = b.shl(bits, ir.Constant(self.vi, [ir.Constant(self.i64, 52)] * LANES))
        return b.fmul(p, b.bitcast(bits, vd))

    # --- control flow
    def loop(
        self,
        stop: ir.Value,
        step: int,
        body: Callable[[ir.Value, list[ir.Value]], list[ir.Value] | None],
        carried: Sequence[ir.Value] = (),
    ) -> list[ir.Value]:
        """``for t in range(0, stop, step)``, ``body(t, values)`` returning the next values of
        ``carried`` (loop-carried values: sums); returns their final values."""
        b = self.b
        before = b.block
        head = self.function.append_basic_block("loop")
        inside = self.function.append_basic_block("loop.body")
        after = self.function.append_basic_block("loop.end")
        b.branch(head)
        b.position_at_end(head)
        t = b.phi(self.i64, "t")
        t.add_incoming(self.int(0), before)
        values = []
        for start in carried:
            value = b.phi(start.type)
            value.add_incoming(start, before)
            values.append(value)
        b.cbranch(b.icmp_signed("<", t, stop), inside, after)
        b.position_at_end(inside)
        following = body(t, values) or []
        end = b.block
        t.add_incoming(b.add(t, self.int(step)), end)
        for value, next_value in zip(values, following, strict=True):
            value.add_incoming(next_value, end)
        b.branch(head)
        b.position_at_end(after)
        return values


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
    e = _Emitter(function, dtype)
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
