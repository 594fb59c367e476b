"""numba kernels of the compiled engine (:mod:`regcore.compiled_engine`).

They follow :mod:`regcore.numpy_engine` operation by operation; only the order of the sums inside
the matrix products differs. One call trains each model for a number of epochs start to end (the
models are independent: their own data, batches and random draws); calls release the GIL, so
threads train several models at once.

Layout: every model's parameters are one block of ``S`` entries, layer after layer ``W[l]``
(``(n[l+1], n[l])``, C order) then ``b[l]``; data sets are ``X.T`` ``(n[0], columns)`` and the
targets one-hot ``(n_out, columns)``, each data set's columns padded to a multiple of 8. Samples
run innermost, so the loops over them vectorize; layers with many weights (:data:`BLAS_WEIGHTS`)
call BLAS (numba's ``np.dot``) instead. Where the network has a fused kernel
(:mod:`regcore.fused`), a model without dropout runs its batches' passes there instead
(:func:`_call_fused`), everything else of its epochs here.

Random draws: each model's ``np.random.RandomState`` (MT19937) continues here from its state, with
numpy's own algorithms: ``random_sample`` (``genrand_res53``) for dropout masks and the legacy
``shuffle`` (``random_interval``) for ``permutation``; the state goes back to the generator
afterwards, so the draws are the ones the numpy engine makes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# LLVM vectorizes a loop over several row views only after run-time checks that they do not
# overlap; its default limit on those checks (8) leaves most of these loops scalar. A process
# option, set before anything here compiles.
for _option in (
    "-runtime-memory-check-threshold=1024",
    "-vectorize-memory-check-threshold=1024",
    "-memory-check-merge-threshold=1024",
):
    llvm.set_option("regcore", _option)

#: codes of the settings the kernels branch on, by the names regcore's tables use (numba
#: compiles the kernels against these values: this is the one place they are written)
ACTIVATION_CODES = {"relu": 0, "tanh": 1}
OPTIMIZER_CODES = {"gd": 0, "momentum": 1, "rmsprop": 2, "adam": 3}
RELU, TANH = ACTIVATION_CODES["relu"], ACTIVATION_CODES["tanh"]
GD, MOMENTUM = OPTIMIZER_CODES["gd"], OPTIMIZER_CODES["momentum"]
RMSPROP, ADAM = OPTIMIZER_CODES["rmsprop"], OPTIMIZER_CODES["adam"]
#: a layer multiplies with BLAS when it has this many weights and is this wide on both sides;
#: smaller ones run the loops here (measured: BLAS calls cost more than they save below)
BLAS_WEIGHTS, BLAS_SIDE = 256, 8

_FLAGS = {"nsz", "contract", "reassoc", "arcp"}  # no nnan/ninf: divergence must stay visible


class KernelArgs(NamedTuple):
    """Everything a training call reads, in one value (built by
    :func:`regcore.compiled_engine.kernel_arguments`). ``K`` models, ``S`` parameters each.

    Shared by the models: ``activation`` and ``optimizer`` (codes), ``learning_rate``,
    ``constants`` (the optimizers' betas and epsilons, :data:`regcore.compiled_engine.
    OPTIMIZER_CONSTANTS`: an argument rather than globals, which numba would freeze into its
    disk cache when they live in another module), ``batch`` (mini-batch size), the layout
    (``sizes`` ``n[0..L]``; ``starts_w``, ``starts_b``: where ``W[l]`` and ``b[l]`` start in a
    model's block of ``block`` entries), ``fused`` (the address of the network's fused batch
    kernel, :mod:`regcore.fused`, or 0) and ``fused_scratch`` (the entries of scratch it needs).

    State, updated in place: ``params``, ``first``, ``second`` (K * S: parameters and the
    optimizer's moments), ``steps`` (K: updates so far); ``keys`` (K, 624) and ``positions``
    (K) hold each model's MT19937 generator.

    Data: ``x_t`` (n[0], columns) and ``y_t`` (n_out, columns), each data set's columns once;
    model ``k`` trains on ``count[k]`` columns from ``column[k]``.

    Per model: ``keep_prob`` (1 without dropout) and the step's penalty coefficients
    :class:`regcore.penalties.StepCoefficients` per entry (``l2_over_m``, ``decay_factor``,
    ``threshold``), each (K, 2, S): ``[k, 0]`` for full batches, ``[k, 1]`` for a smaller
    last batch.
    """

    activation: int
    optimizer: int
    learning_rate: float
    constants: np.ndarray
    batch: int
    sizes: np.ndarray
    starts_w: np.ndarray
    starts_b: np.ndarray
    block: int
    fused: int
    fused_scratch: int
    params: np.ndarray
    first: np.ndarray
    second: np.ndarray
    steps: np.ndarray
    keys: np.ndarray
    positions: np.ndarray
    x_t: np.ndarray
    y_t: np.ndarray
    column: np.ndarray
    count: np.ndarray
    keep_prob: np.ndarray
    l2_over_m: np.ndarray
    decay_factor: np.ndarray
    threshold: np.ndarray


@njit(cache=True, nogil=True)
def padded(m: int) -> int:
    """Columns for ``m`` samples: a multiple of 8, and not of 64 (rows 512 bytes apart share
    cache sets)."""
    width = -(-m // 8) * 8
    return width + 8 if width % 64 == 0 else width


# --- MT19937, as numpy's legacy RandomState ----------------------------------------------------


@njit(cache=True, nogil=True)
def _regenerate(key):
    n, m = 624, 397
    upper, lower, matrix = np.uint32(0x80000000), np.uint32(0x7FFFFFFF), np.uint32(0x9908B0DF)
    one, zero = np.uint32(1), np.uint32(0)
    for i in range(n - m):
        y = (key[i] & upper) | (key[i + 1] & lower)
        key[i] = key[i + m] ^ (y >> one) ^ (matrix if y & one else zero)
    for i in range(n - m, n - 1):
        y = (key[i] & upper) | (key[i + 1] & lower)
        key[i] = key[i + m - n] ^ (y >> one) ^ (matrix if y & one else zero)
    y = (key[n - 1] & upper) | (key[0] & lower)
    key[n - 1] = key[m - 1] ^ (y >> one) ^ (matrix if y & one else zero)


@njit(cache=True, nogil=True)
def _next32(key, pos):
    if pos[0] >= 624:
        _regenerate(key)
        pos[0] = 0
    y = key[pos[0]]
    pos[0] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@njit(cache=True, nogil=True)
def fill_uniform(key, pos, out):
    """``out[:] = rng.random_sample(out.size)``."""
    for i in range(out.size):
        a = _next32(key, pos) >> np.uint32(5)
        b = _next32(key, pos) >> np.uint32(6)
        out[i] = (a * 67108864.0 + b) / 9007199254740992.0


@njit(cache=True, nogil=True)
def _interval(key, pos, top):
    mask = np.uint64(top)
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> np.uint64(shift)
    while True:
        value = np.uint64(_next32(key, pos)) & mask
        if value <= np.uint64(top):
            return np.int64(value)


@njit(cache=True, nogil=True)
def permutation(key, pos, out):
    """``out[:] = rng.permutation(out.size)``."""
    n = out.size
    for i in range(n):
        out[i] = i
    for i in range(n - 1, 0, -1):
        j = _interval(key, pos, i)
        out[i], out[j] = out[j], out[i]


# --- exp and tanh that vectorize ----------------------------------------------------------------
# math.exp and math.tanh are calls into the C library, one sample at a time; these are the same
# functions as loops LLVM turns into vector code: exp by Cody-Waite reduction and a degree-13
# polynomial (within 1 ulp), 2^n from its bit pattern, and tanh from exp.


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _exp(x, out, bits):
    """``out = exp(x)`` over a row (``bits``: int64 scratch of the same length; ``out`` must not
    be ``x``: LLVM checks at run time that they do not overlap and, where they do, runs a scalar
    loop); arguments beyond [-708, 709] are clamped (exp(-708) ~ 3e-308 stands for 0)."""
    scale = bits.view(np.float64)
    for s in range(x.size):
        v = x[s]
        v = 709.0 if v > 709.0 else v
        v = -708.0 if v < -708.0 else v
        n = math.floor(v * 1.4426950408889634 + 0.5)
        r = (v - n * 0.6931471803691238) - n * 1.9082149292705877e-10
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        out[s] = p * r + 1.0
        bits[s] = (np.int64(n) + 1023) << 52
    for s in range(x.size):
        out[s] = out[s] * scale[s]


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _tanh(z, out, work, exps, bits):
    """``out = tanh(z) = 1 - 2 / (exp(2z) + 1)`` over a row (``work``, ``exps``, ``bits``:
    scratch). Within 4e-16 of numpy's tanh everywhere; near 0 that is an absolute, not a
    relative, bound, which is what an activation needs."""
    n = z.size
    for s in range(n):
        work[s] = 2.0 * z[s]
    _exp(work[:n], exps[:n], bits[:n])
    for s in range(n):
        out[s] = 1.0 - 2.0 / (exps[s] + 1.0)


# --- the layers ---------------------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _forward(w, b, a_in, z, blas):
    """``z = w @ a_in + b`` for a ``(n_out, n_in)`` weight matrix and ``(n_in, width)`` inputs."""
    n_out, n_in = w.shape
    if blas:
        np.dot(w, a_in, z)
        for i in range(n_out):
            row = z[i]
            bias = b[i]
            for s in range(row.size):
                row[s] += bias
        return
    for i in range(n_out):
        row = z[i]
        bias = b[i]
        weight = w[i, 0]
        first = a_in[0]
        for s in range(row.size):
            row[s] = bias + weight * first[s]
        for j in range(1, n_in):
            weight = w[i, j]
            inputs = a_in[j]
            for s in range(row.size):
                row[s] += weight * inputs[s]


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _weight_gradient(dz, a_in, gw, gb, blas, zero):
    """``gw = dz @ a_in.T`` and ``gb = dz.sum(axis=1)``."""
    n_out, n_in = gw.shape
    for i in range(n_out):
        row = dz[i]
        total = zero
        for s in range(row.size):
            total += row[s]
        gb[i] = total
    if blas:
        np.dot(dz, a_in.T, gw)
        return
    for i in range(n_out):
        row = dz[i]
        j = 0
        # four inputs per pass over the row: one load of it for four products
        while j + 4 <= n_in:
            x0, x1, x2, x3 = a_in[j], a_in[j + 1], a_in[j + 2], a_in[j + 3]
            t0, t1, t2, t3 = zero, zero, zero, zero
            for s in range(row.size):
                v = row[s]
                t0 += v * x0[s]
                t1 += v * x1[s]
                t2 += v * x2[s]
                t3 += v * x3[s]
            gw[i, j], gw[i, j + 1], gw[i, j + 2], gw[i, j + 3] = t0, t1, t2, t3
            j += 4
        while j < n_in:
            inputs = a_in[j]
            total = zero
            for s in range(row.size):
                total += row[s] * inputs[s]
            gw[i, j] = total
            j += 1


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _input_gradient(w, dz, da, blas):
    """``da = w.T @ dz``."""
    n_out, n_in = w.shape
    if blas:
        np.dot(w.T, dz, da)
        return
    for j in range(n_in):
        out = da[j]
        weight = w[0, j]
        first = dz[0]
        for s in range(out.size):
            out[s] = weight * first[s]
        for i in range(1, n_out):
            weight = w[i, j]
            rows = dz[i]
            for s in range(out.size):
                out[s] += weight * rows[s]


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _output_delta(z, y, count, scale, dz, work, bits):
    """``dz = (output activation(z) - y) * scale`` on the first ``count`` columns, 0 beyond:
    sigmoid for one output unit, softmax over the units otherwise."""
    n_out, width = z.shape
    zero = dz.dtype.type(0.0)
    x, e = work[:width], work[width : 2 * width]
    if n_out == 1:
        for s in range(width):
            x[s] = -z[0, s]
        _exp(x, e, bits[:width])
        for s in range(count):
            dz[0, s] = (1.0 / (1.0 + e[s]) - y[0, s]) * scale
    else:
        top = work[2 * width : 3 * width]
        total = work[3 * width : 4 * width]
        for s in range(width):
            top[s] = z[0, s]
            total[s] = 0.0
        for i in range(1, n_out):
            for s in range(width):
                top[s] = max(top[s], z[i, s])
        for i in range(n_out):
            for s in range(width):
                x[s] = z[i, s] - top[s]
            _exp(x, e, bits[:width])
            for s in range(width):
                dz[i, s] = e[s]
                total[s] += e[s]
        for i in range(n_out):
            for s in range(count):
                dz[i, s] = (dz[i, s] / total[s] - y[i, s]) * scale
    for i in range(n_out):
        for s in range(count, width):
            dz[i, s] = zero


@njit(cache=True, nogil=True, inline="always")
def _update(
    theta, grad, first, second, t, optimizer, rate, constants, l2, decay, threshold, has_l1
):
    """The numpy engine's step on a model's entries, in its order: the L2 gradient, decoupled
    decay, the optimizer, then L1's proximal step. ``l2``, ``decay`` and ``threshold`` hold the
    step's coefficients per entry (:class:`regcore.penalties.StepCoefficients`: 0, 1 and 0
    where an entry is not penalized, which leave a finite entry as it is, so the loops run
    without branches and vectorize); ``has_l1``: whether the model has an L1 part. (The
    settings come one by one, not as :class:`KernelArgs`: a call copies its arguments.)"""
    dtype = theta.dtype.type
    lr = dtype(rate)
    n = theta.size
    if optimizer == GD:
        for e in range(n):
            g = grad[e] + l2[e] * theta[e]
            theta[e] = theta[e] * decay[e] - g * lr
    elif optimizer == MOMENTUM:
        beta, rest = dtype(constants[0]), dtype(1.0 - constants[0])
        for e in range(n):
            g = grad[e] + l2[e] * theta[e]
            first[e] = first[e] * beta + g * rest
            theta[e] = theta[e] * decay[e] - first[e] * lr
    elif optimizer == RMSPROP:
        beta, rest, epsilon = dtype(constants[1]), dtype(1.0 - constants[1]), dtype(constants[2])
        for e in range(n):
            g = grad[e] + l2[e] * theta[e]
            second[e] = second[e] * beta + (g * g) * rest
            step = g / (dtype(math.sqrt(second[e])) + epsilon) * lr
            theta[e] = theta[e] * decay[e] - step
    else:
        beta1, rest1 = dtype(constants[3]), dtype(1.0 - constants[3])
        beta2, rest2, epsilon = dtype(constants[4]), dtype(1.0 - constants[4]), dtype(constants[5])
        bias2 = dtype(1.0 / (1.0 - constants[4] ** t))
        bias1 = dtype(rate / (1.0 - constants[3] ** t))
        for e in range(n):
            g = grad[e] + l2[e] * theta[e]
            first[e] = first[e] * beta1 + g * rest1
            second[e] = second[e] * beta2 + (g * g) * rest2
            step = first[e] / (dtype(math.sqrt(second[e] * bias2)) + epsilon) * bias1
            theta[e] = theta[e] * decay[e] - step
    if has_l1:
        for e in range(n):
            value = theta[e]
            magnitude = abs(value) - threshold[e]
            theta[e] = math.copysign(0.0 if magnitude <= 0.0 else magnitude, value)  # NaN stays


# --- per-shape batch kernels, called by address -------------------------------------------------


@intrinsic
def _call_fused(typingctx, address, theta, grad, x, y, width, count, scratch):
    """Call the batch kernel at ``address`` (a numba ``cfunc`` of :mod:`regcore.fused`, C
    signature ``void(T* theta, T* grad, T* x, T* y, int64 width, int64 count, T* scratch)``):
    the arrays go as their data pointers."""
    sig = types.void(address, theta, grad, x, y, width, count, scratch)

    def codegen(context, builder, signature, args):
        arrays = (1, 2, 3, 4, 7)
        values = []
        for i, value in enumerate(args[1:], start=1):
            if i in arrays:
                array = context.make_array(signature.args[i])(context, builder, value)
                values.append(array.data)
            else:
                values.append(value)
        function = ir.FunctionType(ir.VoidType(), [value.type for value in values])
        pointer = builder.inttoptr(args[0], function.as_pointer())
        builder.call(pointer, values)
        return context.get_dummy_value()

    return sig, codegen


# --- one model, all its epochs ------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _aligned_zeros(size, like):
    """Zeros of ``like``'s dtype starting on a 64-byte boundary (a cache line): vectors that
    straddle two lines load at half speed (measured: the fused kernel 25% slower)."""
    raw = np.zeros(size + 64 // like.itemsize, dtype=like.dtype)
    shift = (-raw.ctypes.data % 64) // like.itemsize
    return raw[shift : shift + size]


@njit(cache=True, nogil=True)
def _workspace(models, args):
    """Buffers for training ``models`` one after the other (sized for the largest; reused: a
    model's passes write everything they read, and a call's allocations cost more than its
    first epoch)."""
    params, sizes = args.params, args.sizes
    n_layers = sizes.size - 1
    rows = 0
    for layer in range(n_layers):
        rows += sizes[layer + 1]
    largest, generic, dropout, fused = 1, False, False, False
    for k in models:
        largest = max(largest, args.count[k])
        dropout |= args.keep_prob[k] < 1.0
        generic |= args.fused == 0 or args.keep_prob[k] < 1.0
        fused |= args.fused != 0 and args.keep_prob[k] == 1.0
    batch = min(args.batch, largest)
    width = padded(batch)
    hidden = rows - sizes[n_layers]
    generic_rows = rows * width if generic else 1
    return (
        np.zeros(args.block, dtype=params.dtype),  # grad
        _aligned_zeros(sizes[0] * width, params),  # the batch's inputs
        _aligned_zeros(sizes[n_layers] * width, params),  # and targets
        (
            np.zeros(generic_rows, dtype=params.dtype),  # z
            np.zeros(generic_rows, dtype=params.dtype),  # a, after any dropout mask
            np.zeros(generic_rows, dtype=params.dtype),  # a before it (tanh)
            np.zeros(generic_rows, dtype=params.dtype),  # deltas
            np.zeros(4 * width, dtype=np.float64),  # exp's and tanh's scratch
            np.zeros(width, dtype=np.int64),
            np.zeros(hidden * batch + width if dropout else 1, dtype=np.float64),  # draws
        ),
        _aligned_zeros(args.fused_scratch if fused else 1, params),
        np.arange(largest),  # the sample order
    )


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _train_model(k, epochs, args, workspace):
    """Model ``k``: ``epochs`` epochs on its samples, the columns ``column[k] .. column[k] +
    count[k]`` of ``x_t`` and ``y_t``, in ``workspace`` (:func:`_workspace`)."""
    params, sizes = args.params, args.sizes
    block, x_t, y_t = args.block, args.x_t, args.y_t
    column, m, keep_prob = args.column[k], args.count[k], args.keep_prob[k]
    key, pos = args.keys[k], args.positions[k : k + 1]
    grad, xb, yb, buffers, scratch, orders = workspace
    draws = buffers[6]
    dtype = params.dtype.type
    zero = dtype(0.0)
    n_layers = sizes.size - 1
    theta = params[k * block : (k + 1) * block]
    first_k = args.first[k * block : (k + 1) * block]
    second_k = args.second[k * block : (k + 1) * block]
    batch = min(args.batch, m)
    rows = np.zeros(n_layers + 1, dtype=np.int64)  # where each layer's rows start
    for layer in range(n_layers):
        rows[layer + 1] = rows[layer] + sizes[layer + 1]
    hidden = rows[n_layers - 1]
    n_in0, n_out = sizes[0], sizes[n_layers]
    dropout = keep_prob < 1.0
    fused = args.fused != 0 and not dropout
    has_l1 = False
    for e in range(block):
        has_l1 |= args.threshold[k, 0, e] != 0.0
    order = orders[:m]
    for s in range(m):
        order[s] = s
    blas = np.zeros(n_layers, dtype=np.bool_)
    for layer in range(n_layers):
        n_in, n_o = sizes[layer], sizes[layer + 1]
        blas[layer] = n_in * n_o >= BLAS_WEIGHTS and min(n_in, n_o) >= BLAS_SIDE

    for epoch in range(epochs):
        if batch < m:
            permutation(key, pos, order)
        for b0 in range(0, m, batch):
            count = min(batch, m - b0)
            width = padded(count)
            x = xb[: n_in0 * width].reshape((n_in0, width))
            y = yb[: n_out * width].reshape((n_out, width))
            if epoch == 0 or batch < m:  # a full batch is the same every epoch
                for f in range(n_in0):
                    for s in range(count):
                        x[f, s] = x_t[f, column + order[b0 + s]]
                    for s in range(count, width):
                        x[f, s] = zero
                for i in range(n_out):
                    for s in range(count):
                        y[i, s] = y_t[i, column + order[b0 + s]]
            if fused:
                _call_fused(args.fused, theta, grad, x, y, width, count, scratch)
            else:
                if dropout:
                    fill_uniform(key, pos, draws[: hidden * count])
                _forward_backward(
                    theta, grad, x, y, count, width, keep_prob, args, rows, blas, buffers
                )
            # update
            args.steps[k] += 1
            last = 1 if count < batch else 0
            _update(
                theta,
                grad,
                first_k,
                second_k,
                args.steps[k],
                args.optimizer,
                args.learning_rate,
                args.constants,
                args.l2_over_m[k, last],
                args.decay_factor[k, last],
                args.threshold[k, last],
                has_l1,
            )


@njit(cache=True, nogil=True, fastmath=_FLAGS)
def _forward_backward(theta, grad, x, y, count, width, keep_prob, args, rows, blas, buffers):
    """The batch's forward and backward passes, layer by layer (any network): ``grad`` becomes
    the gradient of the batch's data term. ``x`` (n[0], width) and ``y`` (n_out, width) hold
    the batch's ``count`` samples, zero beyond; ``rows[l]``: where layer l's rows start in the
    ``buffers``' activations; ``blas[l]``: whether layer l multiplies with BLAS."""
    z_all, a_all, pre_all, d_all, work, bits, draws = buffers
    sizes, starts_w, starts_b, activation = (
        args.sizes,
        args.starts_w,
        args.starts_b,
        args.activation,
    )
    dtype = theta.dtype.type
    zero, one = dtype(0.0), dtype(1.0)
    dropout = keep_prob < 1.0
    keep = dtype(1.0 / keep_prob)
    n_layers = sizes.size - 1
    n_out = sizes[n_layers]
    # forward
    a_in = x
    for layer in range(n_layers):
        n_in, n_o = sizes[layer], sizes[layer + 1]
        w = theta[starts_w[layer] : starts_w[layer] + n_o * n_in].reshape((n_o, n_in))
        b = theta[starts_b[layer] : starts_b[layer] + n_o]
        lo, hi = rows[layer] * width, rows[layer + 1] * width
        z = z_all[lo:hi].reshape((n_o, width))
        _forward(w, b, a_in, z, blas[layer])
        if layer == n_layers - 1:
            break
        a = a_all[lo:hi].reshape((n_o, width))
        pre = pre_all[lo:hi].reshape((n_o, width))
        for i in range(n_o):
            zi, ai, pi = z[i], a[i], pre[i]
            if activation == RELU:
                for s in range(width):
                    v = zi[s]
                    ai[s] = v if v > zero else zero
            else:
                _tanh(zi, ai, work[:width], work[width : 2 * width], bits)
            if dropout:
                start = (rows[layer] + i) * count
                for s in range(width):
                    pi[s] = ai[s]
                    ai[s] = ai[s] * (keep if draws[start + s] < keep_prob else zero)
        a_in = a
    # backward
    top = n_layers - 1
    lo, hi = rows[top] * width, rows[top + 1] * width
    d = d_all[lo:hi].reshape((n_out, width))
    z_top = z_all[lo:hi].reshape((n_out, width))
    _output_delta(z_top, y, count, dtype(1.0 / count), d, work, bits)
    for layer in range(top, -1, -1):
        n_in, n_o = sizes[layer], sizes[layer + 1]
        sw, sb = starts_w[layer], starts_b[layer]
        w = theta[sw : sw + n_o * n_in].reshape((n_o, n_in))
        gw = grad[sw : sw + n_o * n_in].reshape((n_o, n_in))
        if layer == 0:
            a_in = x
        else:
            below = rows[layer - 1] * width
            a_in = a_all[below : below + n_in * width].reshape((n_in, width))
        _weight_gradient(d, a_in, gw, grad[sb : sb + n_o], blas[layer], zero)
        if layer == 0:
            break
        d_in = d_all[below : below + n_in * width].reshape((n_in, width))
        _input_gradient(w, d, d_in, blas[layer])
        z_in = z_all[below : below + n_in * width].reshape((n_in, width))
        a_mask = pre_all if dropout else a_all
        a_val = a_mask[below : below + n_in * width].reshape((n_in, width))
        for j in range(n_in):
            dj = d_in[j]
            if dropout:
                start = (rows[layer - 1] + j) * count
                for s in range(width):
                    dj[s] = dj[s] * (keep if draws[start + s] < keep_prob else zero)
            if activation == RELU:
                zj = z_in[j]
                for s in range(width):
                    dj[s] = dj[s] if zj[s] > zero else zero
            else:
                aj = a_val[j]
                for s in range(width):
                    dj[s] = (one - aj[s] * aj[s]) * dj[s]
        d = d_in


@njit(cache=True, nogil=True)
def train_models(models, epochs, args):
    """Train the models ``models`` (indices) for ``epochs`` epochs, one after the other, on
    :class:`KernelArgs` ``args``; the GIL is released, so threads can train other models at the
    same time."""
    workspace = _workspace(models, args)
    for k in models:
        _train_model(k, epochs, args, workspace)
