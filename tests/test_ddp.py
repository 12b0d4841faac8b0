"""DDP (docs/semantics.md#notation-and-contracts-shared-by-every-op): two gloo processes on CPU.

* ``PathLengthRegularizer(sync_mean=True)`` and ``LeCamRegularizer(sync=True)`` keep identical
  buffers on both ranks, equal to the single-process result on the concatenated batch.
* Penalties stay local (each rank's value is computed from its own shard only).
* DDP-wrapped tiny D/G train a few steps with R1 and PL without hanging; ranks stay in sync.

One launch of 2 worker processes covers every available backend, each on its device (hard timeout);
the workers write their results with ``torch.save`` and this process checks them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import ganreg_ext as gx
from helpers import backend_device

REPO = Path(__file__).resolve().parents[1]
# one hard deadline for both workers: the work itself takes a few seconds, but `import torch` alone
# takes ~15 s per process on a loaded 2-core machine (override with GANREG_DDP_TIMEOUT)
TIMEOUT_S = float(os.environ.get("GANREG_DDP_TIMEOUT", 120))
B, NUM_WS, W_DIM, C, H, W = 4, 3, 8, 2, 4, 4  # per-rank batch B; the concatenated batch is 2B
STEPS = 3

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)

WORKER = textwrap.dedent(
    """
    import os, sys
    import torch, torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP
    import ganreg_ext as gx
    from helpers import backend_device

    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    backends = sys.argv[5].split(",")
    B, NUM_WS, W_DIM, C, H, W, STEPS = (int(v) for v in sys.argv[6].split(","))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)

    def data(step):
        g = torch.Generator().manual_seed(1000 + step)   # the full batch, identical on every rank
        ws = torch.randn(world * B, NUM_WS, W_DIM, generator=g)
        real = torch.randn(world * B, 5, generator=g) + 1.0
        fake = torch.randn(world * B, 5, generator=g) - 1.0
        return ws.to(dev), real.to(dev), fake.to(dev)

    def gen_weights():
        return torch.randn(NUM_WS * W_DIM, C * H * W, generator=torch.Generator().manual_seed(7)).to(dev) * 0.3

    def cpu(t):
        return t.detach().cpu().clone()

    results = {"backends": backends}
    for backend in backends:
        dev = backend_device(backend)
        # ---- buffers of the synchronized regularizers, on this rank's shard
        wg = gen_weights()
        plr = gx.PathLengthRegularizer(decay=0.1, sync_mean=True, backend=backend).to(dev)
        lecam = gx.LeCamRegularizer(decay=0.9, sync=True).to(dev)
        rec = {"device": dev, "pl_mean": [], "pl_pen": [], "ema_real": [], "ema_fake": [], "lecam": []}
        for step in range(STEPS):
            ws, real, fake = data(step)
            sl = slice(rank * B, (rank + 1) * B)
            w = ws[sl].clone().requires_grad_()
            images = torch.tanh(w.reshape(B, -1) @ wg).view(B, C, H, W)
            pen = plr(images, w, seed=123 + step)
            rec["pl_mean"].append(cpu(plr.pl_mean))
            rec["pl_pen"].append(cpu(pen))
            d_real, d_fake = real[sl].sum(1), fake[sl].sum(1)
            rec["lecam"].append(cpu(lecam(d_real, d_fake)))
            rec["ema_real"].append(cpu(lecam.ema_real))
            rec["ema_fake"].append(cpu(lecam.ema_fake))

        # ---- DDP-wrapped tiny G and D, R1 every step and PL every step, a few steps
        torch.manual_seed(0)  # identical initial weights on every rank (DDP also broadcasts them)
        G = DDP(nn.Sequential(nn.Flatten(), nn.Linear(NUM_WS * W_DIM, C * H * W), nn.Tanh(), nn.Unflatten(1, (C, H, W))).to(dev))
        D = DDP(nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 16), nn.Softplus(), nn.Linear(16, 1)).to(dev))
        optG = torch.optim.Adam(G.parameters(), lr=1e-2)
        optD = torch.optim.Adam(D.parameters(), lr=1e-2)
        pl2 = gx.PathLengthRegularizer(sync_mean=True, backend=backend).to(dev)
        torch.manual_seed(100 + rank)  # different data per rank (drawn on the CPU)
        for step in range(STEPS):
            ws = torch.randn(B, NUM_WS, W_DIM).to(dev)
            real = torch.randn(B, C, H, W).to(dev).requires_grad_()
            # D: main loss + R1 in one backward (NVlabs runs them as one DDP step too)
            fake = G(ws).detach()
            logits_real = D(real).squeeze(1)
            r1_grads = gx.input_gradients(logits_real, real)
            loss_d = gx.ns_d_loss(logits_real, D(fake).squeeze(1)) + gx.r1_penalty(r1_grads, gamma=1.0, backend=backend)
            optD.zero_grad(set_to_none=True)
            loss_d.backward()
            optD.step()
            # G: main loss + PL
            w = ws.clone().requires_grad_()
            img = G(w)
            loss_g = gx.ns_g_loss(D(img).squeeze(1)) + pl2(img, w, seed=55 + step)
            optG.zero_grad(set_to_none=True)
            loss_g.backward()
            optG.step()
        # ---- ADA controller: each rank updates with its own real logits; p is synchronized
        ada = gx.AdaptiveAugment(interval=2, kimg=0.02, backend=backend).to(dev)
        rec["ada_p"], rec["ada_aug"] = [], []
        for step in range(2 * STEPS):
            _, real, _ = data(step)
            ada.update(real[rank * B : (rank + 1) * B].sum(1) - 2.0 * (step % 3 == 0))
            rec["ada_p"].append(cpu(ada.p))
        img = torch.tanh(torch.randn(B, 3, H, W, generator=torch.Generator().manual_seed(rank))).to(dev)
        rec["ada_aug"] = cpu(ada(img, generator=torch.Generator(device=dev).manual_seed(9)))
        rec["G"] = [cpu(p) for p in G.parameters()]
        rec["D"] = [cpu(p) for p in D.parameters()]
        rec["pl2_mean"] = cpu(pl2.pl_mean)
        results[backend] = rec
    torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    wanted = ",".join(gx.available_backends())
    dims = ",".join(map(str, (B, NUM_WS, W_DIM, C, H, W, STEPS)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("TRITON_INTERPRET", os.environ.get("TRITON_INTERPRET", "1" if not torch.cuda.is_available() else "0"))
    env["OMP_NUM_THREADS"] = "1"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), "2", str(port), str(tmp / f"rank{r}.pt"), wanted, dims],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s (hang?)")
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed (rc {p.returncode}):\n{logs[r][-4000:]}"
    return [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


def _backends(results):
    assert results[0]["backends"] == results[1]["backends"]
    assert "reference" in results[0]["backends"]
    return results[0]["backends"]


def _expected_single_process(backend):
    """What the regularizers' buffers must be: one process, the concatenated batch of both ranks.
    Each sample's path-length noise is the one its rank drew (rank r's shard uses the seed's stream
    over its own [B, ...] shape), so the per-sample gradients are made shard by shard and concatenated."""
    wg = torch.randn(NUM_WS * W_DIM, C * H * W, generator=torch.Generator().manual_seed(7)) * 0.3
    pl_mean = torch.zeros(())
    ema_r, ema_f = torch.zeros(()), torch.zeros(())
    out = {"pl_mean": [], "pl_pen": [[], []], "ema_real": [], "ema_fake": [], "lecam": [[], []]}
    for step in range(STEPS):
        g = torch.Generator().manual_seed(1000 + step)
        ws = torch.randn(2 * B, NUM_WS, W_DIM, generator=g)
        real = torch.randn(2 * B, 5, generator=g) + 1.0
        fake = torch.randn(2 * B, 5, generator=g) - 1.0
        pl_grads = []
        for r in range(2):
            w = ws[r * B : (r + 1) * B].clone().requires_grad_()
            images = torch.tanh(w.reshape(B, -1) @ wg).view(B, C, H, W)
            nd = gx.path_length_noise_dot(images, seed=123 + step, backend="reference")
            pl_grads.append(torch.autograd.grad(nd, w)[0])
        _, new_mean = gx.path_length_penalty(torch.cat(pl_grads), pl_mean, decay=0.1, backend="reference")
        pl_mean = new_mean.detach()
        out["pl_mean"].append(pl_mean)
        for r in range(2):  # local penalties with the synchronized mean
            lengths = pl_grads[r].square().sum(2).mean(1).sqrt()
            out["pl_pen"][r].append(2.0 * (lengths - pl_mean).square().mean())
        ema_r = 0.9 * ema_r + 0.1 * real.sum(1).mean()
        ema_f = 0.9 * ema_f + 0.1 * fake.sum(1).mean()
        out["ema_real"].append(ema_r)
        out["ema_fake"].append(ema_f)
        for r in range(2):
            d_real, d_fake = real[r * B : (r + 1) * B].sum(1), fake[r * B : (r + 1) * B].sum(1)
            out["lecam"][r].append(
                0.3 * (torch.relu(d_real - ema_f).square().mean() + torch.relu(ema_r - d_fake).square().mean())
            )
    return out


def test_sync_buffers_equal_across_ranks_and_single_process(ddp_results):
    for backend in _backends(ddp_results):
        r0, r1 = ddp_results[0][backend], ddp_results[1][backend]
        want = _expected_single_process(backend)
        for key in ("pl_mean", "ema_real", "ema_fake"):
            for step in range(STEPS):
                assert torch.equal(r0[key][step], r1[key][step]), f"{backend}: {key} differs between ranks at step {step}"
                torch.testing.assert_close(
                    r0[key][step],
                    want[key][step],
                    rtol=1e-5,
                    atol=1e-6,
                    msg=f"{backend}: {key} at step {step} != single process on the full batch",
                )
            assert r0[key][0].dtype == torch.float32 and r0[key][0].dim() == 0


def test_penalties_stay_local(ddp_results):
    for backend in _backends(ddp_results):
        want = _expected_single_process(backend)
        for rank in range(2):
            got = ddp_results[rank][backend]
            for step in range(STEPS):
                torch.testing.assert_close(got["pl_pen"][step], want["pl_pen"][rank][step], rtol=1e-4, atol=1e-6)
                torch.testing.assert_close(got["lecam"][step], want["lecam"][rank][step], rtol=1e-5, atol=1e-6)
        # different shards give different local penalties (nothing was all-reduced into them)
        assert not torch.equal(ddp_results[0][backend]["pl_pen"][-1], ddp_results[1][backend]["pl_pen"][-1])
        assert not torch.equal(ddp_results[0][backend]["lecam"][-1], ddp_results[1][backend]["lecam"][-1])


def test_ddp_training_with_r1_and_pl(ddp_results):
    for backend in _backends(ddp_results):
        r0, r1 = ddp_results[0][backend], ddp_results[1][backend]
        for net in ("G", "D"):
            for a, b in zip(r0[net], r1[net]):
                assert torch.isfinite(a).all(), f"{backend}: {net} diverged"
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=f"{backend}: DDP replicas of {net} drifted apart")
        assert torch.equal(r0["pl2_mean"], r1["pl2_mean"]) and r0["pl2_mean"] > 0


