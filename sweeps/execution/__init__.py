"""Execution: a sweep's trainings fanned out over Ray Tune, their results handed to the store.

Owns: connecting to Ray and packing points into trials (:mod:`.runner`), what runs inside a
trial (:mod:`.trainable`), the result stream's driver side (:mod:`.callback`), the bracketing
search as a Tune searcher (:mod:`.searcher`), the progress line (:mod:`.progress`) and the refit
of the chosen strengths (:mod:`.refit`).

May import every other part of :mod:`sweeps` except the command line, and Ray.
"""
