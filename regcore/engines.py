"""The engines that run training epochs, by name (see :func:`regcore.training.train`).

An engine is built from ``(plan, models, stack, rngs, data)`` and offers ``run(epochs)`` and
``freeze(models)``; ``per_model_data`` says whether it takes models with data of their own in one
stack (otherwise ``train`` gives each data set a stack of its own).
"""

from __future__ import annotations

from regcore.numpy_engine import NumpyEngine

ENGINES = {"numpy": NumpyEngine}
