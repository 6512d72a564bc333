"""Forward+backward and eval-forward latency of every registered model on this CPU.

Usage: python bench/bench_models.py [model ...]
Batch 32 x 8 steps x 1400 fused features, hidden 128, 2 layers (the fused width of
face 1280 + MFCC 120 at the paper's setting). LSTM is the reference in the same run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from mmfer.models import create_model, list_models


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * sorted(times)[len(times) // 2]


def main(names: list[str]) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 8, 1400)  # (batch, time, feat)
    y = torch.randint(0, 8, (32,))
    mask = torch.ones(32, 8, dtype=torch.bool)
    mask[::3, 5:] = False  # every third sample is shorter: exercises padding
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':<12} {'fwd+bwd ms':>11} {'eval fwd ms':>12} {'params':>10}")
    for name in names:
        m = create_model(name, in_features=1400, num_classes=8, hidden_size=128, num_layers=2)

        def step(m: torch.nn.Module = m) -> None:
            m.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(m(x, mask), y).backward()

        for _ in range(3):
            step()
        train_ms = _median_ms(step, 15)
        m.eval()
        with torch.no_grad():
            eval_ms = _median_ms(lambda m=m: m(x, mask), 10)
        n_params = sum(p.numel() for p in m.parameters())
        print(f"{name:<12} {train_ms:>11.2f} {eval_ms:>12.2f} {n_params:>10,}")


if __name__ == "__main__":
    main(sys.argv[1:] or list_models())
