"""Inference subcommands of the ``mmfer`` command line: predict, serve, export, stream.

:func:`register` adds them to the main parser (``mmfer.cli``); each sets
``func`` to a ``(args) -> exit code`` function. :func:`main` runs them alone
(``python -m mmfer.cli_infer predict ...``).

Exit codes: 0 success; 1 ``predict`` made some predictions but some inputs
failed; 2 bad model/arguments (an :class:`~mmfer.errors.MmferError`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mmfer.errors import MmferError

__all__ = ["cmd_export", "cmd_predict", "cmd_serve", "cmd_stream", "main", "register"]


def _set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (0 = torch default)."""
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)


def cmd_predict(args: argparse.Namespace) -> int:
    """``mmfer predict PATH... --model M``: print predictions; 1 if any input failed."""
    from mmfer.api import load, to_csv, to_json, to_table

    _set_threads(args)
    predictor = load(args.model, cache_dir=args.cache_dir)
    preds = predictor.predict(args.paths, transcript=args.transcript)
    render = {"table": to_table, "json": to_json, "csv": to_csv}[args.format]
    text = render(preds)
    if args.output is not None:
        from mmfer.io import atomic_write_text

        atomic_write_text(args.output, text)
        print(f"{len(preds)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    failed = [p for p in preds if p.error is not None]
    for p in failed:
        print(f"mmfer predict: error: {p.error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``mmfer serve --model M``: run the REST service + web page with uvicorn."""
    try:
        from mmfer.serve import run
    except ImportError as e:  # pragma: no cover - optional extra
        raise MmferError(f"mmfer serve needs the serve extra (pip install 'mmfer[serve]'): {e}") from None

    _set_threads(args)
    print(f"serving {args.model} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    run(args.model, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``mmfer export --model M --out model.onnx``: export the model graph, check it with ONNX Runtime."""
    from mmfer.export import export_onnx

    res = export_onnx(args.model, args.out, opset=args.opset, check=not args.no_check)
    diff = "" if res.max_abs_diff is None else f"; max |onnxruntime - torch| = {res.max_abs_diff:.2e}"
    print(f"{res.path} written ({res.method}{diff})")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    """``mmfer stream VIDEO --model M``: one line per sliding window with label, probabilities, latency."""
    from mmfer.api import load
    from mmfer.stream import stream_predictions

    _set_threads(args)
    predictor = load(args.model)
    for t0, t1, pred, latency in stream_predictions(
        predictor, args.video, window_s=args.window, hop_s=args.hop, transcript=args.transcript
    ):
        if args.format == "jsonl":
            row = {"t_start": t0, "t_end": t1, "latency_ms": round(latency * 1000, 2), **pred.to_dict()}
            print(json.dumps(row), flush=True)
            continue
        if pred.error is not None:
            print(f"{t0:7.2f}-{t1:7.2f}s  ERROR {pred.error}  {latency * 1000:7.1f} ms", flush=True)
            continue
        probs = " ".join(f"{k}={v:.2f}" for k, v in pred.probabilities.items())
        note = f"  (missing: {', '.join(pred.modalities_missing)})" if pred.partial else ""
        print(f"{t0:7.2f}-{t1:7.2f}s  {pred.label:<10} {probs}  {latency * 1000:7.1f} ms{note}", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``predict``, ``serve``, ``export`` and ``stream`` to a subparsers object (sets ``func``)."""
    p = sub.add_parser("predict", help="predict emotions of video/audio/image/transcript files")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or glob patterns")
    p.add_argument("-m", "--model", required=True, type=Path, help="model checkpoint (.safetensors)")
    p.add_argument("--transcript", default=None, help="words spoken (else a sidecar <stem>.txt is used)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    p.add_argument("-o", "--output", type=Path, default=None, help="write to FILE instead of stdout")
    p.add_argument("--cache-dir", type=Path, default=None, help="keep extracted features here")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = default; 1 is steadier on a busy machine)"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="REST service + web page for predictions")
    p.add_argument("-m", "--model", required=True, type=Path, help="model checkpoint (.safetensors)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = default; 1 is steadier on a busy machine)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="export the model to ONNX (checked against PyTorch)")
    p.add_argument("-m", "--model", required=True, type=Path, help="model checkpoint (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="destination .onnx file")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("stream", help="sliding-window predictions over a video (per-window latency)")
    p.add_argument("video", type=Path, help="video file")
    p.add_argument("-m", "--model", required=True, type=Path, help="model checkpoint (.safetensors)")
    p.add_argument("--window", type=float, default=2.0, help="window length in seconds")
    p.add_argument("--hop", type=float, default=0.5, help="hop between windows in seconds")
    p.add_argument("--transcript", default=None, help="words spoken (same for every window)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = default; 1 is steadier on a busy machine)"
    )
    p.set_defaults(func=cmd_stream)


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
