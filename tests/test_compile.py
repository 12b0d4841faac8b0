"""torch.library / torch.compile contracts (docs/semantics.md#notation-and-contracts-shared-by-every-op).

* ``torch.library.opcheck`` (schema, autograd registration, fake tensor, AOT dispatch) passes for
  every registered op (``torch.ops.ganreg_C.<op>``, ``torch.ops.ganreg_triton.<op>``) on every fused
  backend, on that backend's device.
* ``torch.compile(fullgraph=True)`` traces every public op in first-order use without graph breaks
  and gives the eager result; so does the supported R1 pattern: D's forward compiled for the main
  loss, the input gradients taken eagerly (double backward stays outside compiled regions), and the
  penalty compiled over those precomputed gradients.

Compiles are slow on 2 cores (an Inductor compile of a tiny D step takes over a minute on a loaded
machine), so the tests use ``backend="aot_eager"``: Dynamo's fullgraph trace, the fake kernels and
AOT autograd, i.e. everything the ops contribute; Inductor only codegens the surrounding torch ops.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ganreg_ext as gx
from ganreg_ext import _dispatch
from ganreg_ext.augment import pack_diffaug_params
from helpers import FUSED_BACKENDS, need

ALL_OPS = [op for ops in _dispatch.OPS.values() for op in ops]


def _has(backend, ops):
    return backend == "reference" or all(_dispatch.has_op(op, backend) for op in ops)


def _rg(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype).requires_grad_()


def _sample_args(op: str, device) -> list[tuple]:
    """Argument tuples for the registered op ``op`` on ``device``."""
    B = 3
    g = torch.Generator().manual_seed(0)
    fp, ip, flags = pack_diffaug_params(gx.sample_diffaug_params(B, 8, 8, generator=g), B)
    cr = gx.sample_cr_params(B, 8, 8, generator=g)
    cri = torch.cat([cr["flip"].to(torch.int32).view(B, 1), cr["translation"].to(torch.int32)], 1)
    fp, ip, cri = fp.to(device), ip.to(device), cri.to(device)

    def rg(*shape, dtype=torch.float32):
        return torch.randn(shape, dtype=dtype, device=device).requires_grad_()

    inv = torch.tensor(0.5, device=device)
    ap = gx.sample_ada_params(B, 7, 6, 0.9, generator=g, cutout=True)
    ada = (ap["geom"].to(device), ap["color"][:, :3].contiguous().to(device), ap["cutout"].to(device))
    return {
        "sqnorm": [
            ([rg(B, 2, 4, 4), rg(B, 5)], inv, 0.5, 0),
            ([rg(B, 2, 4, 4), rg(7)], None, 1.0, 3),
            ([rg(B, 6)], None, 2.0, 2),
        ],
        "scale": [([rg(B, 2, 4, 4), rg(B, 5)], rg(B), 2.0, True), ([rg(4, 5)], rg(), 0.5, False)],
        "dot": [([rg(B, 2, 4, 4)], [rg(B, 2, 4, 4)], True), ([rg(B, 6)], [rg(B, 6)], False)],
        "noise_dot": [(rg(2, 3, 4, 4), 123, 0.25), (rg(1, 1, 3, 5, dtype=torch.float64), 2**40 + 7, 1.0)],
        "noise_axpy": [
            (rg(2, 3, 4, 4), rg(), 123, 1.0, [2, 3, 4, 4], torch.float32),
            (None, rg(), 9, 0.5, [2, 1, 3, 3], torch.float32),
        ],
        "sq_diff_sum": [(rg(B, 2, 4), rg(B, 2, 4), 0.3)],
        "diff_scale": [(rg(B, 2, 4), rg(B, 2, 4), rg())],
        "diff_augment": [(rg(B, 2, 8, 8), fp, ip, flags)],
        "diff_augment_adj": [(rg(B, 2, 8, 8), fp, ip, flags)],
        "cr_augment": [(rg(B, 2, 8, 8), cri)],
        "cr_augment_adj": [(rg(B, 2, 8, 8), cri)],
        "grad_penalty": [
            ([rg(B, 2, 4, 4), rg(B, 5)], inv, 1.0, 10.0, 0.0, False, 2),
            ([rg(B, 6)], None, 0.5, 2.0, 1e-8, True, 0),
        ],
        "path_length": [(rg(B, 4, 8), torch.tensor(0.5, device=device), 0.01), (rg(B, 8), torch.tensor(0.0, device=device), 0.1)],
        "bias_act": [(rg(B, 4, 5, 5), rg(4), 1, 2, 0.2, 2**0.5, -1.0), (rg(B, 6), None, 1, 8, 0.0, 1.0, 0.5)],
        "bias_act_grad": [
            (rg(B, 4, 5, 5), rg(4), None, [rg(B, 4, 5, 5)], 1, 3, 0.0, 1.0, -1.0, 1),
            (None, None, torch.randn(B, 6, device=device), [rg(B, 6), rg(B, 6)], 1, 2, 0.2, 2**0.5, -1.0, 1),
        ],
        "ada_augment": [(rg(B, 3, 7, 6), *ada, True), (rg(B, 3, 7, 6), ada[0], None, None, False)],
        "ada_augment_adj": [(rg(B, 3, 7, 6), *ada), (rg(B, 3, 7, 6), ada[0], None, ada[2])],
        "upfirdn2d": [
            (rg(B, 2, 7, 6), torch.rand(4, device=device), [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0),
            (rg(1, 3, 8, 9), torch.rand(3, 4, device=device), [1, 1], [2, 2], [1, 1, 0, 2], True, 1.0),
        ],
    }[op]


@pytest.mark.parametrize("backend", FUSED_BACKENDS or ["<none>"])
@pytest.mark.parametrize("op", ALL_OPS)
def test_opcheck(op, backend, device):
    if backend == "<none>":
        pytest.skip("no fused backend is available here")
    need(backend, op)
    for args in _sample_args(op, device):
        torch.library.opcheck(_dispatch.registered(op, backend), args)


def test_every_op_registered_once():
    """One registered op per kernel: the fused backends' ops, no wrapper namespace in between."""
    for op in ALL_OPS:
        assert hasattr(torch.ops.ganreg_C, op), f"torch.ops.ganreg_C.{op} is not registered"
        assert not hasattr(torch.ops.ganreg, op), f"a second layer torch.ops.ganreg.{op} is registered"


