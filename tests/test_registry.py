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


def test_provided_name_is_imported_on_first_use(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import importlib
    import sys

    (tmp_path / "reg_mod.py").write_text("from mmfer.registry import Registry\nREG = Registry('thing')\n")
    (tmp_path / "provider_mod.py").write_text(
        "from reg_mod import REG\n@REG.register('lazy')\ndef lazy():\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = importlib.import_module("reg_mod").REG
    reg.provide("Lazy", "provider_mod")
    assert "lazy" in reg and reg.names() == ["lazy"] and len(reg) == 1
    assert "provider_mod" not in sys.modules  # listing does not import
    assert reg.get("LAZY")() == 3 and "provider_mod" in sys.modules
    for name in ("reg_mod", "provider_mod"):
        monkeypatch.delitem(sys.modules, name)


def test_synthetic_corpus_comes_from_the_demo_package() -> None:
    from mmfer.registry import CORPORA

    assert CORPORA.get("synthetic").__module__ == "mmfer.demo.corpus"
