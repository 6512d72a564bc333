"""Every classifier behind one contract: ``create_estimator(name, **params)``, ``fit``, ``predict_proba``.

See :mod:`mmfer.estimators.base` for the contract, :mod:`.neural` for the
networks, :mod:`.linear` for the scikit-learn baselines and :mod:`.selection`
for the nested hyper-parameter selection.
"""

from __future__ import annotations

from mmfer.estimators.base import (
    ESTIMATORS,
    Estimator,
    create_estimator,
    list_estimators,
    pool_time,
    register_estimator,
)

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "create_estimator",
    "list_estimators",
    "pool_time",
    "register_estimator",
]
