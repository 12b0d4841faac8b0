"""The saved-tensor contract (docs/blocks.md "Saved tensors"): every op keeps for its backward only
what that backward needs, so editing an output in place is legal exactly where nothing of it is
saved (as in StyleGAN2's resnet discriminator, ``x = skip(x).add_(x)`` on a linear ``bias_act``),
and raises autograd's version-counter error where the output is saved (relu/lrelu ``bias_act``).

Each case runs the op twice with the same inputs: once plainly, once with ``out.add_(c)`` right
after the op. Where legal, first- and second-order gradients must be bitwise those of the plain
run (``∂(out + c)/∂out = 1``: the backward computes the same thing); where not, backward must raise.
"""

from __future__ import annotations

import pytest
import torch

import ganreg_ext as gx
from ganreg_ext._contract import ACT_CODES, PIECEWISE_LINEAR
from helpers import ATOMIC_ADJOINT, every_backend

INPLACE_ERROR = "modified by an inplace operation"


def saved_by_bias_act(act: int, clamp: float) -> str:
    """What ``bias_act``'s backward keeps (docs/blocks.md "Saved tensors"; the rule of every fused
    backend, ``bias_act_saves`` in csrc/autograd/bias_act.cpp): ``"nothing"`` for linear without clamp
    (f' = 1: the output may be edited in place), ``"input"`` (x and b) for linear with clamp and the
    smooth activations (every derivative and the clamp mask from z = x + b), ``"output"`` for
    relu/lrelu (f' and the mask from y)."""
    if act == ACT_CODES["linear"]:
        return "input" if clamp >= 0 else "nothing"
    return "output" if act in PIECEWISE_LINEAR else "input"


