"""DiffAugment and the CR transform (docs/semantics.md#augmentation-diffaugment-and-the-cr-transform), eager PyTorch, applied from sampled parameters.

Anchors: mit-han-lab/data-efficient-gans ``DiffAugment_pytorch.py`` (colour, translation with zero
fill, cutout) and StudioGAN ``cr_diff_aug.py`` (flip p=0.5, translation with reflect padding).
Colour math runs in float32 (float64 for float64 inputs); the output has the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._contract import acc_dtype

DIFFAUG_POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
CR_TRANSLATION_RATIO = 1 / 8


def translation_shift(H: int, W: int) -> tuple[int, int]:
    """Largest DiffAugment shift: ``int(size·0.125 + 0.5)`` per axis."""
    return int(H * TRANSLATION_RATIO + 0.5), int(W * TRANSLATION_RATIO + 0.5)


def cutout_size(H: int, W: int) -> tuple[int, int]:
    """DiffAugment cutout square: ``int(size·0.5 + 0.5)`` per axis."""
    return int(H * CUTOUT_RATIO + 0.5), int(W * CUTOUT_RATIO + 0.5)


def cr_shift(H: int, W: int) -> tuple[int, int]:
    """Largest CR shift: ``int(size / 8)`` per axis (StudioGAN)."""
    return int(H * CR_TRANSLATION_RATIO), int(W * CR_TRANSLATION_RATIO)


def sample_diffaug_params(B: int, H: int, W: int, policies, device=None, generator=None) -> dict:
    """Per-sample DiffAugment parameters, drawn in the original code's order (so the same seed gives
    the same augmentation): ``brightness``, ``saturation``, ``contrast`` ``[B]`` float32 uniforms;
    ``translation`` ``[B, 2]`` int64 shifts in ``[−shift, shift]``; ``cutout`` ``[B, 2]`` int64 centres."""
    kw = dict(device=device, generator=generator)
    p: dict = {}
    for policy in policies:
        if policy == "color":
            for name in ("brightness", "saturation", "contrast"):
                p[name] = torch.rand(B, 1, 1, 1, dtype=torch.float32, **kw).reshape(B)
        elif policy == "translation":
            sx, sy = translation_shift(H, W)
            tx = torch.randint(-sx, sx + 1, size=[B, 1, 1], **kw).reshape(B)
            ty = torch.randint(-sy, sy + 1, size=[B, 1, 1], **kw).reshape(B)
            p["translation"] = torch.stack([tx, ty], 1)
        elif policy == "cutout":
            ch, cw = cutout_size(H, W)
            ox = torch.randint(0, H + (1 - ch % 2), size=[B, 1, 1], **kw).reshape(B)
            oy = torch.randint(0, W + (1 - cw % 2), size=[B, 1, 1], **kw).reshape(B)
            p["cutout"] = torch.stack([ox, oy], 1)
    return p


def diff_augment(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Per sample, in this order: brightness ``x + (u−0.5)``; saturation ``(x − mean_c x)·2u + mean_c x``;
    contrast ``(x − mean_chw x)·(u+0.5) + mean_chw x``; translation ``out[i,j] = x[i+tx, j+ty]`` (zero
    outside); cutout: zero the ``cutout_size`` square centred at ``(ox − h//2, oy − w//2)``, all channels."""
    B, C, H, W = x.shape
    y = x.to(acc_dtype(x.dtype))

    def per_sample(v):
        return v.to(y.dtype).view(B, 1, 1, 1)

    if "brightness" in params:
        y = y + (per_sample(params["brightness"]) - 0.5)
    if "saturation" in params:
        m = y.mean(dim=1, keepdim=True)
        y = (y - m) * (per_sample(params["saturation"]) * 2) + m
    if "contrast" in params:
        m = y.mean(dim=[1, 2, 3], keepdim=True)
        y = (y - m) * (per_sample(params["contrast"]) + 0.5) + m
    if "translation" in params:
        t = params["translation"].to(y.device)
        rows = torch.arange(H, device=y.device).view(1, H, 1) + t[:, 0].view(B, 1, 1) + 1
        cols = torch.arange(W, device=y.device).view(1, 1, W) + t[:, 1].view(B, 1, 1) + 1
        rows, cols = rows.clamp(0, H + 1).expand(B, H, W), cols.clamp(0, W + 1).expand(B, H, W)
        padded = F.pad(y, [1, 1, 1, 1]).permute(0, 2, 3, 1)
        y = padded[torch.arange(B, device=y.device).view(B, 1, 1), rows, cols].permute(0, 3, 1, 2)
    if "cutout" in params:
        ch, cw = cutout_size(H, W)
        o = params["cutout"].to(y.device)
        r = torch.arange(H, device=y.device).view(1, H, 1) - (o[:, 0].view(B, 1, 1) - ch // 2)
        c = torch.arange(W, device=y.device).view(1, 1, W) - (o[:, 1].view(B, 1, 1) - cw // 2)
        keep = ~((r >= 0) & (r < ch) & (c >= 0) & (c < cw))
        y = y * keep.unsqueeze(1).to(y.dtype)
    return y.to(x.dtype).contiguous()  # contiguous NCHW, like the original (and the kernel contract)


def sample_cr_params(B: int, H: int, W: int, device=None, generator=None) -> dict:
    """StudioGAN CR parameters: ``flip`` ``[B]`` bool (p = 0.5), ``translation`` ``[B, 2]`` int64 in
    ``[−int(size/8), int(size/8)]``."""
    flip = torch.rand(B, device=device, generator=generator) < 0.5
    sx, sy = cr_shift(H, W)
    tx = torch.randint(-sx, sx + 1, size=[B], device=device, generator=generator)
    ty = torch.randint(-sy, sy + 1, size=[B], device=device, generator=generator)
    return {"flip": flip, "translation": torch.stack([tx, ty], 1)}


def _reflect(p: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect an index into ``[0, n)`` without repeating the edge (``F.pad(mode="reflect")``), for
    ``-(n-1) <= p <= 2(n-1)``."""
    p = p.abs()
    return torch.where(p >= n, 2 * (n - 1) - p, p)


def cr_augment(x: torch.Tensor, params: dict) -> torch.Tensor:
    """Per sample: horizontal flip where ``flip``, then ``out[i,j] = y[reflect(i+tx), reflect(j+ty)]``
    (reflect padding, edge not repeated, as StudioGAN's ``F.pad(mode="reflect")`` by size/8; the
    formula holds for any ``|t| <= size - 1``, the range ``cr_augment`` accepts)."""
    B, C, H, W = x.shape
    flip = params["flip"].to(x.device).view(B, 1, 1, 1)
    y = torch.where(flip, x.flip(3), x)
    t = params["translation"].to(x.device)
    rows = _reflect(torch.arange(H, device=x.device).view(1, H, 1) + t[:, 0].view(B, 1, 1), H)
    cols = _reflect(torch.arange(W, device=x.device).view(1, 1, W) + t[:, 1].view(B, 1, 1), W)
    out = y.permute(0, 2, 3, 1)[torch.arange(B, device=x.device).view(B, 1, 1), rows, cols]
    return out.permute(0, 3, 1, 2).contiguous()  # contiguous NCHW, like StudioGAN's ``x.contiguous()``
