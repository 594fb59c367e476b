"""A sweep's dataset, loaded and split as its config says."""

from __future__ import annotations

from regcore.datasets import Resampled, load_resampled
from sweeps.config.schema import DatasetConfig
from sweeps.errors import UsageError


def load_data(spec: DatasetConfig) -> Resampled:
    """The sweep's dataset, split as ``dataset.split`` says; a problem with it is a UsageError
    naming the ``dataset`` field."""
    split = spec.split.model_dump()
    try:
        return load_resampled(
            spec.name,
            n_samples=spec.n_samples,
            noise=spec.noise,
            path=spec.path,
            target=spec.target,
            seed=spec.seed,
            **split,
        )
    except ValueError as error:
        message = str(error)
        if not message.startswith("dataset"):
            message = f"dataset: {message}"
        raise UsageError(message) from None