def _run(fn, inputs, inplace: bool, order: int):
    """Gradients of Σ w·fn(inputs) (order 1) or of Σ v·∂/∂inputs[0] of it (order 2)."""
    out = fn(*inputs)
    if inplace:
        out.add_(torch.randn_like(out))
    w = torch.linspace(-1, 2, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    loss = (out * w).sum()
    grads = torch.autograd.grad(loss, inputs, create_graph=order == 2)
    if order == 1:
        return grads
    if not grads[0].requires_grad:  # a linear map: the second derivative is 0, nothing to run
        return (None,) * len(inputs)
    v = torch.linspace(1, -2, grads[0].numel(), dtype=grads[0].dtype, device=grads[0].device).reshape(grads[0].shape)
    return torch.autograd.grad((grads[0] * v).sum(), inputs, allow_unused=True)


def check(fn, inputs, legal: bool, order: int = 1, exact: bool = True):
    torch.manual_seed(0)
    plain = _run(fn, inputs, False, order)
    if not legal:
        with pytest.raises(RuntimeError, match=INPLACE_ERROR):
            _run(fn, inputs, True, order)
        return
    torch.manual_seed(0)
    edited = _run(fn, inputs, True, order)
    for a, b in zip(plain, edited):
        assert (a is None) == (b is None)
        if a is not None and exact:
            assert torch.equal(a, b)
        elif a is not None:  # an atomicAdd adjoint: last bits vary run to run (float64 here)
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def leaf(*shape, dtype=torch.float64, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device).requires_grad_(True)


@every_backend
@pytest.mark.parametrize("act", list(ACT_CODES))
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_bias_act_inplace_output(backend, device, seed, act, clamp):
    x, b = leaf(2, 5, 3, 4, device=device), leaf(5, device=device)
    saves = saved_by_bias_act(ACT_CODES[act], -1.0 if clamp is None else clamp)
    # the eager reference saves no output in any case (its last op is a product by the gain)
    legal = backend == "reference" or saves != "output"

    def fn(x, b):
        return gx.bias_act(x, b, act=act, clamp=clamp, backend=backend)

    check(fn, (x, b), legal)
    check(fn, (x, b), legal, order=2)


def test_bias_act_saves_follow_the_anchor():
    """StyleGAN2's bias_act: linear keeps nothing; relu/lrelu keep the output; the rest the input."""
    codes = ACT_CODES
    assert saved_by_bias_act(codes["linear"], -1.0) == "nothing"
    assert saved_by_bias_act(codes["linear"], 256.0) == "input"  # the mask recomputed from x + b
    assert {saved_by_bias_act(codes[a], c) for a in ("relu", "lrelu") for c in (-1.0, 1.0)} == {"output"}
    smooth = ("tanh", "sigmoid", "elu", "selu", "softplus", "swish")
    assert {saved_by_bias_act(codes[a], c) for a in smooth for c in (-1.0, 1.0)} == {"input"}


@every_backend
def test_resnet_skip_add_inplace(backend, device, seed):
    """StyleGAN2's residual D block: skip = 1×1 conv + linear bias_act (gain √½, clamp), then
    ``skip.add_(main)``, trained with R1 (double backward through the in-place add)."""
    img = leaf(2, 4, 6, 6, device=device)
    w_skip, w_main = leaf(8, 4, 1, 1, device=device), leaf(8, 4, 3, 3, device=device)
    b_main = leaf(8, device=device)

    def d(img, w_skip, w_main, b_main, inplace):
        y = gx.bias_act(torch.nn.functional.conv2d(img, w_skip), None, gain=0.5**0.5, clamp=256 * 0.5**0.5, backend=backend)
        x = torch.nn.functional.conv2d(img, w_main, padding=1)
        x = gx.bias_act(x, b_main, act="lrelu", gain=0.5**0.5, backend=backend)
        return (y.add_(x) if inplace else y + x).square().mean()

    results = []
    for inplace in (False, True):
        score = d(img, w_skip, w_main, b_main, inplace)
        (g,) = torch.autograd.grad(score, img, create_graph=True)
        r1 = g.square().sum()
        results.append(torch.autograd.grad(r1, (w_skip, w_main, b_main)))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _filt(device):
    return torch.tensor([1.0, 3.0, 2.0, 0.5], dtype=torch.float64, device=device)


@every_backend
@pytest.mark.parametrize(
    "name",
    ["upfirdn2d", "upsample2d", "downsample2d", "filter2d", "filtered_lrelu", "ada_augment", "diff_augment", "cr_augment"],
)
def test_image_ops_inplace_output(backend, device, seed, name):
    """The resampling, filtering and augmentation ops keep only their filters/parameters."""
    x = leaf(2, 3, 8, 7, device=device)
    f = _filt(device)
    fns = {
        "upfirdn2d": lambda x: gx.upfirdn2d(x, f, up=2, down=1, padding=[1, 2, 0, 1], backend=backend),
        "upsample2d": lambda x: gx.upsample2d(x, f, backend=backend),
        "downsample2d": lambda x: gx.downsample2d(x, f, backend=backend),
        "filter2d": lambda x: gx.filter2d(x, f, padding=1, backend=backend),
        "filtered_lrelu": lambda x: gx.filtered_lrelu(x, f, f, up=2, down=2, padding=3, clamp=1.5, backend=backend),
    }
    g = torch.Generator().manual_seed(seed)
    if name == "ada_augment":
        params = gx.sample_ada_params(2, 8, 7, 0.9, device=device, generator=g)
        fns[name] = lambda x: gx.ada_augment(x, params, backend=backend)
    elif name == "diff_augment":
        params = gx.sample_diffaug_params(2, 8, 7, device=device, generator=g)
        fns[name] = lambda x: gx.diff_augment(x, params=params, backend=backend)
    elif name == "cr_augment":
        params = gx.sample_cr_params(2, 8, 7, device=device, generator=g)
        fns[name] = lambda x: gx.cr_augment(x, params=params, backend=backend)
    exact = not (name == "ada_augment" and backend in ATOMIC_ADJOINT)
    check(fns[name], (x,), True, exact=exact)
    check(fns[name], (x,), True, order=2, exact=exact)


@every_backend
@pytest.mark.parametrize(
    "name",
    [
        "r1_penalty",
        "gradient_penalty",
        "path_length_penalty",
        "consistency_loss",
        "bcr_loss",
        "instance_noise",
        "path_length_noise_dot",
    ],
)
def test_regularizer_outputs_inplace(backend, device, seed, name):
    """The penalties keep their inputs, never their outputs: ``loss.mul_(γ)`` after the call is legal."""
    g = leaf(3, 2, 5, 4, device=device)
    fns = {
        "r1_penalty": lambda g: gx.r1_penalty(g, backend=backend),
        "gradient_penalty": lambda g: gx.gradient_penalty(g, backend=backend),
        "path_length_penalty": lambda g: gx.path_length_penalty(
            g.flatten(2), torch.tensor(0.5, dtype=g.dtype, device=device), backend=backend
        )[0],
        "consistency_loss": lambda g: gx.consistency_loss(g, g.flip(0), backend=backend),
        "bcr_loss": lambda g: gx.bcr_loss(g[0], g[1], g[2], g.flip(0)[0], backend=backend),
        "instance_noise": lambda g: gx.instance_noise(g, 0.3, seed=7, backend=backend),
        "path_length_noise_dot": lambda g: gx.path_length_noise_dot(g, seed=7, backend=backend),
    }
    check(fns[name], (g,), True)
    check(fns[name], (g,), True, order=2)
