"""Differentiable augmentation (docs/semantics.md#augmentation-diffaugment-and-the-cr-transform): the reference against the ORIGINAL DiffAugment code
(mit-han-lab/data-efficient-gans ``DiffAugment_pytorch.py``, transcribed below) and StudioGAN's CR
transform, gradients, and the fused-backend matrix (fused vs reference given the same params)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext.reference import augment as ref
from helpers import CR, DA, DTYPES, LAYOUTS, assert_close, every_backend, fused, leaf, make, need

# ---------------------------------------------------------------------------------------------
# the original DiffAugment (Zhao et al. 2020), transcribed; meshgrid gets indexing="ij" (its default)


def DiffAugment(x, policy="", channels_first=True):
    if policy:
        if not channels_first:
            x = x.permute(0, 3, 1, 2)
        for p in policy.split(","):
            for f in AUGMENT_FNS[p]:
                x = f(x)
        if not channels_first:
            x = x.permute(0, 2, 3, 1)
        x = x.contiguous()
    return x


def rand_brightness(x):
    x = x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)
    return x


def rand_saturation(x):
    x_mean = x.mean(dim=1, keepdim=True)
    x = (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + x_mean
    return x


def rand_contrast(x):
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + x_mean
    return x


def rand_translation(x, ratio=0.125):
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], device=x.device)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(x.size(2), dtype=torch.long, device=x.device),
        torch.arange(x.size(3), dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    x = x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)
    return x


def rand_cutout(x, ratio=0.5):
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = torch.randint(0, x.size(2) + (1 - cutout_size[0] % 2), size=[x.size(0), 1, 1], device=x.device)
    offset_y = torch.randint(0, x.size(3) + (1 - cutout_size[1] % 2), size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(cutout_size[0], dtype=torch.long, device=x.device),
        torch.arange(cutout_size[1], dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    x = x * mask.unsqueeze(1)
    return x


AUGMENT_FNS = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}

POLICIES = ["color", "translation", "cutout", "color,translation", "translation,cutout", "color,translation,cutout"]
DA_SHAPES = [(1, 3, 5, 7), (4, 3, 8, 8), (3, 2, 9, 13), (2, 3, 16, 16)]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shape", DA_SHAPES, ids=str)
def test_diff_augment_matches_original(seed, policy, shape):
    x = torch.randn(shape)
    s = seed + 11
    torch.manual_seed(s)
    exp = DiffAugment(x, policy)
    torch.manual_seed(s)
    params = gx.sample_diffaug_params(shape[0], shape[2], shape[3], policy, generator=None)
    out = gx.diff_augment(x, policy, params=params, backend="reference")
    assert out.is_contiguous() and out.dtype == x.dtype
    torch.testing.assert_close(out, exp, rtol=1e-6, atol=1e-6)
    # with params=None and the same RNG state, the op samples the same augmentation itself
    torch.manual_seed(s)
    torch.testing.assert_close(gx.diff_augment(x, policy, backend="reference"), exp, rtol=1e-6, atol=1e-6)
    # and the gradient is the original's (autograd through the original code)
    xr = x.clone().requires_grad_()
    torch.manual_seed(s)
    v = torch.randn(shape, generator=torch.Generator().manual_seed(s))
    (g_exp,) = torch.autograd.grad(DiffAugment(xr, policy), xr, v)
    (g,) = torch.autograd.grad(gx.diff_augment(xr, policy, params=params, backend="reference"), xr, v)
    torch.testing.assert_close(g, g_exp, rtol=1e-5, atol=1e-6)


def test_diff_augment_edge_params(seed):
    """Largest shifts both ways and cutout centres at the borders (clipped squares)."""
    B, H, W = 4, 9, 13
    x = torch.randn(B, 3, H, W)
    sx, sy = ref.translation_shift(H, W)
    params = {
        "translation": torch.tensor([[sx, sy], [-sx, -sy], [sx, -sy], [0, 0]]),
        "cutout": torch.tensor([[0, 0], [H, W], [H - 1, 0], [H // 2, W - 1]]),
    }
    out = gx.diff_augment(x, "translation,cutout", params=params, backend="reference")
    ch, cw = ref.cutout_size(H, W)
    for b in range(B):
        tx, ty = params["translation"][b].tolist()
        ox, oy = params["cutout"][b].tolist()
        for i in range(H):
            for j in range(W):
                src_ok = 0 <= i + tx < H and 0 <= j + ty < W
                cut = ox - ch // 2 <= i < ox - ch // 2 + ch and oy - cw // 2 <= j < oy - cw // 2 + cw
                exp = x[b, :, i + tx, j + ty] if src_ok and not cut else torch.zeros(3)
                torch.testing.assert_close(out[b, :, i, j], exp, rtol=0, atol=0)


def test_sample_diffaug_params_ranges(seed):
    B, H, W = 512, 9, 13
    p = gx.sample_diffaug_params(B, H, W)
    assert set(p) == {"brightness", "saturation", "contrast", "translation", "cutout"}
    for k in ("brightness", "saturation", "contrast"):
        assert p[k].shape == (B,) and ((p[k] >= 0) & (p[k] < 1)).all()
    sx, sy = ref.translation_shift(H, W)
    t = p["translation"]
    assert t.shape == (B, 2) and t[:, 0].min() == -sx and t[:, 0].max() == sx and t[:, 1].min() == -sy and t[:, 1].max() == sy
    ch, cw = ref.cutout_size(H, W)
    o = p["cutout"]
    assert o[:, 0].min() == 0 and o[:, 0].max() == H - 1 + (1 - ch % 2) and o[:, 1].max() == W - 1 + (1 - cw % 2)
    assert set(gx.sample_diffaug_params(2, 8, 8, "cutout")) == {"cutout"}


# ---------------------------------------------------------------------------------------------
# StudioGAN CR transform (src/utils/cr_diff_aug.py), transcribed with injectable draws


def studiogan_cr(x, flip=None, t_x=None, t_y=None, ratio=1 / 8, p=0.5):
    n, c, h, w = x.shape
    # random_flip
    x_out = x.clone()
    if flip is None:
        flip_prob = torch.FloatTensor(n, 1).uniform_(0.0, 1.0)
        flip = flip_prob < p
    flip_mask = flip.type(torch.bool).view(n, 1, 1, 1).repeat(1, c, h, w).to(x.device)
    x_out[flip_mask] = torch.flip(x[flip_mask].view(-1, c, h, w), [3]).view(-1)
    x = x_out
    # random_translation
    max_t_x, max_t_y = int(x.shape[2] * ratio), int(x.shape[3] * ratio)
    if t_x is None:
        t_x = torch.randint(-max_t_x, max_t_x + 1, size=[x.shape[0], 1, 1], device=x.device)
        t_y = torch.randint(-max_t_y, max_t_y + 1, size=[x.shape[0], 1, 1], device=x.device)
    t_x, t_y = t_x.view(n, 1, 1), t_y.view(n, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.shape[0], dtype=torch.long, device=x.device),
        torch.arange(x.shape[2], dtype=torch.long, device=x.device),
        torch.arange(x.shape[3], dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = (grid_x + t_x) + max_t_x
    grid_y = (grid_y + t_y) + max_t_y
    # (StudioGAN pads [max_t_x, max_t_x, max_t_y, max_t_y]: W by the H shift; equal for square images)
    x_pad = F.pad(input=x, pad=[max_t_x, max_t_x, max_t_y, max_t_y], mode="reflect")
    x = x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)
    return x.contiguous()


@pytest.mark.parametrize("size", [8, 16, 32])
def test_cr_augment_matches_studiogan(seed, size):
    B = 6
    x = torch.randn(B, 3, size, size)
    params = gx.sample_cr_params(B, size, size)
    exp = studiogan_cr(x, params["flip"], params["translation"][:, 0], params["translation"][:, 1])
    out = gx.cr_augment(x, params=params, backend="reference")
    torch.testing.assert_close(out, exp, rtol=0, atol=0)
    # the sampler draws what StudioGAN draws from the same RNG state
    s = seed + 5
    torch.manual_seed(s)
    exp2 = studiogan_cr(x)
    torch.manual_seed(s)
    torch.testing.assert_close(gx.cr_augment(x, backend="reference"), exp2, rtol=0, atol=0)


def test_cr_augment_non_square_formula(seed):
    """``out[c,i,j] = xf[c, reflect_H(i+tx), reflect_W(j+ty)]`` for non-square images too."""
    B, H, W = 4, 16, 9
    x = torch.randn(B, 2, H, W)
    sx, sy = ref.cr_shift(H, W)
    params = {
        "flip": torch.tensor([True, False, True, False]),
        "translation": torch.tensor([[sx, sy], [-sx, -sy], [-sx, sy], [1, 0]]),
    }
    out = gx.cr_augment(x, params=params, backend="reference")

    def refl(p, n):
        return -p if p < 0 else 2 * (n - 1) - p if p >= n else p

    for b in range(B):
        xf = x[b].flip(2) if params["flip"][b] else x[b]
        tx, ty = params["translation"][b].tolist()
        for i in range(H):
            for j in range(W):
                torch.testing.assert_close(out[b, :, i, j], xf[:, refl(i + tx, H), refl(j + ty, W)], rtol=0, atol=0)


def test_sample_cr_params(seed):
    p = gx.sample_cr_params(4000, 16, 24)
    assert p["flip"].dtype == torch.bool and abs(p["flip"].float().mean().item() - 0.5) < 0.05
    t = p["translation"]
    assert t[:, 0].min() == -2 and t[:, 0].max() == 2 and t[:, 1].min() == -3 and t[:, 1].max() == 3


# ---------------------------------------------------------------------------------------------
# gradients of the reference


@pytest.mark.parametrize("policy", ["color", "color,translation,cutout"])
def test_reference_gradcheck_diff_augment(seed, policy):
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    params = gx.sample_diffaug_params(2, 4, 5, policy)
    fn = lambda x: gx.diff_augment(x, policy, params=params, backend="reference")  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_reference_gradcheck_cr_augment(seed):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    params = {"flip": torch.tensor([True, False]), "translation": torch.tensor([[1, -1], [-1, 1]])}
    fn = lambda x: gx.cr_augment(x, params=params, backend="reference")  # noqa: E731
    assert gradcheck(fn, (x,), fast_mode=True)  # 128 inputs: a random projection keeps it quick
    assert gradgradcheck(fn, (x,), fast_mode=True)
    # the Jacobian of a flip + reflect-shift is a 0/1 gather matrix: every output reads exactly one input
    (jac,) = torch.autograd.functional.jacobian(fn, x.detach()).reshape(1, x.numel(), x.numel()).unbind(0)
    assert torch.equal(jac.sum(1), torch.ones(x.numel(), dtype=jac.dtype)) and set(jac.unique().tolist()) <= {0.0, 1.0}


# =============================================================================================
# backend matrix

MATRIX_DA_SHAPES = [(1, 3, 5, 7), (3, 2, 9, 13), (2, 3, 16, 16)]
CR_SHAPES = [(1, 3, 8, 8), (3, 2, 16, 9), (2, 1, 8, 24)]


def _compare(fn_ref, fn_fused, x0, dtype, msg):
    res = []
    for fn in (fn_ref, fn_fused):
        x = leaf(x0)
        out = fn(x)
        assert out.dtype == dtype and out.shape == x0.shape and out.is_contiguous()
        v = torch.linspace(-1, 1, out.numel(), device=out.device, dtype=torch.float32).view(out.shape).to(dtype)
        out.backward(v)
        res.append((out.detach(), x.grad))
    assert_close(res[1][0], res[0][0], msg=f"forward {msg}")
    assert_close(res[1][1], res[0][1], msg=f"backward {msg}")


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_diff_augment(backend, device, dtype, layout, seed):
    need(backend, *DA)
    gen = torch.Generator(device).manual_seed(seed)
    for i, shape in enumerate(MATRIX_DA_SHAPES):
        x0 = make(shape, dtype, device, layout)
        policies = POLICIES if i == 0 else ["color,translation,cutout", POLICIES[i % 5]]
        for policy in policies:
            p = gx.sample_diffaug_params(shape[0], shape[2], shape[3], policy, device=device, generator=gen)
            _compare(
                lambda x, policy=policy, p=p: gx.diff_augment(x, policy, params=p, backend="reference"),
                lambda x, policy=policy, p=p: gx.diff_augment(x, policy, params=p, backend=backend),
                x0, dtype, f"{shape} {policy}",
            )  # fmt: skip


@fused
def test_matrix_diff_augment_edge_params(backend, device, seed):
    need(backend, *DA)
    B, H, W = 4, 9, 13
    sx, sy = ref.translation_shift(H, W)
    p = gx.sample_diffaug_params(B, H, W, device=device)
    p["translation"] = torch.tensor([[sx, sy], [-sx, -sy], [sx, -sy], [0, 0]], device=device)
    p["cutout"] = torch.tensor([[0, 0], [H, W], [H - 1, 0], [H // 2, W - 1]], device=device)
    _compare(
        lambda x: gx.diff_augment(x, params=p, backend="reference"),
        lambda x: gx.diff_augment(x, params=p, backend=backend),
        make((B, 3, H, W), torch.float32, device), torch.float32, "edges",
    )  # fmt: skip


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_cr_augment(backend, device, dtype, layout, seed):
    need(backend, *CR)
    gen = torch.Generator(device).manual_seed(seed)
    for shape in CR_SHAPES:
        B, _, H, W = shape
        sx, sy = ref.cr_shift(H, W)
        x0 = make(shape, dtype, device, layout)
        sampled = gx.sample_cr_params(B, H, W, device=device, generator=gen)
        extreme = {  # the largest shifts, both signs, with and without flip
            "flip": torch.arange(B, device=device) % 2 == 0,
            "translation": torch.tensor([[sx, -sy], [-sx, sy], [sx, sy]], device=device)[:B],
        }
        for p in (sampled, extreme):
            _compare(
                lambda x, p=p: gx.cr_augment(x, params=p, backend="reference"),
                lambda x, p=p: gx.cr_augment(x, params=p, backend=backend),
                x0, dtype, f"{shape} {p}",
            )  # fmt: skip


@fused
def test_matrix_gradcheck(backend, device, seed):
    need(backend, *DA, *CR)
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    p = gx.sample_diffaug_params(2, 4, 5, device=device)
    fn = lambda x: gx.diff_augment(x, params=p, backend=backend)  # noqa: E731
    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)
    y = torch.randn(2, 1, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    q = {"flip": torch.tensor([True, False], device=device), "translation": torch.tensor([[1, -1], [-1, 1]], device=device)}
    fn2 = lambda y: gx.cr_augment(y, params=q, backend=backend)  # noqa: E731
    assert gradcheck(fn2, (y,), fast_mode=True)
    assert gradgradcheck(fn2, (y,), fast_mode=True)


@fused
def test_matrix_deterministic(backend, device, seed):
    need(backend, *DA, *CR)
    x0 = make((3, 3, 16, 16), torch.float16, device, "channels_last")
    p = gx.sample_diffaug_params(3, 16, 16, device=device)
    q = gx.sample_cr_params(3, 16, 16, device=device)
    res = []
    for _ in range(2):
        x = leaf(x0)
        a = gx.diff_augment(x, params=p, backend=backend)
        b = gx.cr_augment(x, params=q, backend=backend)
        (a.float().square().sum() + b.float().sum()).backward()
        res.append((a, b, x.grad))
    for u, v in zip(*res):
        assert torch.equal(u, v)


@fused
def test_matrix_expanded_grad_outputs(backend, device, seed):
    need(backend, *DA, *CR)
    x0 = make((2, 3, 8, 9), torch.float32, device)
    p = gx.sample_diffaug_params(2, 8, 9, device=device)
    q = gx.sample_cr_params(2, 8, 9, device=device)
    res = []
    for name in ("reference", backend):
        x = leaf(x0)
        out = gx.diff_augment(x, params=p, backend=name).sum() + gx.cr_augment(x, params=q, backend=name).sum()
        out.backward()
        res.append(x.grad)
    torch.testing.assert_close(res[1], res[0], rtol=2e-5, atol=1e-5)


def _reflect(p, n):
    p = torch.where(p < 0, -p, p)
    return torch.where(p >= n, 2 * (n - 1) - p, p)


@every_backend
@pytest.mark.parametrize("H,W", [(7, 5), (1, 6), (2, 2), (16, 8)])
def test_cr_shifts_up_to_size_minus_1(backend, device, H, W, seed):
    """Shifts |t| up to N − 1 (the range ``cr_augment`` accepts; the sampler stays within size/8),
    with and without flip: the forward against the contract's reflect formula (exact), the adjoint
    exact by ⟨A x, g⟩ = ⟨x, Aᵀ g⟩ in float64 (docs/semantics.md#augmentation-diffaugment-and-the-cr-transform)."""
    need(backend, *CR)
    B, C = 6, 2
    x = make((B, C, H, W), torch.float64, device, "channels_last").requires_grad_()
    g = make((B, C, H, W), torch.float64, device, "strided")
    tx = torch.tensor([H - 1, -(H - 1), 0, 1 - H, H - 1, 0])
    ty = torch.tensor([W - 1, -(W - 1), W - 1, 0, -(W - 1) // 2, 1 - W])
    flip = torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.bool)
    p = {"flip": flip.to(device), "translation": torch.stack([tx, ty], 1).to(device)}
    out = gx.cr_augment(x, params=p, backend=backend)
    rows = _reflect(torch.arange(H).view(1, H, 1) + tx.view(B, 1, 1), H).expand(B, H, W)
    cols = _reflect(torch.arange(W).view(1, 1, W) + ty.view(B, 1, 1), W).expand(B, H, W)
    cols = torch.where(flip.view(B, 1, 1), W - 1 - cols, cols)
    xd = x.detach().cpu()
    want = xd.permute(0, 2, 3, 1)[torch.arange(B).view(B, 1, 1), rows, cols].permute(0, 3, 1, 2)
    torch.testing.assert_close(out.detach().cpu(), want, rtol=0, atol=0)
    (adj,) = torch.autograd.grad(out, x, g)
    inner = lambda a, b: (a.double() * b.double()).sum()  # noqa: E731
    torch.testing.assert_close(inner(out.detach(), g), inner(x.detach(), adj), rtol=1e-12, atol=1e-10)
