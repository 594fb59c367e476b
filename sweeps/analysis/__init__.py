"""Analysis: lambda curves and what they say, from a sweep's runs.

Owns: the rules (:mod:`.curves`: aggregation over folds and seeds, lambda.min, lambda.1se,
regimes), the bracketing search's rule (:mod:`.bracket`), the figures (:mod:`.plots`), the
bias-variance report (:mod:`.report`) and the comparison of curves across sweeps
(:mod:`.compare`).

May import: :mod:`regcore`, :mod:`sweeps.config`, :mod:`sweeps.store`, :mod:`sweeps.errors`,
:mod:`sweeps.settings`. Nothing here imports Ray.
"""
