"""Empirical risk minimisation: the baseline every comparison is made against."""

from __future__ import annotations

from ._base import BaseReweightingClassifier
from ._policies import MinibatchPolicy
from ._shared_docs import fill_shared_docs


@fill_shared_docs
class ERMClassifier(BaseReweightingClassifier):
    """Neural-network classifier trained by plain empirical risk minimisation.

    Every minibatch minimises the mean cross-entropy of uniformly drawn
    examples. It shares every parameter, the network and the training engine
    with :class:`RGDClassifier`, so that it is the honest baseline: differences
    come from the reweighting alone.

    Parameters
    ----------
    {shared_parameters}

    Attributes
    ----------
    {shared_attributes}

    See Also
    --------
    RGDClassifier : reweights each example's loss by the exponential of its loss.
    sklearn.neural_network.MLPClassifier : scikit-learn's own MLP.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_reweight import ERMClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), ERMClassifier(max_epochs=20, random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    """

    def _make_policy(self) -> MinibatchPolicy:
        return MinibatchPolicy()
