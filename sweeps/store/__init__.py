"""The MLflow store: where a sweep's runs, params, metrics and artifacts live, and how they are
written and read back.

Owns: the store's layout (:mod:`.layout`: every tag, param, artifact name and run kind), the
client, its checks and a sweep's parent run (:mod:`.tracking`), retries through a moment's
trouble (:mod:`.retry`), the running driver's lease (:mod:`.lease`), the driver's child-run
writer and its bounded backlog (:mod:`.writer`, :mod:`.backlog`), what a training sends to be
written (:mod:`.point_result`), a sweep's runs as tables (:mod:`.results`) and the chosen
models as data-only MLflow models (:mod:`.model_format`).

May import: :mod:`regcore`, :mod:`sweeps.config`, :mod:`sweeps.errors`, :mod:`sweeps.options`,
:mod:`sweeps.settings` and MLflow. Nothing here imports Ray.
"""
