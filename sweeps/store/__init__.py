"""The MLflow store: where a sweep's runs, params, metrics and artifacts live, and how they are
written and read back.

Owns: the store's layout (:mod:`.layout`: every tag, param, artifact name and run kind), the
client and its checks (:mod:`.tracking`), the driver's child-run writer and its bounded backlog
(:mod:`.writer`, :mod:`.backlog`), what a training sends to be written (:mod:`.point_result`)
and a sweep's runs as a table (:mod:`.results`).

May import: :mod:`regcore`, :mod:`sweeps.config`, :mod:`sweeps.errors`, :mod:`sweeps.settings`
and MLflow. Nothing here imports Ray.
"""
