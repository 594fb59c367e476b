"""The Python API: run a sweep from a script or a notebook, and get its curves back.

::

    import sweeps

    result = sweeps.run("quickstart")          # a bundled config, a path, a dict or a SweepConfig
    result.curves                              # per curve and strength: mean, SE and counts
    result.lambda_min, result.lambda_1se       # per curve
    result.plot()                              # the bias-variance trade-off figure
    result                                     # in Jupyter: the figure and the verdicts

    again = sweeps.load("quickstart")          # a finished sweep, from the tracking store

``run`` takes the command line's options as keywords (``overrides`` for ``--set``). It raises
:class:`~sweeps.errors.UsageError` (a ``ValueError``) for bad input and
:class:`~sweeps.errors.SweepError` when a sweep cannot run (an unreachable cluster or tracking
server); a sweep that ran returns its :class:`SweepResult` even when some of its trainings are
missing or it was interrupted (a warning says so, ``status`` and ``missing`` tell, and
``resume=True`` continues it).
"""

from __future__ import annotations

import base64
import html
import io
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sweeps.config.reading import ConfigSource


@dataclass
class SweepResult:
    """A sweep's results, read back from its tracking store.

    Attributes
    ----------
    name, run_id, experiment_id, tracking_uri, status : str
        The sweep, its parent run and where it lives; ``status`` is the parent run's
        (``FINISHED``, ``FAILED``, ``KILLED`` or ``RUNNING``).
    curves : DataFrame
        Per curve and strength, over folds, repeats and seeds: ``<metric>_mean`` and
        ``<metric>_se`` of every metric, ``folds``, ``seeds`` and ``n`` (the report's
        ``curves.csv``).
    summaries : list of CurveSummary
        Each curve's verdict (:class:`sweeps.analysis.curves.CurveSummary`).
    runs : DataFrame
        One row per training (params, final metrics, status, tags).
    refits : DataFrame
        The refit runs: curve, rule, strength, test cost and error, status, model URI.
    missing : int
        Trainings without a complete run.
    report : Path or None
        The report's folder, where it exists on this machine.
    registered : dict of str to str
        Model URIs by alias (``models:/NAME@lambda-min``) of the sweep's registered choice.
    """

    name: str
    run_id: str
    experiment_id: str
    tracking_uri: str
    status: str
    curves: pd.DataFrame
    summaries: list[Any]
    runs: pd.DataFrame
    refits: pd.DataFrame
    missing: int = 0
    report: Path | None = None
    registered: dict[str, str] = field(default_factory=dict)
    dataset: str = ""
    references: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    @property
    def lambda_min(self) -> dict[str, float]:
        """Each curve's lambda.min (the strength with the lowest mean selection metric)."""
        return {s.name: s.best_strength for s in self.summaries}

    @property
    def lambda_1se(self) -> dict[str, float]:
        """Each curve's lambda.1se (the largest strength within one SE of lambda.min's mean)."""
        return {s.name: s.strength_1se for s in self.summaries}

    @property
    def models(self) -> dict[tuple[str, str], str]:
        """The refit models' URIs by ``(curve, rule)``."""
        out = {}
        for row in self.refits.itertuples(index=False):
            for rule in str(row.rule).split(","):
                if row.model:
                    out[(row.curve, rule)] = row.model
        return out

    def verdicts(self) -> pd.DataFrame:
        """The report's table: per curve, lambda.min and lambda.1se, the costs there, the
        verdict."""
        from sweeps.analysis.report import summary_table

        return summary_table(self.summaries, self.references)

    def plot(self, penalty: str | None = None) -> Any:
        """The bias-variance trade-off figure of one penalty (default: the first) as a
        ``matplotlib.figure.Figure``."""
        from sweeps.analysis import curves as rules
        from sweeps.analysis.plots import tradeoff_figure

        names = {s.penalty for s in self.summaries}
        penalty = penalty or (self.summaries[0].penalty if self.summaries else None)
        if penalty not in names:
            raise ValueError(f"penalty: one of {sorted(names)}, got {penalty!r}")
        items = [
            (rules.curve_rows(self.curves, s).sort_values("strength"), s)
            for s in self.summaries
            if s.penalty == penalty
        ]
        return tradeoff_figure(None, self.dataset, penalty, items, self.curves)

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>sweep {html.escape(self.name)}</b> ({self.status}, parent run "
            f"{self.run_id}; {len(self.runs)} trainings"
            + (f", {self.missing} missing" if self.missing else "")
            + ")</p>"
        )
        if not self.summaries:
            return head + "<p>no curve yet: no finished training with a strength</p>"
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png")
        image = base64.b64encode(buffer.getvalue()).decode()
        table = self.verdicts().to_html(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0
        )
        return f'{head}<img src="data:image/png;base64,{image}">{table}'


