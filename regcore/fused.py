"""Batch kernels built for one network shape: the compiled engine's fast path for small nets.

The generic kernels of :mod:`regcore._kernels` serve any network with loops over its units; on
small layers (a few to a few dozen units) those loops do about one multiply-add per load and
store, far below the core's arithmetic rate. A fused kernel is built for one shape (``n[0..L]``,
activation, dtype) as LLVM IR (:mod:`regcore._fused_ir`): every weight is a constant of the
code, and each pass over a chunk of samples keeps its sums in vector registers, so the core
mostly multiplies and adds. It computes what the generic kernel's forward and backward passes
compute for a batch (the data term's gradient); the generic driver calls it by address for
every model that trains without dropout, and keeps the mini-batches, the optimizer, the
penalty and the random draws.

A kernel compiles in about a second or less (0.4-0.6 s for 2-20-3-1, 1.6 s
for 2-20-20-1, on 2 busy cores), once per machine: its object code is kept in
:func:`kernel_dir`, and a process loads it in milliseconds. ``REGCORE_FUSED`` says when to
compile:

- ``auto`` (default): a shape whose kernel is on disk uses it; a training big enough that the
  compile is small beside it (:data:`COMPILE_WORK`) compiles it first; a smaller one keeps the
  generic kernel, and one of at least :data:`BACKGROUND_WORK` compiles the fused kernel in a
  background thread for the processes that come after. A process keeps the kernel it chose
  for a shape: two trainings of one process agree bit for bit.
- ``always``: compile (or load) on first sight (tests, benchmarks).
- ``never``: the generic kernels only.

A fused and a generic training sum in different orders and differ in the last digits (as the
compiled and numpy engines do); the tests hold both to the numpy engine.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regcore import _fused_ir, _vector_ir
from regcore.messages import CompiledEngineWarning, first_line

FUSED_MODES = ("auto", "always", "never")
#: the widest layer (units), the most weights in a layer and in all a network may have for a
#: fused kernel. Measured against the generic kernels (one core, 8 models, float64): 2-20-3-1
#: 3.9x, 2-32-1 3.2x, 4-8-3 tanh 2.9x, 10-20-1 2.2x, 13-16-3 1.6x, 16-20-1 1.3x, 2-20-20-1
#: 1.1x (relu) and 1.5x (tanh); but 30-20-1 0.8x: wide layers keep the generic loops busy,
#: and the fused passes over them multiply
MAX_UNITS, MAX_LAYER_WEIGHTS, MAX_WEIGHTS = 32, 400, 1024
#: ``auto`` compiles first for trainings of at least this many multiply-adds (a few seconds on
#: the generic kernel), and in the background for those of at least ``BACKGROUND_WORK``
COMPILE_WORK, BACKGROUND_WORK = 2e10, 5e8


def mode() -> str:
    """``REGCORE_FUSED`` (``auto`` where unset); ValueError naming the variable otherwise."""
    name = os.environ.get("REGCORE_FUSED", "").strip() or "auto"
    if name not in FUSED_MODES:
        raise ValueError(f"REGCORE_FUSED: must be one of {', '.join(FUSED_MODES)}, got {name!r}")
    return name


def eligible(sizes: Sequence[int]) -> bool:
    """Whether a network of layer sizes ``n[0..L]`` gets a fused kernel."""
    layers = [a * b for a, b in itertools.pairwise(sizes)]
    return (
        max(sizes) <= MAX_UNITS and max(layers) <= MAX_LAYER_WEIGHTS and sum(layers) <= MAX_WEIGHTS
    )


def kernel_dir() -> Path:
    """Where compiled kernels are kept: ``REGCORE_KERNEL_DIR``, else
    ``$XDG_CACHE_HOME/regcore/kernels`` (``~/.cache/regcore/kernels``)."""
    folder = os.environ.get("REGCORE_KERNEL_DIR", "").strip()
    if folder:
        return Path(folder)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser() / "regcore" / "kernels"


def _machine():
    """A target machine for this core (a new one each time: an LLVM engine takes ownership of
    the machine it is given)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),
        opt=3,
        reloc="default",
        codemodel="jitdefault",
        jit=True,
    )