def test_ada_p_identical_on_ranks_and_by_hand(ddp_results):
    """AdaptiveAugment(sync=True): the sign statistic is all-reduced, so p is the same on both ranks
    and equals ADA's rule applied to the concatenated batch."""
    p, acc, n = 0.0, 0.0, 0
    want = []
    for step in range(2 * STEPS):
        g = torch.Generator().manual_seed(1000 + step)
        torch.randn(2 * B, NUM_WS, W_DIM, generator=g)
        real = torch.randn(2 * B, 5, generator=g) + 1.0
        logits = real.sum(1) - 2.0 * (step % 3 == 0)
        acc += float(torch.sign(logits).sum())
        n += 2 * B
        if (step + 1) % 2 == 0:
            r = acc / n
            p = min(max(p + (1.0 if r > 0.6 else -1.0 if r < 0.6 else 0.0) * n / 20.0, 0.0), 1.0)
            acc, n = 0.0, 0
        want.append(p)
    assert 0 < max(want) and len(set(want)) > 1  # the trajectory moves
    for backend in _backends(ddp_results):
        r0, r1 = ddp_results[0][backend], ddp_results[1][backend]
        for step in range(2 * STEPS):
            assert torch.equal(r0["ada_p"][step], r1["ada_p"][step]), f"{backend}: ADA p differs between ranks at {step}"
            assert abs(float(r0["ada_p"][step]) - want[step]) < 1e-6, (backend, step, float(r0["ada_p"][step]), want[step])
        assert torch.isfinite(r0["ada_aug"]).all() and r0["ada_aug"].shape == (B, 3, H, W)


def test_every_backend_ran(ddp_results):
    """The workers ran every available backend, each on its device."""
    assert _backends(ddp_results) == gx.available_backends()
    for b in _backends(ddp_results):
        assert ddp_results[0][b]["device"] == backend_device(b)