def run(
    config: ConfigSource,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    tracking_uri: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    force: bool = False,
    refit: bool = True,
    report: bool = True,
    register: str | None = None,
    out: str | None = None,
    quiet: bool = False,
) -> SweepResult:
    """Run a sweep and return its results.

    Parameters
    ----------
    config : str, Path, dict or SweepConfig
        A config file, a bundled config's name (``"quickstart"``), a mapping with a config's
        keys, or a config object. A relative ``dataset.path`` is relative to the file's folder
        (to the working folder for a mapping).
    overrides : list of str
        ``"KEY.PATH=VALUE"`` overrides, as ``--set``.
    tracking_uri, address, storage_path, resume, force, refit, report, register, out
        As the command line's flags (:mod:`sweeps.options`: the environment fills what is not
        given).
    quiet : bool
        Say nothing but warnings (no summary, no progress line).

    Returns
    -------
    SweepResult
    """
    from sweeps.execution import lifecycle
    from sweeps.execution.progress import Progress
    from sweeps.options import run_options

    options = run_options(
        tracking_uri=tracking_uri,
        address=address,
        storage_path=storage_path,
        overrides=overrides,
        resume=resume,
        force=force,
        refit=refit,
        report=report,
        register=register,
        out=out,
    )
    prepared = lifecycle.prepare(config, options)
    live = None if quiet else _notebook_line()

    def progress(name: str, total: int, **kwargs: Any) -> Progress:
        if quiet:
            return Progress(name, total, stream=io.StringIO(), **kwargs)
        return Progress(name, total, live=live, **kwargs)

    ended = lifecycle.execute(
        prepared,
        options,
        say=(lambda text: None) if quiet else (lambda text: print(text, flush=True)),
        progress=progress,
    )
    if ended.code:
        resume_hint = "sweeps.run(..., resume=True) continues it"
        warnings.warn(f"{ended.problem}; {resume_hint}", RuntimeWarning, stacklevel=2)
    result = load(ended.run_id, tracking_uri=ended.tracking_uri)
    result.report = ended.report or result.report
    return result


def load(sweep: str | None = None, tracking_uri: str | None = None) -> SweepResult:
    """A sweep's results from its tracking store.

    Parameters
    ----------
    sweep : str, optional
        A sweep's name (its newest run) or its parent run's id; default: the newest sweep.
    tracking_uri : str, optional
        Default: ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` (:mod:`sweeps.options`).
    """
    from regcore import metrics
    from sweeps.analysis import curves as rules
    from sweeps.analysis.report import brackets_of, report_folder, sweep_config
    from sweeps.options import resolve_tracking_uri
    from sweeps.store import layout, results, tracking

    client = tracking.client_for(resolve_tracking_uri(tracking_uri))
    parent = tracking.find_sweep(client, sweep)
    config = sweep_config(client, parent)
    frame = results.child_frame(client, parent)
    aggregated = rules.aggregate(frame)
    brackets = brackets_of(client, parent)
    summaries = []
    for curve in rules.curves_of(aggregated).values():
        summary = rules.summarize(curve, config.select)
        summary.bracket = brackets.get(summary.name)
        summaries.append(summary)
    references = {}
    for summary in summaries:
        level = rules.reference_levels(aggregated, summary.depth, summary.width)
        if level is not None:
            references[(summary.depth, summary.width)] = float(level[f"{metrics.DEV_COST}_mean"])
    name = parent.data.tags.get(layout.SWEEP_TAG, parent.info.run_name)
    folder = report_folder(name)
    registered = {}
    if config.register_as:
        for alias in layout.RULES.values():
            try:
                client.get_model_version_by_alias(config.register_as, alias)
            except Exception:  # not registered (yet), or the refit diverged
                continue
            registered[alias] = f"models:/{config.register_as}@{alias}"
    wanted = int(parent.data.tags.get(layout.POINTS_TAG, len(frame)) or len(frame))
    return SweepResult(
        name=name,
        run_id=parent.info.run_id,
        experiment_id=parent.info.experiment_id,
        tracking_uri=client.tracking_uri,
        status=parent.info.status,
        curves=aggregated,
        summaries=summaries,
        runs=frame,
        refits=results.refit_frame(client, parent),
        missing=max(0, wanted - len(results.complete_keys(frame))),
        report=folder if (folder / "report.html").is_file() else None,
        registered=registered,
        dataset=config.dataset.name,
        references=references,
    )


def _notebook_line() -> Callable[[str], None] | None:
    """In a Jupyter kernel, the progress line as one output updated in place."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
        from IPython.display import Pretty, display
    except ImportError:
        return None
    if get_ipython() is None:
        return None
    handle = display(Pretty(""), display_id=True)
    return lambda text: handle.update(Pretty(text))
