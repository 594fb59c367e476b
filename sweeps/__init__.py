"""sweeps: Ray Tune sweeps of regcore trainings, tracked in MLflow, reported as bias-variance
curves.

The front door is the Python API (:mod:`sweeps.api`)::

    import sweeps
    result = sweeps.run("quickstart")      # or a path, a dict, a SweepConfig
    result.curves, result.lambda_min, result.plot()
    sweeps.load("quickstart")              # a finished sweep, from the tracking store

and the ``sweeps`` command (:mod:`sweeps.cli`) runs the same. Four subsystems, each a package
that says what it owns and what it may import:

- :mod:`sweeps.config`: YAML -> a validated config -> the trainings it asks for, and its data;
- :mod:`sweeps.store`: the MLflow store's layout, its writer and its readers;
- :mod:`sweeps.analysis`: curves, lambda.min / lambda.1se, the report and comparisons;
- :mod:`sweeps.execution`: Ray Tune trials, the result stream, the search, a sweep's life.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["SweepResult", "load", "run"]


def __getattr__(name: str) -> Any:
    # the API is imported when first used: ``import sweeps.store.model_format`` (a model's
    # loader) and ``sweeps --help`` stay light
    if name in __all__:
        from sweeps import api

        return getattr(api, name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
