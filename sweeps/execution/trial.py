"""What the driver gives a Ray Tune trial: a typed value, written and read here only.

A trial trains a pack of points together (:func:`sweeps.execution.trainable.train_pack`): a pack
of the grid's, or one strength of a searched curve with all its seeds and folds. Tune holds it
in the trial's config under :data:`KEY`, as plain values (Tune copies and resolves configs, and
keeps them in its experiment state): :meth:`TrialInput.config` writes them and
:func:`trial_input` reads them back, for the trainable, the callback and the searcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeps.config.points import TrainingPoint

#: where a trial's config holds its :class:`TrialInput`
KEY = "trial"


@dataclass(frozen=True)
class TrialInput:
    """The points one trial trains, and the name its trial gets (``pack-3``, or a searched
    curve's name and strength)."""

    label: str
    points: tuple[TrainingPoint, ...]

    def config(self) -> dict[str, Any]:
        """The trial's config as Tune holds it."""
        return {KEY: self.plain()}

    def plain(self) -> dict[str, Any]:
        """As plain values (what :data:`KEY` holds)."""
        return {"label": self.label, "points": [point.as_dict() for point in self.points]}

    @property
    def keys(self) -> list[str]:
        return [point.key for point in self.points]


def trial_input(config: Mapping[str, Any]) -> TrialInput:
    """The :class:`TrialInput` in a trial's config."""
    value = config[KEY]
    points = tuple(TrainingPoint(**fields) for fields in value["points"])
    return TrialInput(value["label"], points)


def grid_inputs(packs: Sequence[Sequence[TrainingPoint]]) -> list[TrialInput]:
    """One input per pack of the grid, labelled ``pack-<i>``."""
    return [TrialInput(f"pack-{i}", tuple(pack)) for i, pack in enumerate(packs)]
