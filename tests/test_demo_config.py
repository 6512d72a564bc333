"""The demo stays a demo (`make demo` <= 3 min on 2 cores) and the full comparison stays one command away."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from mmfer.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_is_sized_to_its_purpose() -> None:
    cfg = load_config(ROOT / "configs" / "default.yaml")
    ev = cfg.eval
    assert cfg.data.corpus == "synthetic"
    assert not ev.both_protocols  # one protocol
    # cross-validations of the demo's report: each model on every modality, plus the ablations
    runs = len(dict.fromkeys([cfg.model.name, *ev.models, *ev.reference])) + len(ev.ablations)
    assert runs <= 6 and ev.ablations, runs
    assert ev.select and ev.select_budget * ev.inner_folds <= 4  # nested selection kept, kept small
    assert not ev.front_ends


def test_demo_full_target_is_a_valid_config() -> None:
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("\ndemo-full:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    words = shlex.split(recipe.split("mmfer run", 1)[1])
    assert words[:2] == ["-c", "configs/default.yaml"]
    full = load_config(ROOT / words[1], words[2:])
    assert full.eval.both_protocols and len(full.eval.models) >= 6 and full.eval.ablations == []
    assert full.eval.folds == 5
    assert full.output_dir != load_config(ROOT / "configs" / "default.yaml").output_dir


def test_demo_ends_with_a_prediction() -> None:
    make = (ROOT / "Makefile").read_text()
    demo = make.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "demo-predict" in demo and "mmfer run -c configs/default.yaml" in demo
    predict = make.split("\ndemo-predict:", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"mmfer predict .*--model runs/synthetic-demo/model\.safetensors", predict)
