"""Inference subcommands of the ``mmfer`` command line: predict, compose, serve, export, stream.

:func:`register` adds them to the main parser (``mmfer.cli``); each sets
``func`` to a ``(args) -> exit code`` function. :func:`main` runs them alone
(``python -m mmfer.inference.cli predict ...``).

Exit codes: 0 success; 1 ``predict`` made some predictions but some inputs
failed; 2 bad model/arguments (an :class:`~mmfer.errors.MmferError`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmfer.errors import MmferError

__all__ = [
    "about_text",
    "cmd_compose",
    "cmd_export",
    "cmd_predict",
    "cmd_serve",
    "cmd_stream",
    "main",
    "register",
]


def _set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (0 = sized to the free cores, :mod:`mmfer.runtime`)."""
    from mmfer.runtime import configure

    configure(threads=int(getattr(args, "threads", 0) or 0))


def about_text(model: Any) -> str:
    """Human-readable ``--about``: parts, training data, honest accuracy, licence, label coverage."""
    info = model.info()
    lines = [f"model: {info.get('source')}", f"labels: {', '.join(info['labels'])}"]
    if info.get("model") == "composed":
        how = "log-probabilities" if info["mode"] == "log" else "probabilities"
        lines.append(f"fusion: decision-level, weighted mean of {how} (mode={info['mode']})")
        for part in info["parts"]:
            lines.append(
                f"part {part['name']}: {part['estimator']} on {'+'.join(part['modalities'])}, "
                f"weight {part['weight']:g}, labels {', '.join(part['labels'])}"
            )
            for k, v in part.get("about", {}).items():
                lines.append(f"  {k}: {v}")
        missing = {lab: parts for lab, parts in info["coverage"].items() if len(parts) < len(info["parts"])}
        for lab, parts in missing.items():
            lines.append(
                f"class {lab}: known only to {', '.join(parts) or 'no part'} "
                "(the other parts give it their mean score: no evidence either way)"
            )
    else:
        lines.append(f"estimator: {info['model']} on {'+'.join(info['modalities'])}")
    for k, v in info.get("about", {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines) + "\n"


def cmd_predict(args: argparse.Namespace) -> int:
    """``mmfer predict PATH... [--model M]``: print predictions; 1 if any input failed."""
    from mmfer.inference.loader import load
    from mmfer.inference.output import to_csv, to_json, to_table
    from mmfer.inference.predictor import Predictor

    _set_threads(args)
    model = load(args.model, cache_dir=args.cache_dir)  # None = the shipped default model
    if args.about:
        sys.stdout.write(about_text(model))
        if not args.paths:
            return 0
    if not args.paths:
        raise MmferError("mmfer predict: give at least one PATH (or --about)")
    if args.enrol is not None:
        targets = [model] if isinstance(model, Predictor) else [p.predictor for p in model.parts]
        targets = [t for t in targets if t.speaker_norm]
        if not targets:
            raise MmferError("--enrol: this model was not trained with fusion.speaker_norm=true")
        for t in targets:
            e = t.enrol(args.enrol)
            frames = ", ".join(f"{m}: {n} frames" for m, n in e["frames"].items())
            print(f"enrolled {len(e['clips'])} clip(s) from {args.enrol} ({frames})", file=sys.stderr)
        if args.save_enrolled is not None:
            if not isinstance(model, Predictor):
                raise MmferError("--save-enrolled: only for a single (not composed) checkpoint")
            model.save(args.save_enrolled)
            print(f"checkpoint with enrolment written to {args.save_enrolled}", file=sys.stderr)
    model.debug = args.debug_dir is not None
    preds = model.predict(args.paths, transcript=args.transcript)
    render = {"table": to_table, "json": to_json, "csv": to_csv}[args.format]
    text = render(preds)
    if args.output is not None:
        from mmfer.io import atomic_write_text

        atomic_write_text(args.output, text)
        print(f"{len(preds)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.debug_dir is not None:
        from mmfer.inference.debug import write_debug

        parts = [model] if isinstance(model, Predictor) else [p.predictor for p in model.parts]
        face_cfg = next((p.features_cfg.face for p in parts if "face" in p.modalities), None)
        if face_cfg is None or not model.face_results:
            print("--debug-dir: no face crops (the model has no face modality)", file=sys.stderr)
        else:
            csv_path = write_debug(args.debug_dir, model.face_results, face_cfg)
            n = sum(r.frames for r in model.face_results.values())
            found = n - sum(r.no_face for r in model.face_results.values())
            print(
                f"face detected in {found}/{n} frames; crops and rates in {csv_path.parent}", file=sys.stderr
            )
    failed = [p for p in preds if p.error is not None]
    for p in failed:
        print(f"mmfer predict: error: {p.error}", file=sys.stderr)
    if args.timeline is not None:
        _predict_timeline(model, args)  # after the predictions, so a bad video is reported first
    return 1 if failed else 0


def _write_timeline(model: Any, args: argparse.Namespace, video: Path, windows: list[Any] | None) -> None:
    """Build (or finish, from ``windows`` already streamed) the timeline and write HTML + PNG."""
    from mmfer.inference.timeline import build_timeline, timeline_from_windows, write_timeline

    if windows is None:
        tl = build_timeline(
            model, video, window_s=args.window, hop_s=args.hop, transcript=args.transcript, asr=args.asr,
            caption=args.caption,
        )  # fmt: skip
    else:
        from mmfer.inference.timeline import timeline_words

        words, note = timeline_words(video, args.transcript, args.asr)
        caption = " ".join(c for c in (args.caption, f"({note})" if note else "") if c)
        tl = timeline_from_windows(
            model, windows, source=video, window_s=args.window, hop_s=args.hop, words=words, caption=caption
        )
    html_path, png_path = write_timeline(tl, args.timeline)
    print(f"timeline of {len(tl.t_start)} windows written to {html_path} and {png_path}", file=sys.stderr)


def _predict_timeline(model: Any, args: argparse.Namespace) -> None:
    """``--timeline``: the one video among the inputs (an error otherwise)."""
    from mmfer.inference.types import input_kind, resolve_inputs

    videos = [p for p in resolve_inputs(args.paths) if input_kind(p) == "video"]
    if len(videos) != 1:
        raise MmferError(f"--timeline: give exactly one video (got {len(videos)} among the inputs)")
    _write_timeline(model, args, videos[0], None)


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise MmferError(f"{what}: expected NAME=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _part_source(value: str) -> Any:
    """A compose part: a checkpoint path, or ``zeroshot-face[:HEADS]`` (``fer2013``, ``faceapi``, by +)."""
    if not value.startswith("zeroshot-face"):
        return Path(value)
    from mmfer.inference.zeroshot import zeroshot_face_predictor

    heads = value.split(":", 1)[1].split("+") if ":" in value else ["fer2013", "faceapi"]
    return zeroshot_face_predictor(heads)


def cmd_compose(args: argparse.Namespace) -> int:
    """``mmfer compose face=F.safetensors voice=V.safetensors --out M``: one decision-level model."""
    from mmfer.inference.compose import compose, labelled_clips

    parts = _pairs(args.parts, "compose part")
    maps: dict[str, dict[str, str | None]] = {}
    for item in args.map:
        # PART:LABEL=COMMON (COMMON "-" drops the class)
        if ":" not in item or "=" not in item:
            raise MmferError(f"--map: expected PART:LABEL=COMMON, got {item!r}")
        part, rest = item.split(":", 1)
        lab, common = rest.split("=", 1)
        maps.setdefault(part, {})[lab] = None if common == "-" else common
    weights = {k: float(v) for k, v in _pairs(args.weight, "--weight").items()}
    about: dict[str, dict[str, str]] = {}
    for item in args.about_part:
        part, rest = item.split(":", 1) if ":" in item else ("", item)
        k, v = rest.split("=", 1) if "=" in rest else ("note", rest)
        about.setdefault(part, {})[k] = v
    checkpoints = {k: _part_source(v) for k, v in parts.items()}
    model = compose(checkpoints, label_maps=maps, weights=weights, mode=args.mode,
                    about=about, face_detector=args.face_detector)  # fmt: skip
    for name, t in _pairs(args.temperature, "--temperature").items():
        part = next((p for p in model.parts if p.name == name), None)
        if part is None or not float(t) > 0:
            raise MmferError(f"--temperature: no part {name!r}, or temperature {t!r} not > 0")
        part.temperature = float(t)
    if args.fit_weights is not None:
        paths, labels = labelled_clips(args.fit_weights)
        res = model.fit_weights(paths, labels)
        print(f"weights fitted on {res['clips']} clip(s) of {args.fit_weights}: {res['weights']} "
              f"(mean log-likelihood {res['log_likelihood']:.3f}, accuracy {res['accuracy']:.3f})",
              file=sys.stderr)  # fmt: skip
    if args.fit_temperatures is not None:
        paths, labels = labelled_clips(args.fit_temperatures)
        res = model.fit_temperatures(paths, labels)  # refuses clips all from a zero-shot test corpus
        print(f"temperatures fitted on {res['clips']} clip(s) of {args.fit_temperatures}: "
              f"{res['temperatures']} (NLL {res['nll_before']:.3f} -> {res['nll_after']:.3f})",
              file=sys.stderr)  # fmt: skip
    path = model.save(args.out)
    print(f"composed model written to {path}")
    print(about_text(model), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``mmfer serve [--model M]``: run the REST service + web page with uvicorn."""
    try:
        from mmfer.inference.serve import run
    except ImportError as e:  # pragma: no cover - optional extra
        raise MmferError(f"mmfer serve needs the serve extra (pip install 'mmfer[serve]'): {e}") from None

    from mmfer.inference.loader import load

    _set_threads(args)
    model = load(args.model)  # None = the shipped default model; a bad file fails here, before serving
    what = args.model or "the shipped default model"
    print(f"serving {what} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    run(model, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``mmfer export --model M --out model.onnx``: export the model graph, check it with ONNX Runtime."""
    from mmfer.inference.export import export_onnx

    res = export_onnx(args.model, args.out, opset=args.opset, check=not args.no_check)
    diff = "" if res.max_abs_diff is None else f"; max |onnxruntime - torch| = {res.max_abs_diff:.2e}"
    print(f"{res.path} written ({res.method}{diff})")
    return 0


def _window_line(t0: float, t1: float, pred: Any, latency: float, fmt: str) -> str:
    """One window as ``mmfer stream`` prints it (text or a JSON line)."""
    if fmt == "jsonl":
        row = {"t_start": t0, "t_end": t1, "latency_ms": round(latency * 1000, 2), **pred.to_dict()}
        return json.dumps(row)
    if pred.error is not None:
        return f"{t0:7.2f}-{t1:7.2f}s  ERROR {pred.error}  {latency * 1000:7.1f} ms"
    probs = " ".join(f"{k}={v:.2f}" for k, v in pred.probabilities.items())
    note = f"  (missing: {', '.join(pred.modalities_missing)})" if pred.partial else ""
    return f"{t0:7.2f}-{t1:7.2f}s  {pred.label:<10} {probs}  {latency * 1000:7.1f} ms{note}"


def cmd_stream(args: argparse.Namespace) -> int:
    """``mmfer stream VIDEO [--model M] [--timeline OUT.html]``: one line per sliding window."""
    from mmfer.inference.loader import load
    from mmfer.inference.stream import iter_windows

    _set_threads(args)
    predictor = load(args.model)  # None = the shipped default model
    keep = args.timeline is not None
    windows = []
    for d in iter_windows(
        predictor,
        args.video,
        window_s=args.window,
        hop_s=args.hop,
        transcript=args.transcript,
        keep_crops=keep,
    ):
        print(_window_line(d.t_start, d.t_end, d.prediction, d.latency_s, args.format), flush=True)
        if keep:
            windows.append(d)
    if keep:
        _write_timeline(predictor, args, Path(args.video), windows)
    return 0


def _timeline_options(p: argparse.ArgumentParser, *, windows: bool) -> None:
    """``--timeline``, ``--asr`` (and ``--window``/``--hop`` when the command has none)."""
    p.add_argument(
        "--timeline", type=Path, default=None, metavar="OUT.html",
        help="write the emotion timeline of the video: OUT.html (self-contained) and OUT.png",
    )  # fmt: skip
    p.add_argument(
        "--asr", action="store_true",
        help="timeline: show the words recognised in the audio at their times (faster-whisper tiny.en)",
    )  # fmt: skip
    p.add_argument("--caption", default="", help="timeline: text under the figure (e.g. the data source)")
    if windows:
        p.add_argument("--window", type=float, default=2.0, help="timeline window length in seconds")
        p.add_argument("--hop", type=float, default=0.5, help="timeline hop between windows in seconds")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    """The ``predict`` subcommand."""
    p = sub.add_parser("predict", help="predict emotions of video/audio/image/transcript files")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, folders or glob patterns")
    p.add_argument(
        "-m", "--model", default=None, type=Path,
        help="model checkpoint (.safetensors, trained or composed); default: the model shipped with mmfer",
    )  # fmt: skip
    p.add_argument("--about", action="store_true", help="print what the model is (data, accuracy, licence)")
    p.add_argument(
        "--enrol", default=None, metavar="DIR", help="clips of the speaker (speaker-normalised models)"
    )
    p.add_argument("--save-enrolled", type=Path, default=None, help="write the checkpoint with the enrolment")
    p.add_argument(
        "--debug-dir", type=Path, default=None, help="write face-crop contact sheets + detection.csv"
    )
    p.add_argument("--transcript", default=None, help="words spoken (else a sidecar <stem>.txt is used)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    p.add_argument("-o", "--output", type=Path, default=None, help="write to FILE instead of stdout")
    p.add_argument("--cache-dir", type=Path, default=None, help="keep extracted features here")
    p.add_argument(
        "--threads", type=int, default=0, help="threads (0 = the cores free at start, mmfer/runtime.py)"
    )
    _timeline_options(p, windows=True)
    p.set_defaults(func=cmd_predict)


def _add_compose(sub: argparse._SubParsersAction) -> None:
    """The ``compose`` subcommand."""
    p = sub.add_parser("compose", help="fuse unimodal checkpoints (different corpora) at the decision level")
    p.add_argument(
        "parts", nargs="+", metavar="NAME=CHECKPOINT",
        help="e.g. face=ck.safetensors voice=rav.safetensors; face=zeroshot-face[:fer2013+faceapi] is the "
        "zero-shot face part (pretrained heads, nothing trained)",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="destination .safetensors")
    p.add_argument(
        "--mode", choices=("log", "prob"), default="log", help="average log-probabilities or probabilities"
    )
    p.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="part weight (default 1)")
    p.add_argument("--map", action="append", default=[], metavar="PART:LABEL=COMMON",
                   help="map a part's label onto the common set (COMMON '-' drops it)")  # fmt: skip
    p.add_argument("--fit-weights", type=Path, default=None, metavar="DIR",
                   help="fit the weights on held-out labelled clips "
                   "(labels.csv, emotion sub-folders or RAVDESS names)")  # fmt: skip
    p.add_argument("--temperature", action="append", default=[], metavar="NAME=T",
                   help="part temperature: probabilities ** (1/T), renormalised (default 1)")  # fmt: skip
    p.add_argument("--fit-temperatures", type=Path, default=None, metavar="DIR",
                   help="fit one temperature per part (min NLL) on held-out labelled clips; "
                   "refused when all come from a zero-shot test corpus (CK+48)")  # fmt: skip
    p.add_argument("--about-part", action="append", default=[], metavar="PART:KEY=TEXT",
                   help="description stored with a part (training data, accuracy, licence)")  # fmt: skip
    p.add_argument(
        "--face-detector",
        default=None,
        choices=("haar", "dlib_hog", "none"),
        help="face detector of the face parts at inference (haar: heads trained on crops)",
    )
    p.set_defaults(func=cmd_compose)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand."""
    p = sub.add_parser("serve", help="REST service + web page for predictions")
    p.add_argument(
        "-m", "--model", default=None, type=Path,
        help="model checkpoint (.safetensors); default: the model shipped with mmfer",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload")
    p.add_argument(
        "--threads", type=int, default=0, help="threads (0 = the cores free at start, mmfer/runtime.py)"
    )
    p.set_defaults(func=cmd_serve)


def _add_export(sub: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand."""
    p = sub.add_parser("export", help="export the model to ONNX (checked against PyTorch)")
    p.add_argument("-m", "--model", required=True, type=Path, help="model checkpoint (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="destination .onnx file")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.set_defaults(func=cmd_export)


def _add_stream(sub: argparse._SubParsersAction) -> None:
    """The ``stream`` subcommand."""
    p = sub.add_parser("stream", help="sliding-window predictions over a video (per-window latency)")
    p.add_argument("video", type=Path, help="video file")
    p.add_argument(
        "-m", "--model", default=None, type=Path,
        help="model checkpoint (.safetensors); default: the model shipped with mmfer",
    )  # fmt: skip
    p.add_argument("--window", type=float, default=2.0, help="window length in seconds")
    p.add_argument("--hop", type=float, default=0.5, help="hop between windows in seconds")
    p.add_argument("--transcript", default=None, help="words spoken (same for every window)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument(
        "--threads", type=int, default=0, help="threads (0 = the cores free at start, mmfer/runtime.py)"
    )
    _timeline_options(p, windows=False)
    p.set_defaults(func=cmd_stream)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``predict``, ``serve``, ``export`` and ``stream`` to a subparsers object (sets ``func``)."""
    _add_predict(sub)
    _add_compose(sub)
    _add_serve(sub)
    _add_export(sub)
    _add_stream(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one inference subcommand on its own."""
    parser = argparse.ArgumentParser(prog="mmfer", description="mmfer inference commands")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except MmferError as e:
        print(f"mmfer {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
