"""Speed of zcproxy as ratios to one forward+backward of the same network and batch, measured in ONE
process, interleaved, with one torch thread: every measured item is bracketed by a fresh forward+backward
(train-mode float32 copy, cross-entropy, ``loss.backward()``) and divided by the mean of the two brackets,
which cancels most of the load of a shared machine. Also: the peak RSS of ``score(arch, "all")`` (in a
fresh subprocess), the NTK engine figures the README quotes, and each NAS-Bench-Suite-Zero proxy beside
a faithful re-implementation of its reference loop (zero-cost-nas "foresight" / NASLib: network copy,
forward, ``.backward()`` into ``.grad``, per-layer arrays; the reference code itself is not vendored).

    OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/perf_ratios.py

Writes ``results/perf/perf_ratios.csv`` (one row per arch x item) and ``results/perf/perf_ratios.md``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn

from zcproxy import ntk, scoring
from zcproxy.data import proxy_batch
from zcproxy.space._model import Normalize

from _report import provenance, write_report  # benchmarks/_report.py

ARCHS = (13714, 6418, 14166)  # as benchmarks/proxy_seconds.py
# The 23 proxies the "all" meant (27 outputs); proxies added later are measured by their own benchmarks.
PROXIES = ["az_nas", "croze", "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "linear_regions",
           "meco", "ntk_clean", "ntk_cond", "ntk_joint_clean", "ntk_joint_robust", "ntk_robust", "nwot", "params",
           "plain", "snip", "synflow", "zen", "zico"]
NTK_FIVE = ["ntk_clean", "ntk_robust", "ntk_joint_clean", "ntk_joint_robust", "ntk_cond"]
ALL_TARGET = 15.0      # score(arch, "all") / forward+backward
REF_TARGET = 1.5       # reference seconds / zcproxy seconds, per proxy
RSS_TARGET_MB = 1500.0


# ------------------------------------------------------------------------------------ reference loops
def _conv_linear(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _strip_normalize(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The references feed normalised images to networks without a normalisation layer."""
    removed = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Normalize):
                setattr(parent, name, nn.Identity())
                removed.append(child)
    return lambda x: removed[0](x) if removed else x


def _remove_bn(net: nn.Module) -> None:
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())


def ref_grad_norm(model, x, y):
    net = copy.deepcopy(model).train()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return sum(float(m.weight.grad.norm()) for m in _conv_linear(net) if m.weight.grad is not None)


def ref_plain(model, x, y):
    net = copy.deepcopy(model).train()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return sum(float((m.weight.grad * m.weight).sum()) for m in _conv_linear(net) if m.weight.grad is not None)


def ref_snip(model, x, y):
    """foresight snip: a ones mask per layer, forwards rewritten to use weight * mask, |dL/dmask|."""
    net = copy.deepcopy(model).train()
    for m in _conv_linear(net):
        m.weight_mask = nn.Parameter(torch.ones_like(m.weight))
        m.weight.requires_grad = False
        if isinstance(m, nn.Conv2d):
            m.forward = (lambda self: lambda inp: F.conv2d(inp, self.weight * self.weight_mask, self.bias, self.stride,
                                                           self.padding, self.dilation, self.groups))(m)
        else:
            m.forward = (lambda self: lambda inp: F.linear(inp, self.weight * self.weight_mask, self.bias))(m)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return sum(float(m.weight_mask.grad.abs().sum()) for m in _conv_linear(net))


def ref_grasp(model, x, y):
    """foresight compute_grasp_per_weight (T=1, one iteration): grad, then a create_graph pass, z.backward()."""
    net = copy.deepcopy(model).train()
    weights = [m.weight for m in _conv_linear(net)]
    for w in weights:
        w.requires_grad_(True)
    net.zero_grad()
    grad_w = torch.autograd.grad(F.cross_entropy(net(x), y), weights, allow_unused=True)
    grad_f = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True, allow_unused=True)
    z = sum((gw * gf).sum() for gw, gf in zip(grad_w, grad_f) if gw is not None)
    z.backward()
    return sum(float((-m.weight.data * m.weight.grad).sum()) for m in _conv_linear(net) if m.weight.grad is not None)


