"""regcore: logistic regression and L-layer networks with the lecture's regularization, in numpy.

Usable on its own, like scikit-learn::

    from regcore import RegularizedClassifier
    clf = RegularizedClassifier(hidden_layer_sizes=(20, 20), penalty="l2", lam=0.7).fit(X, y)
"""

from typing import Any

__all__ = ["DivergenceWarning", "RegularizedClassifier", "fit_many", "gradient_check", "metrics"]
__version__ = "0.1.0"

#: where each public name lives: imported when first used, so that importing a light module of
#: the package (``regcore.metrics``: the ``sweeps`` command's start) does not import
#: scikit-learn
_WHERE = {
    "DivergenceWarning": "regcore.estimator",
    "RegularizedClassifier": "regcore.estimator",
    "fit_many": "regcore.estimator",
    "gradient_check": "regcore.gradcheck",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    if name == "metrics":
        import regcore.metrics

        return regcore.metrics
    raise AttributeError(f"module 'regcore' has no attribute {name!r}")
