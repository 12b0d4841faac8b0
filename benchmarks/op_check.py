"""Every public function × fused backend on fixed random inputs: does it match the eager reference
(output, input gradients, and the double backward where training uses one), is a second call
bitwise identical, and the SHA-256 of all its results (the GPU check compares them across two
processes). ``BEGIN``/``END`` lines bracket each call, so compute-sanitizer errors can be attributed.

    python -m benchmarks check [--device cuda] [--backends cuda,triton] [--shape 16x3x64x64] [--json PATH]

Shapes derive from one image shape (logits ``[B, 1]``, ``pl_grads`` ``[B, C, H·W]``); the StyleGAN
blocks (bias_act at a 512-channel and a 128-channel layer, 2× FIR up/downsampling, filtered_lrelu) and
ADA run at StyleGAN feature-map sizes derived from it (:func:`block_cases`); 4-D inputs are also
checked in channels_last. ADA's backward on CUDA scatters with atomicAdd (documented as not bitwise
reproducible), so its repeat check compares the forward only there. Exit status 0 when every available backend matched and repeated
bitwise, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from . import cases as C
from .checks import errmsg, fused_backends, max_err, outputs


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(b"None" if t is None else f"{t.dtype}{tuple(t.shape)}".encode())
        if t is not None:
            h.update(t.contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def channels_last(inp: C.Inputs) -> C.Inputs | None:
    """The same inputs with every 4-D leaf in channels_last (None when there is none)."""
    if not any(x.dim() == 4 for x in inp.leaves):
        return None
    leaves = [
        x.detach().contiguous(memory_format=torch.channels_last).requires_grad_() if x.dim() == 4 else x for x in inp.leaves
    ]
    return C.Inputs(leaves, inp.kw, inp.grad_out)


ATOMIC_BACKWARD = {("ada_augment", "cuda")}  # (op, backend): gradients summed in an unspecified order


def block_cases(shape) -> list[C.Case]:
    """The blocks and ADA at StyleGAN sizes from the image shape ``[B, C, H, W]``: bias_act on a
    512-channel ``H/8`` map and a 128-channel ``H/2`` one, upsample2d / downsample2d / filtered_lrelu on
    a 32-channel ``H/2`` map, ADA on the images; each with R1 through it as the double backward."""
    B, Ch, H, W = shape
    h2, w2 = max(H // 2, 4), max(W // 2, 4)
    cases = [
        C.bias_act_case((B, 512, max(H // 8, 2), max(W // 8, 2))),
        C.bias_act_case((B, 128, h2, w2)),
        C.upsample2d_case((B, 32, h2, w2)),
        C.downsample2d_case((B, 32, h2, w2)),
        C.filtered_lrelu_case((B, 32, h2, w2)),
        C.ada_case(tuple(shape)),
    ]
    for c in cases:
        c.dbl = C.dbl_through
    return cases


def check(device: torch.device, backends, shape, ops=None, log=print) -> list[dict]:
    """One record per (op, backend, layout): status ok / wrong / error / unavailable, hash, repeat_equal."""
    import ganreg_ext as gx

    recs = []
    for i, case in enumerate(C.overhead_cases(tuple(shape)) + block_cases(tuple(shape))):
        if ops and case.op not in ops:
            continue
        base = case.make(device, torch.float32, torch.Generator(device=device).manual_seed(1000 + i))
        for layout, inp in (("contiguous", base), ("channels_last", channels_last(base))):
            if inp is None:
                continue
            want = outputs(case, inp, lambda x, c=case: c.fn(x, "reference"))
            for b in backends:
                rec = {"op": case.op, "backend": b, "layout": layout}
                log(f"BEGIN {case.op} {b} {layout}")
                try:
                    got = outputs(case, inp, lambda x, b=b, c=case: c.fn(x, b))
                    again = outputs(case, inp, lambda x, b=b, c=case: c.fn(x, b))
                    ok, err, msg = max_err(got, want, *case.tol)
                    # an atomicAdd backward: the hash (compared across processes) and the repeat check
                    # cover the forward only, which must still be bitwise reproducible
                    n = 1 if (case.op, b) in ATOMIC_BACKWARD else len(got)
                    rec.update(status="ok" if ok else "wrong", msg=msg, max_abs_err=err, hash=digest(got[:n]))
                    rec["repeat_equal"] = digest(again[:n]) == rec["hash"]
                    if n == 1:
                        rec["bitwise_scope"] = "forward (atomicAdd backward)"
                except gx.BackendUnavailable as e:
                    rec.update(status="unavailable", msg=str(e))
                except Exception as e:
                    rec.update(status="error", msg=errmsg(e))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                rep = "" if rec.get("repeat_equal", True) else ", NOT bitwise repeatable"
                log(f"END {case.op} {b} {layout}: {rec['status']}{rep} {rec.get('msg', '')}".rstrip())
                recs.append(rec)
    return recs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--backends", default=None, help="comma separated (default: the fused backends native to the device)")
    p.add_argument("--shape", default="16x3x64x64", help="image shape BxCxHxW")
    p.add_argument("--ops", default=None, help="public functions, comma separated (default: all)")
    p.add_argument("--json", default=None, help="write the records here")
    a = p.parse_args(argv)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backends = a.backends.split(",") if a.backends else fused_backends(device)
    recs = check(device, backends, [int(s) for s in a.shape.split("x")], a.ops.split(",") if a.ops else None)
    if a.json:
        Path(a.json).write_text(json.dumps({"device": str(device), "shape": a.shape, "records": recs}, indent=1))
    bad = [r for r in recs if r["status"] in ("wrong", "error") or not r.get("repeat_equal", True)]
    print(f"{len(recs) - len(bad)} ok or unavailable, {len(bad)} wrong / error / not repeatable", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
