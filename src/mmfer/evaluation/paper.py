"""The RMLSTM paper's published numbers (section 3, Tables 1-6), as data.

These are the paper's **claims**, copied exactly as printed; nothing here was
measured by mmfer. The paper does not state its evaluation protocol (no
speaker-independent split is described; with ~99.6 % on SAVEE's 4 speakers the
results are most likely speaker-dependent, i.e. clips of the same speakers in
training and test). They are used only to print side by side with our numbers,
never as targets or tests of our models.

Inconsistencies in the paper, kept as printed:

- Table 4 gives RMLSTM YouTube sensitivity 96.49, sections 3.2 and 3.4 say 96.24
  (section 3.1 says 96.49).
- Table 5 gives RNN SAVEE testing time 0.9 s, out of line with its neighbours
  (0.11 and 0.07); probably 0.09.
- Table 6 spells RAVDESS "RAVDEES"; four entries are printed as integers (99, 93, 86, 92).
- The text reports "p-values of 0.008 and 0.0012" for SAVEE and YouTube without
  naming the test or the comparison.
- Table 2 names the visual row "Video" where Table 1 says "Video/image".
- Eq. 12 is written one-vs-rest (TP+TN over all), which is not the overall
  accuracy; the paper does not say how the per-class values are averaged.

All values are percentages (Tables 1-4, 6), minutes and seconds (Table 5).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: Column order of Tables 1-4 (paper headings: Accuracy, PPV, Specificity, Sensitivity, MCC; all %).
METRIC_COLUMNS: Final[tuple[str, ...]] = ("accuracy", "ppv", "specificity", "sensitivity", "mcc")


def _rows(rows: dict[str, tuple[float, float, float, float, float]]) -> MappingProxyType:
    return MappingProxyType(
        {k: MappingProxyType(dict(zip(METRIC_COLUMNS, v, strict=True))) for k, v in rows.items()}
    )


#: Table 1. Performance of different feature extraction on SAVEE dataset (RMLSTM).
TABLE1_SAVEE_MODALITIES: Final = _rows(
    {
        "Audio": (97.52, 97.28, 97.14, 96.67, 96.81),
        "Video/image": (95.43, 95.19, 95.07, 94.58, 94.72),
        "Text": (93.61, 93.37, 93.22, 92.79, 92.93),
        "Audio+video": (99.21, 98.89, 98.76, 98.34, 98.49),
        "Video+text": (97.33, 97.11, 97.05, 96.59, 96.74),
        "Text+audio": (95.48, 95.26, 95.13, 94.62, 94.79),
        "Hybrid features (audio, video, text)": (99.57, 99.31, 99.16, 98.65, 98.83),
    }
)

#: Table 2. Performance of different feature extraction on YouTube dataset (RMLSTM).
TABLE2_YOUTUBE_MODALITIES: Final = _rows(
    {
        "Audio": (95.72, 95.48, 95.31, 94.12, 94.36),
        "Video": (93.61, 93.42, 93.25, 92.07, 92.29),
        "Text": (91.55, 91.33, 91.17, 90.05, 90.28),
        "Audio+video": (97.21, 96.89, 96.66, 95.41, 95.63),
        "Video+text": (95.33, 95.12, 94.98, 93.81, 94.05),
        "Text+audio": (93.47, 93.26, 93.11, 91.89, 92.12),
        "Hybrid features (audio, video, text)": (97.83, 97.56, 97.24, 96.49, 96.75),
    }
)

#: Table 3. Performance of different classifier on SAVEE dataset (all modalities).
TABLE3_SAVEE_MODELS: Final = _rows(
    {
        "ViT": (87.64, 87.46, 87.28, 86.52, 86.41),
        "Swin transformers": (89.27, 89.14, 89.04, 88.76, 88.59),
        "BERT": (90.93, 90.57, 90.36, 89.64, 89.44),
        "MLP": (91.52, 91.38, 91.19, 90.05, 90.24),
        "RNN": (93.67, 93.49, 93.31, 92.12, 92.34),
        "LSTM": (95.73, 95.58, 95.42, 94.19, 94.45),
        "MLSTM": (97.49, 97.29, 97.08, 96.07, 96.25),
        "RMLSTM": (99.57, 99.31, 99.16, 98.65, 98.83),
    }
)

#: Table 4. Performance of different classifier on YouTube dataset (all modalities).
TABLE4_YOUTUBE_MODELS: Final = _rows(
    {
        "ViT": (85.73, 85.35, 84.59, 84.31, 84.09),
        "Swin transformers": (87.27, 87.08, 86.73, 86.47, 86.23),
        "BERT": (89.62, 89.27, 88.85, 88.52, 88.18),
        "MLP": (90.83, 90.55, 90.27, 89.46, 89.71),
        "RNN": (91.15, 91.71, 91.46, 90.62, 90.06),
        "LSTM": (93.41, 93.14, 93.63, 92.04, 92.33),
        "MLSTM": (95.06, 95.38, 95.09, 94.60, 94.17),
        "RMLSTM": (97.83, 97.56, 97.24, 96.49, 96.75),
    }
)

#: Table 5. Complexity analysis: {classifier: {corpus: {"train_min", "test_s"}}}.
#: The paper does not say whether "Testing time (s)" is per sample or per test set.
TABLE5_TIMING: Final = MappingProxyType(
    {
        name: MappingProxyType(
            {
                "savee": MappingProxyType({"train_min": sv_train, "test_s": sv_test}),
                "youtube": MappingProxyType({"train_min": yt_train, "test_s": yt_test}),
            }
        )
        for name, (sv_train, sv_test, yt_train, yt_test) in {
            "ViT": (198, 0.2, 195, 0.21),
            "Swin transformers": (194, 0.16, 192, 0.19),
            "BERT": (189, 0.13, 189, 0.17),
            "MLP": (186, 0.11, 187, 0.15),
            "RNN": (184, 0.9, 184, 0.12),
            "LSTM": (180, 0.07, 181, 0.09),
            "MLSTM": (177, 0.05, 178, 0.07),
            "RMLSTM": (174, 0.03, 176, 0.04),
        }.items()
    }
)

#: Table 6. Comparative analysis on four datasets: (dataset as printed, method, accuracy % as printed).
#: Accuracies are kept as the printed strings ("99" and "57.50" differ in precision); see
#: :func:`paper_comparisons` for floats.
TABLE6_COMPARISON: Final[tuple[tuple[str, str, str], ...]] = (
    ("SAVEE", "3D-CNN-ConvLSTM [16]", "98.83"),
    ("SAVEE", "LSTM+attention+CNN-2D [17]", "57.50"),
    ("SAVEE", "DL-based feature extractor networks [18]", "99"),
    ("SAVEE", "MFCCT-CNN [19]", "93"),
    ("SAVEE", "RMLSTM", "99.57"),
    ("YouTube", "AMPS [20]", "79.7"),
    ("YouTube", "RMLSTM", "97.83"),
    ("CK+", "3D-CNN-ConvLSTM [16]", "95.10"),
    ("CK+", "RMLSTM", "97.28"),
    ("RAVDEES", "LSTM+attention+CNN-2D [17]", "74.44"),
    ("RAVDEES", "DL-based feature extractor networks [18]", "86"),
    ("RAVDEES", "MFCCT-CNN [19]", "92"),
    ("RAVDEES", "RMLSTM", "94.63"),
)

#: Table 6 dataset names (as printed) -> mmfer corpus names.
CORPUS_OF_DATASET: Final = MappingProxyType(
    {"SAVEE": "savee", "YouTube": "youtube", "CK+": "ckplus", "RAVDEES": "ravdess"}
)

#: p-values stated in section 3.2 (test and comparison not named by the paper).
PAPER_P_VALUES: Final = MappingProxyType({"savee": 0.008, "youtube": 0.0012})

#: Paper row names of Tables 1-2 -> mmfer modality sets (mmfer calls the visual modality "face").
MODALITY_ROWS: Final = MappingProxyType(
    {
        "Audio": frozenset({"audio"}),
        "Video/image": frozenset({"face"}),
        "Video": frozenset({"face"}),
        "Text": frozenset({"text"}),
        "Audio+video": frozenset({"audio", "face"}),
        "Video+text": frozenset({"face", "text"}),
        "Text+audio": frozenset({"text", "audio"}),
        "Hybrid features (audio, video, text)": frozenset({"audio", "face", "text"}),
    }
)

#: Paper classifier names of Tables 3-5 -> mmfer model registry names. ViT, Swin and
#: BERT have no counterpart (mmfer's ``transformer`` is a generic sequence encoder).
MODEL_ROWS: Final = MappingProxyType(
    {"MLP": "mlp", "RNN": "rnn", "LSTM": "lstm", "MLSTM": "mlstm", "RMLSTM": "rmlstm"}
)

_MODALITY_TABLES: Final = {"savee": TABLE1_SAVEE_MODALITIES, "youtube": TABLE2_YOUTUBE_MODALITIES}
_MODEL_TABLES: Final = {"savee": TABLE3_SAVEE_MODELS, "youtube": TABLE4_YOUTUBE_MODELS}


def paper_rmlstm_accuracy(corpus: str) -> float | None:
    """The paper's RMLSTM accuracy (%) on ``corpus`` (mmfer corpus name), from Table 6; None if absent."""
    for dataset, method, acc in TABLE6_COMPARISON:
        if method == "RMLSTM" and CORPUS_OF_DATASET[dataset] == corpus.lower():
            return float(acc)
    return None


