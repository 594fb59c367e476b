"""Execution: a sweep's life and its trainings fanned out over Ray Tune, their results handed to
the store.

Owns: a sweep's life from start to report (:mod:`.lifecycle`, which the API and the command line
run), connecting to Ray and running the trials (:mod:`.runner`), points into packs
(:mod:`.packing`), what a trial gets (:mod:`.trial`) and does (:mod:`.trainable`), the result
stream's driver side (:mod:`.callback`), the search as a Tune searcher (:mod:`.searcher`), the
progress line (:mod:`.progress`) and the refit of the chosen strengths (:mod:`.refit`).

May import every other part of :mod:`sweeps` except the API and the command line, Ray, and
MLflow (the refit logs and registers models).
"""