@functools.lru_cache(maxsize=1)
def _digest() -> str:
    """What a kernel's object code depends on besides its shape: the core, LLVM and the IR
    builders' source."""
    import llvmlite
    import llvmlite.binding as llvm

    key = "\n".join(
        [
            llvm.get_host_cpu_name(),
            llvm.get_host_cpu_features().flatten(),
            llvmlite.__version__,
            llvm.get_default_triple(),
        ]
    )
    built_by = b"".join(Path(m.__file__).read_bytes() for m in (_fused_ir, _vector_ir))
    return hashlib.sha256(key.encode() + built_by).hexdigest()[:16]


def _compile(sizes: tuple[int, ...], activation: str, dtype: str) -> bytes:
    """Object code of a kernel: its IR, optimized at -O3 for this core (under numba's compiler
    lock: LLVM's state is the process's, and numba may be compiling in another thread)."""
    import llvmlite.binding as llvm
    from numba.core.compiler_lock import global_compiler_lock

    machine = _machine()
    text = _fused_ir.module_ir(sizes, activation, dtype)
    with global_compiler_lock:
        module = llvm.parse_assembly(text)
        module.verify()
        builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(3))
        builder.getModulePassManager().run(module, builder)
        return machine.emit_object(module)


@dataclass(frozen=True)
class FusedKernel:
    """A loaded kernel: its address (what the generic driver calls), the scratch it needs, and
    the LLVM engine holding its code (alive as long as this object)."""

    address: int
    scratch: int
    engine: object


def _path(sizes: tuple[int, ...], activation: str, dtype: str) -> Path:
    name = f"fused_{'_'.join(map(str, sizes))}_{activation}_{dtype}_{_digest()}.o"
    return kernel_dir() / name


def _object_code(sizes: tuple[int, ...], activation: str, dtype: str) -> bytes:
    """A kernel's object code from :func:`kernel_dir`, compiled and kept there first if it is
    not there yet."""
    path = _path(sizes, activation, dtype)
    try:
        return path.read_bytes()
    except OSError:
        code = _compile(sizes, activation, dtype)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_bytes(code)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only cache: the kernel serves this process only
    return code


def compile_kernel(sizes: Sequence[int], activation: str, dtype: str) -> FusedKernel:
    """The fused kernel of a network, loaded (and compiled first if it is not on disk)."""
    import llvmlite.binding as llvm
    from numba.core.compiler_lock import global_compiler_lock

    sizes = tuple(int(n) for n in sizes)
    code = _object_code(sizes, activation, dtype)
    with global_compiler_lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(code))
        engine.finalize_object()
        address = engine.get_function_address("kernel")
    return FusedKernel(address, _fused_ir.scratch_size(sizes), engine)


_chosen: dict[tuple, FusedKernel | None] = {}
_started: set[tuple] = set()
_lock = threading.Lock()


def kernel_for(
    sizes: Sequence[int], activation: str, dtype: np.dtype, work: float
) -> FusedKernel | None:
    """The fused kernel to train a network with (None: the generic kernel), by
    ``REGCORE_FUSED``'s policy; ``work``: the training's multiply-adds, roughly."""
    how = mode()
    sizes = tuple(int(n) for n in sizes)
    if how == "never" or not eligible(sizes):
        return None
    key = (sizes, activation, np.dtype(dtype).name)
    with _lock:
        if key not in _chosen:
            ready = how == "always" or work >= COMPILE_WORK or _path(*key).exists()
            _chosen[key] = _loaded(key) if ready else None
        chosen = _chosen[key]
        if chosen is None and work >= BACKGROUND_WORK and key not in _started:
            _started.add(key)
            threading.Thread(target=_compile_once, args=key, daemon=True).start()
    return chosen


def _loaded(key: tuple) -> FusedKernel | None:
    """The kernel of ``key``, or None, with a warning, where it cannot be built or loaded (the
    generic kernels train the network)."""
    try:
        return compile_kernel(*key)
    except Exception as error:  # LLVM's errors: all mean "not here"
        sizes, activation, dtype = key
        warnings.warn(
            f"regcore: no fused kernel for {'-'.join(map(str, sizes))} {activation} {dtype} "
            f"({first_line(error, with_type=True, limit=200)}); the generic kernels train it",
            CompiledEngineWarning,
            stacklevel=4,
        )
        return None


def _compile_once(sizes: tuple[int, ...], activation: str, dtype: str) -> None:
    """Compile a kernel for the processes that come after, unless another process is compiling
    it (it holds the lock file); a kernel that cannot be built leaves the generic one."""
    import fcntl

    path = _path(sizes, activation, dtype)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _object_code(sizes, activation, dtype)
    except Exception:  # locked elsewhere, a read-only cache, LLVM's refusal: the generic kernel
        return
