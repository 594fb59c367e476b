"""scikit-learn's own estimator checks. None is expected to fail: the dictionary below is the
one place to list a check that cannot pass, with the reason."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from regcore import RegularizedClassifier

pytestmark = pytest.mark.usefixtures("engine")  # once per engine

EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [RegularizedClassifier()],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
