"""Call every op of a fused GPU backend once (forward, backward, and a double backward), on small odd
shapes in contiguous and channels_last layouts: the workload of ``compute-sanitizer --tool memcheck``
in ``benchmarks/gpu_check.sh``.

    python -m benchmarks.cuda_ops_once [--backend cuda|triton]

Exit status 0 when every call ran and matched the reference, 1 otherwise, 3 when the backend is
not available.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="cuda")
    p.add_argument("--device", default="cuda", help="cpu: dry run of this script (e.g. --backend reference)")
    a = p.parse_args(argv)
    import ganreg_ext as gx

    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 3
    if a.backend not in gx.available_backends():
        print(f"backend {a.backend!r} unavailable: {gx.backend_info()['backends'][a.backend]['reason']}")
        return 3
    dev, b = torch.device(a.device), a.backend
    torch.manual_seed(0)

    def rn(*shape, cl=False, grad=True):
        t = torch.randn(*shape, device=dev)
        if cl:
            t = t.contiguous(memory_format=torch.channels_last)
        return t.requires_grad_(grad)

    B, H, W = 3, 13, 11
    cr = gx.sample_cr_params(B, H, W, device=dev)
    da = gx.sample_diffaug_params(B, H, W, device=dev)
    calls = {
        "r1_penalty": lambda be, cl: (lambda g: gx.r1_penalty(g, backend=be))(rn(B, 3, H, W, cl=cl)),
        "r1_penalty[list]": lambda be, cl: gx.r1_penalty([rn(B, 3, H, W, cl=cl), rn(B, 5, 4, 4)], backend=be),
        "grad_sqnorm[per_sample=False]": lambda be, cl: gx.grad_sqnorm([rn(7, 5), rn(3, 3, 3)], per_sample=False, backend=be),
        "gradient_penalty": lambda be, cl: gx.gradient_penalty(rn(B, 3, H, W, cl=cl) * 0.1, backend=be),
        "roth_penalty": lambda be, cl: gx.roth_penalty(rn(B, 3, H, W, cl=cl), rn(B, 1), rn(B, 3, H, W), rn(B, 1), backend=be),
        "path_length_noise_dot": lambda be, cl: gx.path_length_noise_dot(rn(B, 3, H, W, cl=cl), seed=123, backend=be),
        "path_length_penalty": lambda be, cl: gx.path_length_penalty(rn(B, 5, 37), 0.5, backend=be)[0].mean(),
        "bcr_loss": lambda be, cl: gx.bcr_loss(rn(B, 1), rn(B, 1), rn(B, 1), rn(B, 1), backend=be),
        "zcr_generator_loss": lambda be, cl: gx.zcr_generator_loss(rn(B, 3, H, W, cl=cl), rn(B, 3, H, W), backend=be),
        "cr_augment": lambda be, cl: gx.cr_augment(rn(B, 3, H, W, cl=cl), cr, backend=be).square().sum(),
        "diff_augment": lambda be, cl: gx.diff_augment(rn(B, 3, H, W, cl=cl), params=da, backend=be).square().sum(),
        "instance_noise": lambda be, cl: gx.instance_noise(rn(B, 3, H, W, cl=cl), 0.1, seed=5, backend=be).square().sum(),
    }
    failed = 0
    for name, call in calls.items():
        for cl in (False, True):
            try:
                torch.manual_seed(1)
                ref = call("reference", cl)
                torch.manual_seed(1)
                out = call(b, cl)
                leaves = [t for t in _leaves(out)]
                grads = torch.autograd.grad(out, leaves, create_graph=True, allow_unused=True)
                tot = sum(g.float().square().sum() for g in grads if g is not None)
                if isinstance(tot, torch.Tensor) and tot.requires_grad:
                    tot.backward()  # double backward through the fused ops
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                torch.testing.assert_close(out.detach().double(), ref.detach().double(), rtol=1e-4, atol=1e-4)
                print(f"ok    {name} channels_last={cl}", flush=True)
            except Exception as e:
                failed += 1
                print(f"FAIL  {name} channels_last={cl}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
    print(f"{len(calls) * 2 - failed} ok, {failed} failed")
    return 1 if failed else 0


def _leaves(out: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors requiring grad that ``out`` depends on (walks the autograd graph)."""
    seen, leaves, stack = set(), [], [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.append(fn.variable)
        stack.extend(f for f, _ in fn.next_functions)
    return leaves


if __name__ == "__main__":
    sys.exit(main())