def ref_fisher(model, x, y):
    """foresight fisher: every layer's forward routes its output through an identity with a backward hook."""
    net = copy.deepcopy(model).train()
    total = [0.0]
    for m in _conv_linear(net):
        m.dummy = nn.Identity()
        m.fisher = None

        def fwd(inp, self=m):
            out = (F.conv2d(inp, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
                   if isinstance(self, nn.Conv2d) else F.linear(inp, self.weight, self.bias))
            self.act = self.dummy(out)
            return self.act

        def hook(module, grad_input, grad_output, self=m):
            act = self.act.detach()
            grad = grad_output[0].detach()
            g_nk = (act * grad).sum([2, 3]) if act.dim() == 4 else act * grad
            self.fisher = 0.5 * g_nk.pow(2).mean(0)

        m.forward = fwd
        m.dummy.register_full_backward_hook(hook)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    for m in _conv_linear(net):
        if m.fisher is not None:
            total[0] += float(m.fisher.sum()) * m.weight[0].numel()
    return total[0]


def _batch_jacobian(model, x):
    net = copy.deepcopy(model).train()
    normalize = _strip_normalize(net)
    inp = normalize(x).detach().requires_grad_(True)
    net.zero_grad()
    out = net(inp)
    out.backward(torch.ones_like(out))
    return inp.grad.detach().reshape(x.shape[0], -1).numpy(), out.shape[1]


def ref_jacov(model, x, y):
    jac, _ = _batch_jacobian(model, x)
    corrs = np.corrcoef(jac)
    v, _ = np.linalg.eig(corrs)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def ref_epe_nas(model, x, y):
    jac, _ = _batch_jacobian(model, x)
    labels = y.numpy()
    score = 0.0
    for c in np.unique(labels):
        rows = jac[labels == c]
        corr = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
        score += abs(float(np.sum(np.log(np.absolute(corr) + 1e-5))))
    return score


def ref_nwot(model, x, y):
    """NASLib nwot: per ReLU, K += x x^T + (1 - x)(1 - x)^T of the float binary codes, then slogdet."""
    net = copy.deepcopy(model).train()
    n = x.shape[0]
    kernel = [np.zeros((n, n))]

    def hook(module, inp, out):
        codes = (inp[0].view(n, -1) > 0).float()
        kernel[0] = kernel[0] + (codes @ codes.t()).numpy() + ((1.0 - codes) @ (1.0 - codes.t())).numpy()

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return float(np.linalg.slogdet(kernel[0])[1])


def ref_synflow(model, x, y):
    net = copy.deepcopy(model)
    _remove_bn(net)
    _strip_normalize(net)
    net = net.double()
    with torch.no_grad():
        for p in net.state_dict().values():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones((1, *x.shape[1:]), dtype=torch.float64))
    out.sum().backward()
    return sum(float((m.weight * m.weight.grad).abs().sum()) for m in _conv_linear(net) if m.weight.grad is not None)


def ref_zen(model, x, y):
    net = copy.deepcopy(model).train()
    _strip_normalize(net)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(generator=g)
        feats = []
        pool = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)][-1]
        h = pool.register_forward_hook(lambda mod, inp, out: feats.append(inp[0]))
        a = torch.randn(x.shape, generator=g)
        net(a)
        net(a + 0.01 * torch.randn(x.shape, generator=g))
        h.remove()
        score = torch.log(torch.sum(torch.abs(feats[0] - feats[1]), dim=[1, 2, 3]).mean())
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                score = score + torch.log(torch.sqrt(torch.mean(m.running_var)))
    return float(score)


REFERENCES = {"grad_norm": ref_grad_norm, "snip": ref_snip, "grasp": ref_grasp, "fisher": ref_fisher,
              "jacov": ref_jacov, "plain": ref_plain, "synflow": ref_synflow, "nwot": ref_nwot,
              "epe_nas": ref_epe_nas, "zen": ref_zen}


# ------------------------------------------------------------------------------------------ measuring
def _fwd_bwd(model, x, y) -> float:
    net = copy.deepcopy(model).train()
    start = time.perf_counter()
    F.cross_entropy(net(x), y).backward()
    return time.perf_counter() - start


