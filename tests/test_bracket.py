"""The bracketing search on a closed-form curve: a convex function of log lambda stands in for
training (a known minimum and a known 1-SE crossing)."""

import math

import pytest

from sweeps.analysis.bracket import Bracket, Evaluation

SE = 0.01


def run(search: Bracket, x0: float, curvature: float = 0.05) -> list[int]:
    """Rounds of ``search`` on ``mean(x) = 0.3 + curvature (x - x0)^2`` (x = log10 lambda),
    every point with standard error SE, until it is done; the strengths each round tried."""
    rounds = []
    proposals = search.first_round()
    while proposals:
        rounds.append(len(proposals))
        for strength in proposals:
            x = math.log10(strength)
            search.record(strength, Evaluation(0.3 + curvature * (x - x0) ** 2, SE))
        proposals = search.next_round()
    return rounds


def lowest(search: Bracket) -> float:
    return min(search.results, key=lambda x: search.results[x].mean)


@pytest.mark.parametrize("x0", [-0.6, 0.93, -2.71])
def test_brackets_the_minimum_and_the_one_se_crossing_within_tol(x0):
    search = Bracket(low=1e-3, high=1e2, tol=0.1, budget=30)
    rounds = run(search, x0)
    assert abs(lowest(search) - x0) <= 0.1
    brackets = search.intervals()
    lo, hi = (math.log10(v) for v in brackets["min"])
    assert lo < x0 < hi and hi - lo <= 2 * 0.1
    crossing = x0 + math.sqrt(SE / 0.05)  # 0.3 + 0.05 (x - x0)^2 = 0.3 + SE
    lo, hi = (math.log10(v) for v in brackets["one_se"])
    assert lo <= crossing < hi and hi - lo <= 0.1
    assert sum(rounds) < 30 and len(rounds) > 1


def test_extends_past_an_end_where_the_minimum_sits():
    search = Bracket(low=1e-3, high=1e-1, tol=0.1, budget=40)
    run(search, x0=0.8)  # the minimum is 1.8 decades above the bracket's top
    assert max(search.results) > 0.8  # extended past the top
    assert abs(lowest(search) - 0.8) <= 0.1
    crossing = 0.8 + math.sqrt(SE / 0.05)
    lo, hi = (math.log10(v) for v in search.intervals()["one_se"])
    assert lo <= crossing < hi


def test_extends_downward_too_and_stops_at_the_limit():
    search = Bracket(low=1e-2, high=1.0, tol=0.1, budget=40)
    run(search, x0=-9.0)  # far below: further than the search may go
    assert min(search.results) == pytest.approx(-2 - 4.0)  # MAX_EXTENSION decades below
    assert len(search.results) < 40  # it stopped there, not on the budget


def test_stops_on_budget():
    search = Bracket(low=1e-3, high=1e2, tol=0.001, budget=9)
    rounds = run(search, x0=0.2)
    assert len(search.results) == sum(rounds) == 9


def test_a_round_depends_only_on_the_results_not_their_order():
    first = Bracket(low=1e-3, high=1e2)
    second = Bracket(low=1e-3, high=1e2)
    points = first.first_round()
    evaluations = {s: Evaluation(0.3 + 0.05 * (math.log10(s) + 0.6) ** 2, SE) for s in points}
    for strength in points:
        first.record(strength, evaluations[strength])
    for strength in reversed(points):
        second.record(strength, evaluations[strength])
    assert first.next_round() == second.next_round()


# --- the searcher when a trial fails ---------------------------------------------------------


def _searcher(tmp_path):
    from sweeps.config.points import curve_specs
    from sweeps.config.reading import read_config
    from sweeps.execution.searcher import SweepSearcher
    from tests.helpers import write_config

    path = write_config(
        tmp_path / "s.yaml",
        {
            "name": "oom",
            "search": {
                "depths": [1],
                "seeds": [0, 1],
                "penalties": {"l2": {"lam": {"bracket": [1e-3, 10], "tol": 0.2, "budget": 12}}},
            },
        },
    )
    config, _ = read_config(str(path))
    specs = [spec for spec in curve_specs(config) if spec.search is not None]
    return SweepSearcher(config, [], specs, {}, {(None, None): (70, 30)})


def _report(searcher, trial_id, value):
    """Tune hands the searcher the trial's results: every training at ``value``."""
    from types import SimpleNamespace

    from sweeps.store.point_result import POINTS

    items = [
        SimpleNamespace(key=p.key, diverged=False, final={"dev_cost": value})
        for p in searcher.in_flight[trial_id][1]
    ]
    searcher.on_trial_result(trial_id, {POINTS: items})
    searcher.on_trial_complete(trial_id)


@pytest.mark.parametrize("out_of_memory", [True, False])
def test_a_failed_trial_of_a_searched_curve(tmp_path, out_of_memory):
    """Tune tells the searcher of a failure before the callback knows why. Out of memory, the
    trial's trainings train again as halves in the same curve, and the strength is judged on
    their results; failed for good, the strength is infinitely bad and the search goes on."""
    searcher = _searcher(tmp_path)
    (search,) = searcher.searches
    first = list(search.round)
    searcher.suggest("t0")
    failed = searcher.in_flight["t0"][1]
    assert len(failed) == 2  # the strength's two seeds
    searcher.on_trial_complete("t0", error=True)
    sizes = searcher.trial_failed("t0", "l2 x", failed, out_of_memory=out_of_memory)
    assert sizes == ((1, 1) if out_of_memory else None)
    trial = 1
    while searcher.queue and search.rounds == 1:
        searcher.suggest(f"t{trial}")
        _report(searcher, f"t{trial}", 0.5)
        trial += 1
    assert search.rounds == 2  # the first round was judged, and the search went on
    strength = failed[0].strength
    assert strength in first
    expected = 0.5 if out_of_memory else math.inf
    recorded = {round(10**x, 9): e.mean for x, e in search.bracket.results.items()}  # by log10
    assert recorded[round(strength, 9)] == expected
    others = [v for s, v in recorded.items() if s != round(strength, 9)]
    assert others == [0.5] * (len(first) - 1)