# ---------------------------------------------------------------- compiled public ops


def _public_first_order(g, img, a, b, ws, plg, backend):
    """Every public op of the package in first-order use, one graph."""
    p = _PARAMS
    return (
        gx.grad_sqnorm([g, a], inv_scale=0.5, backend=backend),
        gx.r1_penalty(g, backend=backend),
        gx.r2_penalty(g, gamma=1.0, reduction="none", backend=backend),
        gx.gradient_penalty(g, one_sided=True, backend=backend),
        gx.roth_penalty(g, a[:, 0], g, a[:, 1], backend=backend),
        gx.path_length_noise_dot(img, seed=77, backend=backend),
        gx.path_length_penalty(plg, 0.5, backend=backend)[0],
        gx.instance_noise(img, 0.2, seed=5, backend=backend),
        gx.consistency_loss(a, b, backend=backend),
        gx.bcr_loss(a, b, b, a, backend=backend),
        gx.zcr_generator_loss(img, img.flip(0), backend=backend),
        gx.diff_augment(img, params=p["diffaug"], backend=backend),
        gx.cr_augment(img, params=p["cr"], backend=backend),
        gx.ada_augment(img, p["ada"], backend=backend),
        gx.wgan_interpolate(img, img.flip(0), alpha=p["alpha"]),
        gx.lsgan_d_loss(a, b) + gx.hinge_d_loss(a, b) + gx.ns_g_loss(a) + gx.wgan_d_loss(a, b),
    )


_PARAMS: dict = {}
PUBLIC_OPS = ("sqnorm", "scale", "dot", "noise_dot", "noise_axpy", "sq_diff_sum", "diff_scale",
              "diff_augment", "diff_augment_adj", "cr_augment", "cr_augment_adj", "ada_augment", "ada_augment_adj")  # fmt: skip