def paper_comparisons(corpus: str) -> list[tuple[str, float, str]]:
    """Every ``(method, accuracy %, accuracy as printed)`` in paper Table 6 for mmfer corpus ``corpus``."""
    return [(m, float(a), a) for d, m, a in TABLE6_COMPARISON if CORPUS_OF_DATASET[d] == corpus.lower()]


def paper_modality_row(corpus: str, modalities: tuple[str, ...] | frozenset[str]) -> dict[str, float] | None:
    """Paper Table 1/2 row (RMLSTM, metric -> %) for ``corpus`` and a modality set; None if absent."""
    table = _MODALITY_TABLES.get(corpus.lower())
    if table is None:
        return None
    wanted = frozenset(modalities)
    for name, row in table.items():
        if MODALITY_ROWS[name] == wanted:
            return dict(row)
    return None


def paper_model_row(corpus: str, model: str) -> dict[str, float] | None:
    """Paper Table 3/4 row (metric -> %) for ``corpus`` and an mmfer model name; None if absent."""
    table = _MODEL_TABLES.get(corpus.lower())
    if table is None:
        return None
    for name, row in table.items():
        if MODEL_ROWS.get(name) == model.lower():
            return dict(row)
    return None


def paper_timing(corpus: str, model: str) -> dict[str, float] | None:
    """Paper Table 5 ``{"train_min", "test_s"}`` for ``corpus`` and an mmfer model name; None if absent."""
    for name, per_corpus in TABLE5_TIMING.items():
        if MODEL_ROWS.get(name) == model.lower() and corpus.lower() in per_corpus:
            return dict(per_corpus[corpus.lower()])
    return None
