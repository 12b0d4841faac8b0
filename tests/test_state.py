"""State of the stateful modules: ``state_dict`` round trips, ``.to(...)``, and checkpoint/resume in
the middle of lazy-regularization intervals reproducing an uninterrupted run bitwise."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import ganreg_ext as gx
from helpers import GN, NOISE, every_backend, need


def _roundtrip(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf)


def _tiny_g():
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 8, 2 * 4 * 4), nn.Tanh(), nn.Unflatten(1, (2, 4, 4)))


def test_state_dict_roundtrip_modules():
    torch.manual_seed(0)
    pl = gx.PathLengthRegularizer(decay=0.1, weight=2.0)
    ws = torch.randn(3, 2, 8, requires_grad=True)
    G = _tiny_g()
    for step in range(2):
        pl(G(ws), ws, seed=step).backward()
    lecam = gx.LeCamRegularizer(decay=0.9)
    for _ in range(3):
        lecam(torch.randn(4), torch.randn(4))
    noise = gx.InstanceNoise(1.0, anneal_steps=10)
    for _ in range(4):
        noise.step()

    assert set(pl.state_dict()) == {"pl_mean"} and pl.pl_mean.dtype == torch.float32 and pl.pl_mean.dim() == 0
    assert set(lecam.state_dict()) == {"ema_real", "ema_fake"}
    assert set(noise.state_dict()) == {"t"}
    for mod, fresh in (
        (pl, gx.PathLengthRegularizer(decay=0.1, weight=2.0)),
        (lecam, gx.LeCamRegularizer(decay=0.9)),
        (noise, gx.InstanceNoise(1.0, anneal_steps=10)),
    ):
        fresh.load_state_dict(_roundtrip(mod.state_dict()))
        for k, v in mod.state_dict().items():
            assert torch.equal(fresh.state_dict()[k], v) and fresh.state_dict()[k].dtype == v.dtype, k
    assert pl.pl_mean.item() != 0 and lecam.ema_real.item() != 0 and noise.sigma == pytest.approx(0.6)
    fresh = gx.InstanceNoise(1.0, anneal_steps=10)
    fresh.load_state_dict(noise.state_dict())
    assert fresh.sigma == noise.sigma
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(fresh(x, seed=3), noise(x, seed=3))
    # the next update continues identically
    fresh_pl = gx.PathLengthRegularizer(decay=0.1, weight=2.0)
    fresh_pl.load_state_dict(pl.state_dict())
    a, b = pl(G(ws), ws, seed=9), fresh_pl(G(ws), ws, seed=9)
    assert torch.equal(a, b) and torch.equal(pl.pl_mean, fresh_pl.pl_mean)


def test_to_dtype_and_meta():
    pl, lecam, noise = gx.PathLengthRegularizer(), gx.LeCamRegularizer(), gx.InstanceNoise(0.5, 4)
    for m in (pl, lecam, noise):
        m64 = m.to(torch.float64)
        assert m64 is m
    assert pl.pl_mean.dtype == torch.float64 and lecam.ema_real.dtype == torch.float64
    assert noise.t.dtype == torch.int64  # integer buffers keep their dtype
    lecam(torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64))
    for m in (pl, lecam, noise):
        m.to("meta")
        assert all(b.device.type == "meta" for b in m.buffers())
        assert set(m.state_dict()) == set(type(m)(*((0.5, 4) if isinstance(m, gx.InstanceNoise) else ())).state_dict())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: .to('cuda') cannot be tested here")
def test_to_cuda():
    pl, lecam = gx.PathLengthRegularizer().cuda(), gx.LeCamRegularizer().cuda()
    assert pl.pl_mean.is_cuda and lecam.ema_real.is_cuda
    out = lecam(torch.randn(4, device="cuda"), torch.randn(4, device="cuda"))
    assert out.is_cuda
    ws = torch.randn(2, 2, 8, device="cuda", requires_grad=True)
    G = _tiny_g().cuda()
    pl(G(ws), ws, seed=1).backward()
    assert pl.pl_mean.is_cuda and pl.pl_mean.item() > 0


# ---------------------------------------------------------------- checkpoint / resume

R1_EVERY, PL_EVERY, TOTAL, SAVE_AT = 2, 3, 6, 3


class _Nets(nn.Module):
    def __init__(self):
        super().__init__()
        self.G = _tiny_g()
        self.D = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 8), nn.Softplus(), nn.Linear(8, 1))


def _make(backend, device):
    torch.manual_seed(1234)
    nets = _Nets().to(device)
    d_lr, d_betas = gx.lazy_regularization(R1_EVERY, 2e-3, (0.0, 0.99))
    g_lr, g_betas = gx.lazy_regularization(PL_EVERY, 2e-3, (0.0, 0.99))
    state = {
        "nets": nets,
        "optD": torch.optim.Adam(nets.D.parameters(), lr=d_lr, betas=d_betas),
        "optG": torch.optim.Adam(nets.G.parameters(), lr=g_lr, betas=g_betas),
        "pl": gx.PathLengthRegularizer(backend=backend).to(device),
        "lecam": gx.LeCamRegularizer().to(device),
        "noise": gx.InstanceNoise(0.1, anneal_steps=4, backend=backend).to(device),
    }
    return state


def _run(state, start, stop, backend, device):
    def randn(*shape):  # drawn on the CPU (the checkpoint holds the CPU generator), used on the device
        return torch.randn(*shape).to(device)

    nets, optD, optG = state["nets"], state["optD"], state["optG"]
    G, D = nets.G, nets.D
    for step in range(start, stop):
        real = randn(4, 2, 4, 4)
        # D: main loss (+ LeCam, instance noise) every step, R1 every R1_EVERY steps (lazy, ×interval)
        fake = G(randn(4, 2, 8)).detach()
        lr_, lf_ = D(state["noise"](real)).squeeze(1), D(state["noise"](fake)).squeeze(1)
        loss = gx.ns_d_loss(lr_, lf_) + state["lecam"](lr_, lf_)
        optD.zero_grad(set_to_none=True)
        loss.backward()
        optD.step()
        if step % R1_EVERY == 0:
            x = real.clone().requires_grad_()
            pen = gx.r1_penalty(gx.input_gradients(D(x), x), gamma=1.0, backend=backend) * R1_EVERY
            optD.zero_grad(set_to_none=True)
            pen.backward()
            optD.step()
        # G: main loss every step, PL every PL_EVERY steps on half the batch (seed=None: torch RNG)
        loss_g = gx.ns_g_loss(D(G(randn(4, 2, 8))).squeeze(1))
        optG.zero_grad(set_to_none=True)
        loss_g.backward()
        optG.step()
        if step % PL_EVERY == 0:
            ws = randn(2, 2, 8).requires_grad_()
            pen = state["pl"](G(ws), ws) * PL_EVERY
            optG.zero_grad(set_to_none=True)
            pen.backward()
            optG.step()
        state["noise"].step()


def _checkpoint(state):
    return _roundtrip({k: v.state_dict() for k, v in state.items()} | {"rng": torch.get_rng_state()})


@every_backend
def test_checkpoint_resume_mid_interval(backend, device):
    need(backend, *GN, *NOISE)
    straight = _make(backend, device)
    _run(straight, 0, TOTAL, backend, device)

    first = _make(backend, device)
    _run(first, 0, SAVE_AT, backend, device)  # step 3: inside the R1 interval (2) and at a PL boundary (3)
    ckpt = _checkpoint(first)
    del first
    torch.manual_seed(999)  # anything in between must not matter
    resumed = _make(backend, device)
    for k, v in resumed.items():
        v.load_state_dict(ckpt[k])
    torch.set_rng_state(ckpt["rng"])
    _run(resumed, SAVE_AT, TOTAL, backend, device)

    for (name, a), b in zip(straight["nets"].named_parameters(), resumed["nets"].parameters()):
        assert torch.equal(a, b), f"{backend}: parameter {name} differs after resume"
    for key in ("pl", "lecam", "noise"):
        for (name, a), b in zip(straight[key].state_dict().items(), resumed[key].state_dict().values()):
            assert torch.equal(a, b), f"{backend}: {key}.{name} differs after resume"
    assert straight["pl"].pl_mean.item() > 0 and int(straight["noise"].t) == TOTAL
