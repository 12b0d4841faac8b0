"""The end-to-end StyleGAN2 benchmark (benchmarks/stylegan2.py) at a tiny size: the CLI writes its
table, and the fused backend's parameter gradients of both regularized steps (D with R1, G with
path length) agree with the eager reference blocks. Never asserts timings."""

from __future__ import annotations

import copy
import csv
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import stylegan2 as SG  # noqa: E402

FUSED = SG.blocks_backend(torch.device("cpu"))
needs_fused = pytest.mark.skipif(
    FUSED is None, reason="no fused backend with bias_act/upfirdn2d runs natively on CPU tensors (build ganreg_ext._C)"
)
TINY = dict(size=16, cmax=4, batch=4)
RTOL = 1e-4  # float32; the benchmark reports the measured error (target 1e-5)


@needs_fused
@pytest.mark.parametrize("kind", list(SG.STEPS))
def test_fused_gradients_match_reference(kind):
    step = SG.make_step(kind, **TINY)
    loss_r, g_r = step.grads("reference")
    loss_f, g_f = step.grads(FUSED)
    assert set(g_f) == set(g_r) and len(g_r) == len(list(step.model.parameters()))
    assert torch.isfinite(loss_r) and SG.rel_err(loss_f, loss_r) < RTOL
    # float32 error per parameter within RTOL or 4x what float32 alone costs the reference there (the
    # float32 reference against a float64 one): a noise-strength gradient Σ noise·dL/dx cancels; the
    # float64 comparison below holds the math to 1e-5 (the fused path-length noise is float32)
    step64 = SG.Step(step.kind, copy.deepcopy(step.model).double(), step.data.double())
    _, g64 = step64.grads("reference")
    _, g64_f = step64.grads(FUSED)
    errs = {n: (SG.rel_err(g_f[n], g_r[n]), max(RTOL, 4 * SG.rel_err(g_r[n], g64[n]))) for n in g_r}
    bad = {n: e for n, e in errs.items() if not e[0] < e[1]}
    assert not bad, sorted(bad.items(), key=lambda kv: -kv[1][0])[:5]
    # noise strengths: a scalar gradient Σ noise·dL/dx that cancels, so the fused float32 path-length
    # noise moves it relatively more; held to 4x the float32 floor there, every other parameter to 1e-5
    for n in g64:
        tol = errs[n][1] if n.endswith("noise_strength") else 1e-5
        assert SG.rel_err(g64_f[n], g64[n]) < tol, n
    # every parameter is reached, but the toRGB biases under the path length (an additive constant of the image)
    unreached = {n for n, g in g_r.items() if not g.abs().max() > 0}
    torgb_biases = {"rgb4.bias"} | {f"blocks.{i}.2.bias" for i in range(len(getattr(step.model, "blocks", [])))}
    assert unreached == (torgb_biases if kind == "g_pl" else set())