@pytest.mark.parametrize("backend", FUSED_BACKENDS or ["<none>"])
def test_compile_fullgraph_public_ops(backend, device):
    if backend == "<none>":
        pytest.skip("no fused backend is available here")
    need(backend, *PUBLIC_OPS)
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(1)
    _PARAMS.update(
        diffaug={k: v.to(device) for k, v in gx.sample_diffaug_params(4, 8, 8, generator=g).items()},
        cr={k: v.to(device) for k, v in gx.sample_cr_params(4, 8, 8, generator=g).items()},
        alpha=torch.rand(4, generator=g).to(device),
        ada=gx.sample_ada_params(
            4, 8, 8, 0.8, device=device, generator=torch.Generator(device=device).manual_seed(3), cutout=True
        ),
    )
    shapes = ((4, 3, 8, 8), (4, 3, 8, 8), (4, 2), (4, 2), None, (4, 3, 6))
    inputs = [None if s is None else torch.randn(s, device=device) for s in shapes]

    def run(fn):
        xs = [None if x is None else x.detach().clone().requires_grad_() for x in inputs]
        outs = fn(*xs, backend)
        total = sum(o.float().sum() for o in outs)
        total.backward()
        return [o.detach() for o in outs], [None if x is None else x.grad for x in xs]

    compiled = torch.compile(_public_first_order, fullgraph=True, backend="aot_eager")
    got, got_grads = run(compiled)
    want, want_grads = run(_public_first_order)
    for i, (x, y) in enumerate(zip(got, want)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=lambda m, i=i: f"output {i}: {m}")
    for i, (x, y) in enumerate(zip(got_grads, want_grads)):
        if y is not None:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=lambda m, i=i: f"grad of input {i}: {m}")


class _D(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(8 * 8 * 8, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def _d_step_backend():
    fused = [b for b in FUSED_BACKENDS if _has(b, ("sqnorm", "scale", "dot"))]
    return fused[0] if fused else "reference"


def test_compiled_d_step_with_precomputed_gradients():
    """The documented pattern (docs/recipes.md): compiled D forward for the adversarial loss, eager
    input gradients, the penalty compiled over them; D's parameter gradients equal fully eager."""
    backend = _d_step_backend()
    torch._dynamo.reset()
    torch.manual_seed(0)
    D = _D()
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def penalty(grads, logits_real, logits_fake):
        return gx.ns_d_loss(logits_real, logits_fake) + gx.r1_penalty(grads, gamma=1.0, backend=backend)

    D_compiled = torch.compile(D, fullgraph=True, backend="aot_eager")

    def step(forward, pen_fn):
        D.zero_grad(set_to_none=True)
        x = real.clone().requires_grad_()
        logits_real = D(x)  # eager: its double backward stays outside compiled regions
        (grads,) = torch.autograd.grad(logits_real.sum(), x, create_graph=True)
        loss = pen_fn(grads, logits_real, forward(fake))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in D.parameters()]

    def eager_pen(grads, lr, lf):
        return gx.ns_d_loss(lr, lf) + gx.r1_penalty(grads, gamma=1.0, backend=backend)

    got_loss, got = step(D_compiled, penalty)
    want_loss, want = step(D, eager_pen)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_compile_before_any_probe(monkeypatch):
    """A user who compiles before anything asked for the backend list (fresh process): ``_probe`` runs
    inside the traced region."""
    fused = [b for b in FUSED_BACKENDS if _has(b, ("sqnorm", "scale", "dot"))]
    if not fused:
        pytest.skip("no fused backend has the sqnorm kernels")
    monkeypatch.setattr(_dispatch, "_status", {})
    monkeypatch.setattr(_dispatch, "_resolved", {})
    torch._dynamo.reset()
    fn = torch.compile(lambda g: gx.r1_penalty(g, backend=fused[0]), fullgraph=True, backend="eager")
    g = torch.randn(3, 4)
    torch.testing.assert_close(fn(g), gx.r1_penalty(g, backend="reference"))
