"""The fused kernels' policy (when a shape gets one, when it is compiled, that a process keeps
its choice) and their arithmetic against a batch gradient written out here in numpy."""

import itertools

import numpy as np
import pytest
from scipy.special import expit, softmax

from regcore import fused
from regcore._fused_ir import scratch_size


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel folder and a process that has chosen no kernel yet."""
    monkeypatch.setenv("REGCORE_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(fused, "_chosen", {})
    monkeypatch.setattr(fused, "_started", set())
    return tmp_path


def test_mode_names_the_variable(monkeypatch):
    monkeypatch.setenv("REGCORE_FUSED", "sometimes")
    with pytest.raises(ValueError, match="REGCORE_FUSED: must be one of auto, always, never"):
        fused.mode()


def test_only_small_networks_get_one(fresh, monkeypatch):
    monkeypatch.setenv("REGCORE_FUSED", "always")
    assert fused.kernel_for((2, 33, 1), "relu", np.float64, 1e12) is None  # a layer too wide
    assert fused.kernel_for((30, 20, 1), "relu", np.float64, 1e12) is None  # 600 in a layer
    assert fused.kernel_for((2, 20, 20, 20, 20, 1), "relu", np.float64, 1e12) is None  # 1260
    assert fused.kernel_for((2, 20, 3, 1), "relu", np.float64, 0) is not None
    monkeypatch.setenv("REGCORE_FUSED", "never")
    assert fused.kernel_for((2, 5, 1), "relu", np.float64, 1e12) is None


def test_auto_compiles_for_big_trainings_and_a_process_keeps_its_choice(fresh, monkeypatch):
    monkeypatch.setenv("REGCORE_FUSED", "auto")
    small, big = fused.BACKGROUND_WORK / 2, fused.COMPILE_WORK
    # a small training, nothing on disk: the generic kernel, and nothing compiled
    assert fused.kernel_for((2, 4, 1), "tanh", np.float64, small) is None
    assert list(fresh.glob("*.o")) == []
    # a big one: compiled first, and kept on disk for the next process
    kernel = fused.kernel_for((2, 6, 1), "tanh", np.float64, big)
    assert kernel is not None and len(list(fresh.glob("*.o"))) == 1
    # the shape the process saw first without a kernel keeps the generic one, big or not
    fused._compile_once((2, 4, 1), "tanh", "float64")  # (another process compiled it)
    assert len(list(fresh.glob("*.o"))) == 2
    assert fused.kernel_for((2, 4, 1), "tanh", np.float64, big) is None
    # a new process finds both on disk
    monkeypatch.setattr(fused, "_chosen", {})
    assert fused.kernel_for((2, 4, 1), "tanh", np.float64, small) is not None


def test_a_mid_size_training_compiles_in_the_background(fresh, monkeypatch):
    monkeypatch.setenv("REGCORE_FUSED", "auto")
    started = []
    monkeypatch.setattr(fused.threading, "Thread", lambda **kw: started.append(kw) or _Now(kw))
    assert fused.kernel_for((3, 5, 2), "relu", np.float32, fused.BACKGROUND_WORK) is None
    assert [kw["args"] for kw in started] == [((3, 5, 2), "relu", "float32")]
    assert len(list(fresh.glob("*.o"))) == 1
    # once per shape and process
    assert fused.kernel_for((3, 5, 2), "relu", np.float32, fused.BACKGROUND_WORK) is None
    assert len(started) == 1


def test_a_kernel_that_cannot_be_built_leaves_the_generic_one(fresh, monkeypatch):
    from regcore import RegularizedClassifier
    from regcore.engines import CompiledEngineWarning

    def refuse(*key):
        raise RuntimeError("LLVM ERROR: no\nmore lines")

    monkeypatch.setattr(fused, "_compile", refuse)
    monkeypatch.setenv("REGCORE_FUSED", "always")
    message = r"no fused kernel for 2-5-1 relu float64 \(RuntimeError: LLVM ERROR: no\)"
    with pytest.warns(CompiledEngineWarning, match=message):
        clf = RegularizedClassifier(
            hidden_layer_sizes=(5,), epochs=20, engine="compiled", random_state=0
        )
        clf.fit(np.random.RandomState(0).randn(30, 2), np.arange(30) % 2)
    reference = RegularizedClassifier(**{**clf.get_params(), "engine": "numpy"})
    reference.fit(np.random.RandomState(0).randn(30, 2), np.arange(30) % 2)
    np.testing.assert_allclose(clf.weights_[0], reference.weights_[0], rtol=0, atol=1e-12)


class _Now:
    """A thread that runs its target when started."""

    def __init__(self, kw):
        self.kw = kw

    def start(self):
        self.kw["target"](*self.kw["args"])


def reference_gradient(theta, sizes, activation, x, y):
    """The batch's data-term gradient, written out in numpy: W[l] then b[l] per layer."""
    weights, biases, offset = [], [], 0
    for n_in, n_out in itertools.pairwise(sizes):
        weights.append(theta[offset : offset + n_in * n_out].reshape(n_out, n_in))
        offset += n_in * n_out
        biases.append(theta[offset : offset + n_out, None])
        offset += n_out
    a, cache = x, []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = w @ a + b
        cache.append(a)
        if layer < len(weights) - 1:
            a = np.maximum(z, 0) if activation == "relu" else np.tanh(z)
    p = expit(z) if z.shape[0] == 1 else softmax(z, axis=0)
    delta = (p - y) / x.shape[1]
    grads = []
    for layer in range(len(weights) - 1, -1, -1):
        grads = [(delta @ cache[layer].T).ravel(), delta.sum(axis=1), *grads]
        if layer:
            a = cache[layer]
            derivative = (a > 0) if activation == "relu" else 1 - a**2
            delta = (weights[layer].T @ delta) * derivative
    return np.concatenate(grads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("count", [1, 7, 64, 65, 150, 300])
@pytest.mark.parametrize(
    ("sizes", "activation"),
    [
        ((2, 20, 3, 1), "relu"),
        ((4, 6, 5, 3), "tanh"),
        ((3, 1), "relu"),
        ((5, 9, 4), "relu"),
        ((13, 8, 3), "tanh"),
    ],
)
def test_batch_gradient(sizes, activation, count, dtype):
    """Batches shorter than a chunk, of one chunk and a sample, and of several (the last
    overlapping the one before) give the gradient written out above."""
    import ctypes

    kernel = fused.compile_kernel(sizes, activation, dtype)
    rng = np.random.RandomState(count)
    width = -(-count // 8) * 8
    size = sum(a * b + b for a, b in itertools.pairwise(sizes))
    theta = (rng.randn(size) * 0.7).astype(dtype)
    x = np.zeros((sizes[0], width), dtype)
    x[:, :count] = rng.randn(sizes[0], count)
    y = np.zeros((sizes[-1], width), dtype)
    if sizes[-1] == 1:
        y[0, :count] = rng.rand(count) > 0.5
    else:
        y[rng.randint(sizes[-1], size=count), np.arange(count)] = 1
    grad = np.full(size, np.nan, dtype)  # every entry is written
    scratch = np.full(scratch_size(sizes), np.nan, dtype)  # nothing is read before written
    pointer = ctypes.POINTER(ctypes.c_double if dtype == "float64" else ctypes.c_float)
    call = ctypes.CFUNCTYPE(None, *[pointer] * 4, ctypes.c_int64, ctypes.c_int64, pointer)
    as_pointer = [a.ctypes.data_as(pointer) for a in (theta, grad, x, y)]
    call(kernel.address)(*as_pointer, width, count, scratch.ctypes.data_as(pointer))
    expected = reference_gradient(
        theta.astype(float), sizes, activation, x[:, :count].astype(float), y[:, :count]
    )
    tolerance = 1e-13 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(grad, expected, rtol=0, atol=tolerance * max(1, abs(expected).max()))
    assert np.abs(expected).max() > 1e-3
