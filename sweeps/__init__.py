"""sweeps: Ray Tune sweeps of regcore trainings, tracked in MLflow, reported as bias-variance
curves.

Four subsystems, each a package that says what it owns and what it may import:

- :mod:`sweeps.config`: YAML -> a validated config -> the trainings it asks for, and its data;
- :mod:`sweeps.store`: the MLflow store's layout, its writer and its readers;
- :mod:`sweeps.analysis`: curves, lambda.min / lambda.1se, the report and comparisons;
- :mod:`sweeps.execution`: Ray Tune trials, the result stream, the search, the refit.

The command line is :mod:`sweeps.cli` (``sweeps run CONFIG``).
"""

__version__ = "0.1.0"
