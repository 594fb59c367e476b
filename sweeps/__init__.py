"""sweeps: Ray Tune sweeps of regcore trainings, tracked in MLflow, reported as bias-variance
curves.

The command line is :mod:`sweeps.cli` (``sweeps run CONFIG``); configs are read and validated by
:mod:`sweeps.config`.
"""

__version__ = "0.1.0"