def _bracketed(model, x, y, fn: Callable[[], object]) -> tuple[float, float, object]:
    """(seconds of fn, mean forward+backward seconds just before and after it, fn's result)."""
    before = _fwd_bwd(model, x, y)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    after = _fwd_bwd(model, x, y)
    return seconds, (before + after) / 2, result


def peak_rss_mb(arch: int, proxies: list[str], batch_size: int, seed: int, release: bool = False) -> dict:
    """Peak RSS (MB) of a fresh one-thread process scoring ``arch`` with ``proxies`` in one call, its RSS
    before scoring, and the peak reached before each proxy started (``stages``). ``release=True`` first
    fixes glibc's mmap threshold at 128 KiB (zcproxy._malloc.release_large_frees, the CLI's --low-memory);
    otherwise glibc's default (dynamic) threshold, as zcproxy runs."""
    code = (
        "import json, torch; torch.set_num_threads(1)\n"
        + ("import zcproxy._malloc as zm; assert zm.release_large_frees()\n" if release else "") +
        "from zcproxy import scoring; from zcproxy.data import proxy_batch\n"
        "import zcproxy.proxies._registry as reg\n"
        "def peak():  # VmHWM: this process image's own high-water mark (ru_maxrss would carry the parent's)\n"
        "    return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024\n"
        f"b = proxy_batch('cifar10', n={batch_size}, seed={seed})\n"
        f"model = scoring.build_model({arch}, 'cifar10', {seed})\n"
        "stages = {}\n"
        "begin = reg.ProxyContext._begin\n"
        "def tracked(self, spec, options):\n"
        "    stages[spec.name] = peak()\n"
        "    return begin(self, spec, options)\n"
        "reg.ProxyContext._begin = tracked\n"
        "before = peak()\n"
        f"scoring.score(model, {proxies!r}, batch=b, seed={seed})\n"
        "print(json.dumps({'before_mb': before, 'peak_mb': peak(), 'stages': stages}))\n")
    child_env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    child_env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rss_rows(arch: int, batch: int, seed: int) -> list[dict]:
    rows = []
    for label, release in (("default", False), ("low_memory", True)):
        rss = peak_rss_mb(arch, PROXIES, batch, seed, release)
        rows.append({"arch": arch, "item": label, "kind": "peak_rss_mb", "seconds": float("nan"),
                     "fwd_bwd_seconds": float("nan"), "ratio": float("nan"), "load1": os.getloadavg()[0],
                     "peak_mb": rss["peak_mb"], "before_mb": rss["before_mb"], "threads": 1,
                     "stages": json.dumps({k: round(v) for k, v in rss["stages"].items()}),
                     "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
        print("peak RSS", label, rss, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(map(str, ARCHS)))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: refs, ntk, batch, rss")
    parser.add_argument("--out", default="results/perf/perf_ratios")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from <out>.csv")
    parser.add_argument("--rss-only", action="store_true", help="re-measure only the peak RSS rows of <out>.csv")
    args = parser.parse_args(argv)
    if args.rss_only:
        frame = pd.read_csv(f"{args.out}.csv")
        frame = frame[frame["kind"] != "peak_rss_mb"]
        rows = _rss_rows(int(frame["arch"].iloc[0]), args.batch, args.seed)
        frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
        write_report(frame, args.out, report(frame))
        return 0
    if args.report_only:
        frame = pd.read_csv(f"{args.out}.csv")
        write_report(frame, args.out, report(frame))
        return 0
    if not os.environ.get("ZCPROXY_DATA"):
        parser.error("set ZCPROXY_DATA to the data folder (real CIFAR-10 images are needed)")
    torch.set_num_threads(1)
    skip = {s for s in args.skip.split(",") if s}
    archs = [int(a) for a in args.archs.split(",")]
    batch = proxy_batch("cifar10", n=args.batch, seed=args.seed)
    x, y = batch.x, batch.y
    loads = [os.getloadavg()[0]]
    rows: list[dict] = []

    def record(arch, item, kind, seconds, fb, **extra):
        rows.append({"arch": arch, "item": item, "kind": kind, "seconds": seconds, "fwd_bwd_seconds": fb,
                     "ratio": seconds / fb, "load1": os.getloadavg()[0],
                     "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **extra})
        print(f"arch {arch:5d} {kind:9s} {item:28s} {seconds:8.3f} s  {seconds / fb:7.2f}x fb  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

    for arch in archs:
        model = scoring.build_model(arch, "cifar10", args.seed)
        _fwd_bwd(model, x, y)  # warm-up
        sec, fb, res = _bracketed(model, x, y, lambda: scoring.score(model, PROXIES, batch=batch, seed=args.seed))
        record(arch, "all", "all", sec, fb, outputs=len(res))
        for proxy, secs in {r.settings["proxy"]: r.seconds for r in res.values()}.items():
            record(arch, proxy, "in_all", secs, fb, value=res[proxy].value)
        if "refs" not in skip:
            for proxy, ref in REFERENCES.items():
                sec, fb, res = _bracketed(model, x, y,
                                          lambda: scoring.score(model, [proxy], batch=batch, seed=args.seed))
                record(arch, proxy, "alone", sec, fb, value=res[proxy].value)
                sec, fb, value = _bracketed(model, x, y, lambda: ref(model, x, y))
                record(arch, proxy, "reference", sec, fb, value=value)
        if "ntk" not in skip:
            sec, fb, jac = _bracketed(model, x, y, lambda: ntk.jacobian(model, x))
            frozen_cond = ntk.spectrum(ntk.gram(jac)).cond
            del jac
            record(arch, "frozen_jacobian", "ntk", sec, fb, cond=frozen_cond)
            sec, fb, _ = _bracketed(model, x, y, lambda: scoring.score(model, NTK_FIVE, batch=batch, seed=args.seed))
            record(arch, "five_ntk_scores", "ntk", sec, fb)
            if "batch" not in skip:
                sec, fb, jac = _bracketed(model, x, y, lambda: ntk.jacobian(model, x, bn="batch"))
                record(arch, "batch_jacobian", "ntk", sec, fb, cond=ntk.spectrum(ntk.gram(jac)).cond)
                del jac
        loads.append(os.getloadavg()[0])

    if "rss" not in skip:
        rows += _rss_rows(archs[0], args.batch, args.seed)

    frame = pd.DataFrame(rows)
    frame["batch"], frame["seed"], frame["threads"], frame["torch"] = args.batch, args.seed, 1, torch.__version__
    frame["command"] = ("OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/perf_ratios.py"
                        + (f" --archs {args.archs}" if args.archs != ",".join(map(str, ARCHS)) else "")
                        + (f" --skip {args.skip}" if args.skip else ""))
    lines = report(frame)
    write_report(frame, args.out, lines)
    print("\n".join(lines))
    return 0


def _measured_when(frame: pd.DataFrame) -> list[str]:
    """When the timing rows and the peak-RSS rows were measured (they can be re-measured apart)."""
    if "measured_utc" not in frame:
        return []
    rss = frame["kind"] == "peak_rss_mb"
    spans = [(what, frame.loc[mask, "measured_utc"].dropna()) for what, mask in (("timings", ~rss), ("peak RSS", rss))]
    parts = [f"{what} {v.min()}" + (f" to {v.max()}" if v.max() != v.min() else "") + " UTC"
             for what, v in spans if len(v)]
    return [f"Measured: {'; '.join(parts)}.", ""] if parts else []


def report(frame: pd.DataFrame) -> list[str]:
    """The markdown page for a measurement table (also rebuilt from the csv by ``--report-only``)."""
    command = frame["command"].iloc[0] if "command" in frame else \
        "OMP_NUM_THREADS=1 ZCPROXY_DATA=../shared/data .venv/bin/python benchmarks/perf_ratios.py"
    loads = frame["load1"].dropna()
    batch, seed = int(frame["batch"].iloc[0]), int(frame["seed"].iloc[0])
    lines = ["# zcproxy speed as ratios to one forward+backward", "",
             provenance(command, 1).replace(" when written.", " when this page was written."), "",
             *_measured_when(frame),
             f"NB201 C=16 N=5, CIFAR-10 proxy batch of {batch}, seed {seed}, one process, one torch thread, torch "
             f"{frame['torch'].iloc[0]}. Each item is bracketed by a train-mode float32 forward+backward of the same "
             "network and batch (`ratio` = item seconds / mean of the two brackets). 1-min load average during "
             f"the measurements: {loads.min():.1f}-{loads.max():.1f} on 2 cores (a shared machine: ratios cancel "
             "most of the load, not all of it; the per-proxy split of the one-call run is bracketed as a whole).",
             "", "`alone` = `zcproxy.score(model, [proxy])` (includes the scorer's own overhead: the model copy and "
             "the non-finite-output probe forward); `reference` = the reference loop re-implemented in this "
             "benchmark; `in_all` = the proxy's share of one call scoring all 23 proxies (shared passes are "
             "charged to the first proxy that needs them).", ""]
    summary = summary_table(frame)
    lines += ["## Targets", "",
              f"Targets: all / fb <= {ALL_TARGET:g}; reference / zcproxy >= {REF_TARGET:g} per proxy; peak RSS <= "
              f"{RSS_TARGET_MB:.0f} MB.", "",
              tabulate(summary, headers="keys", tablefmt="github", floatfmt=".2f", showindex=False), ""]
    for _, r in frame[frame["kind"] == "peak_rss_mb"].iterrows():
        allocator = ("as zcproxy runs by default (glibc's dynamic mmap threshold)" if r["item"] == "default" else
                     "with `--low-memory` (mallopt(M_MMAP_THRESHOLD, 131072): freed large blocks go back to the "
                     "system at once, at a longer run time, [allocator.md](allocator.md))")
        lines += [f"Peak RSS of a fresh process scoring arch {int(r['arch'])} with all 23 proxies, {allocator}: "
                  f"**{r['peak_mb']:.0f} MB** ({r['before_mb']:.0f} MB before scoring; target <= {RSS_TARGET_MB:.0f} "
                  f"MB: **{'met' if r['peak_mb'] <= RSS_TARGET_MB else 'not met'}**). Peak before each proxy "
                  f"started (MB): {r.get('stages', '')}."
                  + (f" Measured {r['measured_utc']} UTC (`--rss-only` re-measures these rows alone)."
                     if isinstance(r.get("measured_utc"), str) else ""), ""]
    lines += ["## Every measurement", "",
              tabulate(frame[[c for c in ("arch", "kind", "item", "seconds", "fwd_bwd_seconds", "ratio", "value",
                                          "cond", "load1") if c in frame]].dropna(subset=["ratio"]),
                       headers="keys", tablefmt="github", floatfmt=".4g", showindex=False), ""]
    return lines


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arch: all/fwd+bwd, the NTK engine ratios and, per reference proxy, reference / zcproxy seconds."""
    out = []
    for arch, part in frame.groupby("arch", sort=False):
        item = part.set_index(["kind", "item"])["ratio"]
        row: dict = {"arch": arch}
        if ("all", "all") in item:
            row["all / fb"] = item[("all", "all")]
        if ("ntk", "frozen_jacobian") in item:
            row["frozen J / fb"] = item[("ntk", "frozen_jacobian")]
            row["five NTK / fb"] = item[("ntk", "five_ntk_scores")]
        if ("ntk", "batch_jacobian") in item:
            row["batch J / frozen J"] = item[("ntk", "batch_jacobian")] / item[("ntk", "frozen_jacobian")]
            cond = part.set_index("item")["cond"]
            row["cond frozen / batch"] = cond["frozen_jacobian"] / cond["batch_jacobian"]
        refs = [p for p in REFERENCES if ("reference", p) in item]
        if refs:
            speedups = {p: item[("reference", p)] / item[("alone", p)] for p in refs}
            row["min ref/zc (alone)"] = min(speedups.values())
            row["worst proxy"] = min(speedups, key=speedups.get)
            row["median ref/zc"] = statistics.median(speedups.values())
            in_all = [p for p in refs if ("in_all", p) in item]
            if in_all:
                row["sum ref / sum in_all"] = (sum(item[("reference", p)] for p in in_all)
                                               / sum(item[("in_all", p)] for p in in_all))
        out.append(row)
    return pd.DataFrame(out)


if __name__ == "__main__":
    raise SystemExit(main())
