"""regcore: logistic regression and L-layer networks with the lecture's regularization, in numpy.

Usable on its own, like scikit-learn::

    from regcore import RegularizedClassifier
    clf = RegularizedClassifier(hidden_layer_sizes=(20, 20), penalty="l2", lam=0.7).fit(X, y)
"""

from regcore import metrics
from regcore.estimator import DivergenceWarning, RegularizedClassifier, fit_many
from regcore.gradcheck import gradient_check

__all__ = ["DivergenceWarning", "RegularizedClassifier", "fit_many", "gradient_check", "metrics"]
__version__ = "0.1.0"
