"""Vector operations in LLVM IR (llvmlite), the words the fused kernels of
:mod:`regcore._fused_ir` are written in: lanes of samples, multiply-adds, exp, loops."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

#: samples per vector: 8 float64 fill a 512-bit register (two 256-bit ones elsewhere)
LANES = 8
#: a sum of many products is built as up to this many interleaved sums
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


class VectorBuilder:
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
