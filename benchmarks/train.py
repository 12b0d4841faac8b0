"""Real use patterns: one discriminator step with R1 and one generator step with path length
regularization on a small StyleGAN2-like G/D (plain convs, modulation by per-layer styles).

- D step (NVlabs ``Dmain`` + ``Dreg`` on reals): ``logits = D(x)``, ``loss = softplus(−logits)``,
  ``grads = autograd.grad(logits.sum(), x, create_graph=True)``, ``+ r1_penalty(grads, γ)``,
  ``backward`` into D's parameters, ``Adam.step``.
- G step (NVlabs ``Gpl``): ``img = G(ws)`` on ``B // 2`` samples, ``loss = PathLengthRegularizer(img, ws)``
  (its noise-dot, ``autograd.grad(create_graph=True)`` and penalty), ``backward`` into G, ``Adam.step``.

Eager reference vs each fused backend, the rest of the step identical. Before timing, one step
from identical weights is compared with the reference (loss and every parameter gradient).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import ganreg_ext as gx

TOL = (1e-3, 1e-5)  # (rtol, atol) of a fused step's loss and parameter gradients against the reference's


class Discriminator(nn.Module):
    def __init__(self, res: int, ch: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1), nn.LeakyReLU(0.2)]
        r, c = res, ch
        while r > 4:
            c2 = min(2 * c, 512)
            layers += [nn.Conv2d(c, c2, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            r, c = r // 2, c2
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(c * 16, 1)

    def forward(self, x):
        return self.out(self.features(x).flatten(1))


class Generator(nn.Module):
    """Constant 4×4 input, per block: upsample, modulate by an affine style of ``ws[:, i]``, conv."""

    def __init__(self, res: int, ch: int, w_dim: int = 512):
        super().__init__()
        self.nblocks = int(math.log2(res)) - 2
        self.num_ws = self.nblocks + 1
        self.const = nn.Parameter(torch.randn(1, ch, 4, 4))
        self.affine = nn.ModuleList([nn.Linear(w_dim, ch) for _ in range(self.num_ws)])
        self.convs = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1) for _ in range(self.nblocks)])
        self.to_rgb = nn.Conv2d(ch, 3, 1)

    def forward(self, ws):
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, conv in enumerate(self.convs):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            s = self.affine[i](ws[:, i]) + 1
            x = F.leaky_relu(conv(x * s[:, :, None, None]), 0.2)
        s = self.affine[-1](ws[:, -1]) + 1
        return self.to_rgb(x * s[:, :, None, None])


@dataclass
class TrainCase:
    family: str  # "train_d_r1" | "train_g_pl"
    op: str
    batch: int
    res: int
    ch: int

    @property
    def size(self) -> str:
        return f"B{self.batch} {self.res}x{self.res} ch{self.ch}"

    @property
    def key(self) -> str:
        return f"{self.family}/{self.size}"


def train_cases(families, device: str, quick: bool, tiny: bool = False) -> list[TrainCase]:
    if tiny:
        cfgs = [(4, 16, 8)]
    elif device == "cuda":
        cfgs = [(32, 256, 64)] if quick else [(32, 256, 64), (16, 512, 64)]
    else:
        # conv double backward is slow on CPU (~2-6 s/step for B16 64x64 ch32 on 2 busy cores)
        cfgs = [(8, 32, 16)] if quick else [(8, 32, 16), (16, 64, 32)]
    out = []
    for fam in families:
        for b, r, c in cfgs:
            if fam == "train_d_r1":
                out.append(TrainCase(fam, "D step: softplus + R1 (create_graph) + Adam", b, r, c))
            elif fam == "train_g_pl":
                out.append(TrainCase(fam, "G step: PathLengthRegularizer + Adam", max(b // 2, 1), r, c))
    return out


class Step:
    """One training step of ``case`` with ``backend``; ``grads()`` runs it without the optimizer step."""

    def __init__(self, case: TrainCase, model: nn.Module, backend: str, device, gen: torch.Generator):
        self.case, self.backend, self.device = case, backend, device
        self.model = model
        self.opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.0, 0.99))
        B = case.batch
        if case.family == "train_d_r1":
            self.data = torch.randn(B, 3, case.res, case.res, device=device, generator=gen)
        else:
            self.pl = gx.PathLengthRegularizer(decay=0.01, weight=2.0, backend=backend).to(device)
            self.data = torch.randn(B, model.num_ws, 512, device=device, generator=gen)
        self.seed = 1234

    def loss(self):
        if self.case.family == "train_d_r1":
            x = self.data.detach().requires_grad_(True)
            logits = self.model(x)
            grads = gx.input_gradients(logits, x)  # autograd.grad(create_graph=True)
            return F.softplus(-logits).mean() + gx.r1_penalty(grads, gamma=10.0, backend=self.backend)
        ws = self.data.detach().requires_grad_(True)
        img = self.model(ws)
        return self.pl(img, ws, seed=self.seed) * 4  # lazy regularization interval 4 (NVlabs G_reg_interval)

    def __call__(self, _=None):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return loss

    def grads(self):
        self.model.zero_grad(set_to_none=True)
        if self.case.family == "train_g_pl":
            self.pl.pl_mean.zero_()
        loss = self.loss()
        loss.backward()
        return loss.detach(), [
            torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.model.parameters()
        ]


def make_model(case: TrainCase, device) -> nn.Module:
    torch.manual_seed(0)
    m = Discriminator(case.res, case.ch) if case.family == "train_d_r1" else Generator(case.res, case.ch)
    return m.to(device)


def make_steps(case: TrainCase, backends: list[str], device) -> dict[str, Step]:
    base = make_model(case, device)
    steps = {}
    for b in backends:
        gen = torch.Generator(device=device).manual_seed(7)
        steps[b] = Step(case, copy.deepcopy(base), b, device, gen)
    return steps
