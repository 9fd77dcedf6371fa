"""How to differentiate the rows of the batch-statistics Jacobian (``zcproxy.ntk.jacobian(bn="batch")``).

With train-mode BatchNorm every output row depends on the whole batch, so the Jacobian costs one forward
and N backward passes of the batch. ``chunk_size`` sets how many rows one (vectorised) backward pass
handles: 1 (the default, a loop of pullbacks), a few, or all N at once. This script times those choices,
the default with its channels-last conversion switched off (``NCHW``), the frozen-statistics Jacobian and
one batched forward+backward interleaved in one process (minimum over ``--repeats``), so the ratios share
the machine load.

    .venv/bin/python benchmarks/ntk_batch_rows.py --threads 2 --out results/perf/ntk_batch_rows

Writes ``<out>.csv`` and ``<out>.md``.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from tabulate import tabulate

from zcproxy import ntk
from zcproxy.data import proxy_batch
from zcproxy.scoring import build_model

from _report import provenance, write_report  # benchmarks/_report.py

# (arch, N, row chunks to time): the fewest-parameter and the median representative of results/perf/ntk_speed,
# and a large one (13714, one of the proxy-seconds archs)
CASES = ((3, 16, (1, 16)), (3, 64, (1, 8, 64)), (102, 64, (1, 8)), (13714, 64, (1,)))


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _nchw_batch_jacobian(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The default batch Jacobian with its channels-last conversion switched off (the layout reference)."""
    convert = ntk._channels_last
    ntk._channels_last = lambda theta, frozen, images: (theta, frozen, images)
    try:
        ntk.jacobian(model, x, bn="batch")
    finally:
        ntk._channels_last = convert


def measure(arch: int, n: int, chunks: tuple[int, ...], *, repeats: int, seed: int) -> list[dict]:
    batch = proxy_batch("cifar10", n=n, seed=seed)
    model = build_model(arch, "cifar10", seed)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        model.train()(batch.x).sum().backward()

    methods = {"fwd_bwd": fwd_bwd, "frozen": lambda: ntk.jacobian(model, batch.x, bn="frozen"),
               "batch rows/pass=1, NCHW": lambda: _nchw_batch_jacobian(model, batch.x)}
    for chunk in chunks:
        methods[f"batch rows/pass={chunk}"] = lambda c=chunk: ntk.jacobian(model, batch.x, bn="batch", chunk_size=c)
    times: dict[str, float] = {name: float("inf") for name in methods}
    for _ in range(repeats):  # interleaved: each method sees the same load
        for name, fn in methods.items():
            times[name] = min(times[name], _seconds(fn))
    params = sum(p.numel() for p in model.parameters())
    return [{"arch": arch, "params": params, "n": n, "method": name, "seconds": s,
             "ratio_to_fwd_bwd": s / times["fwd_bwd"], "ratio_to_frozen": s / times["frozen"]}
            for name, s in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/perf/ntk_batch_rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for arch, n, chunks in CASES:
        rows += measure(arch, n, chunks, repeats=args.repeats, seed=args.seed)
        print(f"arch {arch} N={n} done", flush=True)
    table = pd.DataFrame(rows)
    command = f"benchmarks/ntk_batch_rows.py --threads {args.threads} --repeats {args.repeats} --seed {args.seed}"
    shown = table.assign(seconds=table.seconds.map("{:.2f}".format),
                         ratio_to_fwd_bwd=table.ratio_to_fwd_bwd.map("{:.1f}".format),
                         ratio_to_frozen=table.ratio_to_frozen.map("{:.1f}".format))
    markdown = [
        "# Rows per backward pass of the batch-statistics Jacobian",
        "",
        provenance(command, args.threads),
        "Minimum over the repeats, all methods interleaved in one process. `batch rows/pass=k` is "
        "`zcproxy.ntk.jacobian(model, x, bn=\"batch\", chunk_size=k)` (k = 1 is the default, which converts "
        "images and 4-d weights to channels-last on CPU); `batch rows/pass=1, NCHW` the same default with that "
        "conversion switched off; `frozen` the frozen-statistics Jacobian; `fwd_bwd` one train-mode "
        "forward+backward of the batch.",
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False),
    ]
    written = write_report(table, args.out, markdown)
    print("wrote", *written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
