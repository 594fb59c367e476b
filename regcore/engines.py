"""The engines that run training epochs, by name, and the choice between them.

An engine is built from ``(plan, models, stack, rngs, data)`` and offers ``run(epochs)`` and
``freeze(models)``; ``per_model_data`` says whether it takes models with data of their own in one
stack (otherwise :func:`regcore.training.train` gives each data set a stack of its own).

- ``numpy``: the reference (:mod:`regcore.numpy_engine`).
- ``compiled``: numba kernels (:mod:`regcore.compiled_engine`), the same arithmetic fused; small
  networks' passes run in kernels built for their shape (:mod:`regcore.fused`, as
  ``REGCORE_FUSED`` says).
- ``auto`` (the estimators' default): ``compiled`` where it is available and faster, else
  ``numpy`` (see :func:`resolve`).

A machine where the kernels cannot be compiled or loaded (numba missing, no working LLVM, ...)
gets one warning and the numpy engine.
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings

import numpy as np

from regcore.messages import CompiledEngineWarning, first_line
from regcore.numpy_engine import NumpyEngine
from regcore.training_plan import TrainingPlan

ENGINE_NAMES = ("auto", "numpy", "compiled")


def engine_class(name: str) -> type:
    """The engine class named ``numpy`` or ``compiled``."""
    if name == "compiled":
        from regcore.compiled_engine import CompiledEngine

        return CompiledEngine
    return NumpyEngine


@functools.lru_cache(maxsize=4)
def compiled_available(dtype: str) -> bool:
    """Whether the compiled engine works here for ``dtype`` (its kernels compile or load from
    numba's cache: the first call in a process pays for it); warns once if it does not."""
    try:
        from regcore.compiled_engine import warm_up

        warm_up(np.dtype(dtype))
    except Exception as error:  # ImportError, numba's and LLVM's errors: all mean "not here"
        reason = first_line(error, with_type=True, limit=200)
        warnings.warn(
            f"regcore: the compiled engine is not available ({reason}); using the numpy engine",
            CompiledEngineWarning,
            stacklevel=3,
        )
        return False
    return True


def environment_engine() -> str:
    """The engine ``REGCORE_ENGINE`` names (``auto`` where it is unset); ValueError naming the
    variable for anything else."""
    name = os.environ.get("REGCORE_ENGINE", "").strip() or "auto"
    if name not in ENGINE_NAMES:
        raise ValueError(f"REGCORE_ENGINE: must be one of {', '.join(ENGINE_NAMES)}, got {name!r}")
    return name


#: ``auto`` leaves networks with a layer of this many weights to the numpy engine: both spend
#: their time in BLAS there, and numpy's products of all models at once use every core
NUMPY_FROM_WEIGHTS = 128 * 128


def resolve(name: str, plan: TrainingPlan) -> str:
    """The engine that trains ``plan``: ``numpy`` or ``compiled``.

    ``auto`` is ``REGCORE_ENGINE`` where that variable is set (a whole process on one engine:
    the test suite runs its oracle tests so, once per engine; another value is an error).
    Otherwise it is the compiled engine wherever it is available and faster. Measured on this
    project's 2-core machine (2 hidden layers, 180 training samples, relu, one and eight
    models): 1.4x to 2.4x faster for layers of 16 to 64 units, even at 128 and 0.8x to 1.1x at
    256, where numpy multiplies all models at once on both cores; so ``auto`` takes numpy from
    :data:`NUMPY_FROM_WEIGHTS` weights in a layer. ``compiled`` falls back to ``numpy`` (with a
    warning) where it is not available.
    """
    if name == "auto":
        name = environment_engine()
    if name == "numpy":
        return "numpy"
    sizes = plan.layer_sizes
    widest = max(a * b for a, b in itertools.pairwise(sizes))
    if name == "auto" and widest >= NUMPY_FROM_WEIGHTS:
        return "numpy"
    return "compiled" if compiled_available(np.dtype(plan.dtype).name) else "numpy"