@needs_fused
def test_cli_writes_table(tmp_path, capsys):
    rc = SG.main(["--sizes", "16", "--channels", "4", "--batch", "4", "--reps", "1", "--warmup", "0",
                  "--threads", "1", "--profile", "3", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["step"] for r in rows] == list(SG.STEPS.values())
    for r in rows:
        assert r["fused_backend"] == FUSED and r["size"] == "16" and r["threads"] == "1"
        assert float(r["ref_ms"]) > 0 and float(r["fused_ms"]) > 0 and float(r["speedup"]) > 0
        assert float(r["max_grad_rel_err"]) < max(RTOL, 4 * float(r["f32_floor_rel_err"]))
        assert float(r["f32_floor_rel_err"]) < 1e-2  # float32 reference vs float64 reference (a measurement)
        # fused vs reference in float64 (the fused noise is float32: docs/semantics.md#path-length-regularization-stylegan2)
        assert float(r["f64_rel_err"]) < max(1e-5, 4 * float(r["f32_floor_rel_err"]))  # noise strengths, see above
        assert r["ref_peak_mib"] == "" or float(r["ref_peak_mib"]) > 0
        # the convolution-bound limit: conv time > 0 and below the fused step; % of limit = speed-up / limit
        conv, limit = float(r["conv_ms"]), float(r["limit_speedup"])
        assert 0 < conv and int(r["conv_calls"]) > 0 and limit > 1
        assert abs(float(r["pct_of_limit"]) - 100 * float(r["speedup"]) / limit) < 1e-6 * limit
        assert abs(float(r["pct_of_limit"]) - 100 * float(r["conv_prof_ms"]) / float(r["fused_prof_ms"])) < 1e-6
        # with the package's ops at no time: above the measured % of limit, at most 100 %
        free = 100 * float(r["conv_prof_ms"]) / (float(r["fused_prof_ms"]) - float(r["ganreg_prof_ms"]))
        assert float(r["ganreg_prof_ms"]) > 0 and abs(float(r["pct_ops_free"]) - free) < 1e-6
        assert float(r["pct_of_limit"]) < float(r["pct_ops_free"]) <= 100 + 1e-6
        # the ops at their memory floor: between the two (the floor is not free, and far below these tiny calls)
        floor_ms = float(r["ops_floor_ms"])
        at_floor = 100 * float(r["conv_prof_ms"]) / (float(r["fused_prof_ms"]) - float(r["ganreg_prof_ms"]) + floor_ms)
        assert floor_ms > 0 and float(r["cold_gbs"]) > 0 and abs(float(r["pct_ops_at_floor"]) - at_floor) < 1e-6
        assert float(r["pct_of_limit"]) < float(r["pct_ops_at_floor"]) < float(r["pct_ops_free"])
    md = (tmp_path / "results.md").read_text()
    assert "| step | size |" in md and "Where the time goes" in md and "% of limit" in md
    assert "max grad rel err" in capsys.readouterr().out


def test_upsampling_conv_is_the_combined_kernel():
    """Transposed conv + filter2d(padding [-1, 0, -1, 0], gain 4) = upfirdn2d with the 6×6 kernel
    f * W (the documented semantics of the upsampling modulated conv)."""
    import torch.nn.functional as F

    import ganreg_ext as gx

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 5, 7, dtype=torch.float64, generator=gen)
    w = torch.randn(1, 1, 3, 3, dtype=torch.float64, generator=gen)
    f = SG.fir_filter().double()
    t = F.conv_transpose2d(x, w.transpose(0, 1).flip([2, 3]), stride=2)
    got = gx.filter2d(t, f, padding=[-1, 0, -1, 0], gain=4, backend="reference")
    g = F.conv2d(F.pad(f[None, None], [2, 2, 2, 2]), w)[0, 0]  # the full convolution f * flip(W) (conv2d correlates)
    want = gx.upfirdn2d(x, g, up=2, padding=[3, 2, 3, 2], gain=4, backend="reference")
    assert got.shape == (2, 1, 10, 14)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        SG.parse_args(["--sizes", "48"])
    with pytest.raises(SystemExit):
        SG.parse_args(["--steps", "d_r2"])


def test_conv_time_counts_each_convolution_once():
    """conv_time_ms: the outermost convolution events only (aten::conv2d → convolution → mkldnn_convolution
    is one), forward and backward; other ops are not counted."""
    import torch.nn.functional as F
    from torch.profiler import profile

    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(5, 4, 3, 3)
    with profile() as prof:
        F.conv2d(x, w, padding=1).square().sum().backward()
        torch.relu(x).sum()
    ms, n = SG.conv_time_ms(prof.events())
    assert n == 2 and ms > 0  # the forward conv2d and one convolution_backward
    with profile() as prof:
        torch.relu(x).sum()
    assert SG.conv_time_ms(prof.events()) == (0.0, 0)


def test_networks_have_nonzero_biases_and_noise():
    """The benchmark networks start with random biases and non-zero noise strengths (issue 22)."""
    for kind in SG.STEPS:
        step = SG.make_step(kind, **TINY)
        for name, p in step.model.named_parameters():
            if name.endswith("bias"):
                assert p.abs().min() > 0 and (p.numel() == 1 or p.std() > 0), name
            if name.endswith("noise_strength"):
                assert p.item() == pytest.approx(SG.NOISE_STRENGTH, rel=1e-6), name


@needs_fused
def test_op_bytes_counts_every_tensor_of_the_package_ops():
    """op_bytes: the bytes of a ganreg op's tensor arguments and output (here one bias_act: x, b, y)
    and nothing of PyTorch's own ops (the add around it)."""
    import ganreg_ext as gx

    x, b = torch.randn(2, 3, 5, 7), torch.randn(3)
    n = SG.op_bytes(lambda be: gx.bias_act(x + 1, b, act="lrelu", backend=be), FUSED)
    assert n == 2 * x.nbytes + b.nbytes
