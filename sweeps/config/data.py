"""A sweep's dataset: read once, on the driver, checked, and split as its config says.

The rows reach every trial through Ray's object store (:mod:`sweeps.execution.runner`): no
trial opens a user's file, so a worker node needs no copy of it. A file's sha256 becomes the
config's ``dataset.sha256``, which identifies the data in the sweep's hash and its point keys
(a moved file is the same data; a changed one is not, and ``--resume`` refuses it).
"""

from __future__ import annotations

from regcore.datasets import Resampled, load_resampled
from sweeps.config.schema import SweepConfig
from sweeps.errors import UsageError


def load_data(config: SweepConfig) -> tuple[SweepConfig, Resampled]:
    """The sweep's data, split as ``dataset.split`` says, and the config with the file's
    ``sha256`` recorded; a problem with the data is a UsageError naming the ``dataset`` field.
    """
    spec = config.dataset
    table = {
        key: value
        for key, value in dict(
            n_samples=spec.n_samples,
            noise=spec.noise,
            path=spec.path,
            target=spec.target,
            columns=spec.columns,
            drop=spec.drop,
            missing=spec.missing,
            max_categories=spec.max_categories,
        ).items()
        if value is not None
    }
    try:
        data = load_resampled(spec.name, seed=spec.seed, **spec.split.model_dump(), **table)
    except ValueError as error:
        message = str(error)
        if not message.startswith("dataset"):
            message = f"dataset: {message}"
        raise UsageError(message) from None
    digest = data.table.digest
    if digest is None:
        return config, data
    if spec.sha256 is not None and spec.sha256 != digest:
        raise UsageError(
            f"dataset.sha256: the config pins {spec.sha256[:12]}..., but '{spec.path}' now "
            f"holds {digest[:12]}..."
        )
    dataset = spec.model_copy(update={"sha256": digest})
    return config.model_copy(update={"dataset": dataset}), data
