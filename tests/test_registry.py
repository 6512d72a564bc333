from __future__ import annotations

import pytest

from mmfer.errors import ConfigError
from mmfer.registry import Registry


def test_register_get_and_errors() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("Alpha")
    def alpha() -> int:
        return 1

    @reg.register()
    def beta() -> int:
        return 2

    assert reg.get("alpha") is alpha and reg.get("ALPHA") is alpha
    assert reg.get("beta") is beta
    assert reg.names() == ["alpha", "beta"] and len(reg) == 2 and "beta" in reg
    with pytest.raises(ConfigError, match=r"unknown widget 'gamma'; valid names: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(beta)


def test_project_registries_are_populated() -> None:
    import mmfer.data
    import mmfer.data.splits
    import mmfer.models  # noqa: F401
    from mmfer.registry import CORPORA, MODELS, SPLITTERS

    assert {"savee", "ravdess", "ckplus", "cremad", "tess", "manifest", "synthetic"} <= set(CORPORA.names())
    assert {"rmlstm", "mlstm", "lstm", "rnn", "mlp", "transformer"} <= set(MODELS.names())
    assert {"loso", "group_kfold", "stratified_kfold"} <= set(SPLITTERS.names())
