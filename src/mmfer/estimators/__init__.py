"""Every classifier behind one contract: ``create_estimator(name, **params)``, ``fit``, ``predict_proba``.

See :mod:`mmfer.estimators.base` for the contract, :mod:`.neural` for the
networks, :mod:`.linear` for the scikit-learn baselines, :mod:`.late` for late
fusion and :mod:`.selection` for the nested hyper-parameter selection.

Importing this package registers every estimator: each implementation module
registers its own classes when imported, and this package imports them (late
fusion imports the baselines and networks first, since it wraps them).
:mod:`.base` never imports an implementation.
"""

from __future__ import annotations

from mmfer.estimators import late, linear, neural  # noqa: F401  (each registers its estimators)
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
