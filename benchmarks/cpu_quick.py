"""Quick CPU comparison of the ``cpu`` backend against eager and ``torch.compile`` baselines.

For each case (forward+backward through the public API, random-normal inputs) it prints the median
ms of every implementation, measured *interleaved* (one call of each implementation per round), so
ratios are meaningful on a noisy shared machine. When a case's working set (3× its input bytes:
read forward, read and write backward) exceeds the last-level cache, the caches are flushed (a
rewrite of 2×LLC bytes, untimed) before every call, so no input is timed cache-resident; each line
says ``flushed`` or ``warm``. The rounds are :func:`benchmarks.timing.interleaved` (the order
alternating from round to round; warm-up rounds first).

    python -m benchmarks quick                     # all cases, 20 reps
    python -m benchmarks quick --cases r1,diffaug --reps 40
    python -m benchmarks quick --no-compile        # skip torch.compile baselines

Baselines: ``eager`` = ``backend="reference"``; ``compile`` = ``torch.compile`` of that call. For the
noise ops the compiled integer-Philox reference is impractically slow on CPU, so the practical
baselines are the usual ``randn_like`` code (eager and compiled), which uses other noise.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

import ganreg_ext as gx

from . import timing as T
from .cases import SEED


def _randn(shape, gen, grad=True):
    return torch.randn(shape, generator=gen).requires_grad_(grad)


def _fb(fn, leaves, go=None):
    """fwd+bwd runner: clears the leaves' grads, runs fn, backward (with go for non-scalars)."""

    def run():
        for t in leaves:
            t.grad = None
        out = fn()
        if go is None:
            out.backward()
        else:
            out.backward(go)
        return out

    return run


def _vs_reference(op, leaves, compile_, go=None, **kw):
    """fwd+bwd runners of ``op(*leaves, **kw)``: ``eager`` (``backend="reference"``), ``compile`` (its
    ``torch.compile``) and ``cpu``; → (impls, input bytes)."""
    ref = lambda *t: op(*t, backend="reference", **kw)  # noqa: E731
    impls = {"eager": _fb(lambda: ref(*leaves), leaves, go)}
    if compile_:
        c = torch.compile(ref)
        impls["compile"] = _fb(lambda: c(*leaves), leaves, go)
    impls["cpu"] = _fb(lambda: op(*leaves, backend="cpu", **kw), leaves, go)
    return impls, sum(t.nbytes for t in leaves)


def case_r1(gen, compile_):
    return _vs_reference(gx.r1_penalty, [_randn((32, 3, 256, 256), gen)], compile_)


def case_diffaug(gen, compile_):
    x = _randn((32, 3, 64, 64), gen)
    p = gx.sample_diffaug_params(32, 64, 64, generator=gen)
    go = torch.randn((32, 3, 64, 64), generator=gen)
    return _vs_reference(gx.diff_augment, [x], compile_, go, params=p)


def case_cr(gen, compile_):
    x = _randn((32, 3, 64, 64), gen)
    p = gx.sample_cr_params(32, 64, 64, generator=gen)
    go = torch.randn((32, 3, 64, 64), generator=gen)
    return _vs_reference(gx.cr_augment, [x], compile_, go, params=p)


def case_zcr(gen, compile_):
    a = _randn((16, 3, 256, 256), gen)
    b = _randn((16, 3, 256, 256), gen)
    return _vs_reference(gx.zcr_generator_loss, [a, b], compile_)


def case_noise(gen, compile_):
    """instance noise, forward only (its backward is the identity)."""
    x = _randn((16, 3, 256, 256), gen, grad=False)
    randn = lambda t: t + 0.1 * torch.randn_like(t)  # noqa: E731
    impls = {"eager_randn": lambda: randn(x)}
    if compile_:
        c = torch.compile(randn)
        impls["compile_randn"] = lambda: c(x)
    impls["cpu"] = lambda: gx.instance_noise(x, 0.1, seed=SEED, backend="cpu")
    return impls, x.nbytes


def case_pl(gen, compile_):
    x = _randn((16, 3, 256, 256), gen)
    hw = 256 * 256
    randn = lambda t: (t * (torch.randn_like(t) / math.sqrt(hw))).sum()  # noqa: E731
    impls = {"eager_randn": _fb(lambda: randn(x), [x])}
    if compile_:
        c = torch.compile(randn)
        impls["compile_randn"] = _fb(lambda: c(x), [x])
    impls["cpu"] = _fb(lambda: gx.path_length_noise_dot(x, seed=SEED, backend="cpu"), [x])
    return impls, x.nbytes


CASES = {
    "r1": ("R1 32x3x256x256 fwd+bwd", case_r1),
    "diffaug": ("DiffAugment 32x3x64x64 fwd+bwd", case_diffaug),
    "cr": ("cr_augment 32x3x64x64 fwd+bwd", case_cr),
    "zcr": ("zcr_generator_loss 2x16x3x256x256 fwd+bwd", case_zcr),
    "noise": ("instance_noise 16x3x256x256 fwd", case_noise),
    "pl": ("path_length_noise_dot 16x3x256x256 fwd+bwd", case_pl),
}


def bench(impls: dict, reps: int, warmup: int, flush: bool) -> dict:
    """name → (median ms, min ms, minor page faults per call), interleaved; caches flushed before each call with ``flush``."""
    cpu = torch.device("cpu")
    before = (lambda _: T.flush_caches(cpu)) if flush else None
    st = T.interleaved(impls, reps, warmup, before=before, faults=True)
    return {k: (s.median_ms, s.min_ms, s.faults) for k, s in st.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks quick", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--faults", action="store_true", help="also print minor page faults per call")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    llc = T.llc_bytes()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, reps {args.reps}: median ms (min), interleaved; "
        f"LLC {llc >> 20} MiB"
    )
    for key in args.cases.split(","):
        label, make = CASES[key]
        gen = torch.Generator().manual_seed(0)
        impls, nbytes = make(gen, not args.no_compile)
        flush = 3 * nbytes > llc
        res = bench(impls, args.reps, args.warmup, flush)
        cpu = res["cpu"][0]
        parts = []
        for k, (med, lo, flt) in res.items():
            extra = "" if k == "cpu" else f" = {med / cpu:.2f}x cpu"
            pf = f" pf {flt:.0f}" if args.faults else ""
            parts.append(f"{k} {med:.2f} (min {lo:.2f}{pf}){extra}")
        print(f"{label:44s} [{'flushed' if flush else 'warm'}] " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
