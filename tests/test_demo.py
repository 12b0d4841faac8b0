"""The demo (``python -m ganreg_ext.demo``): a short CPU run writes every output, R1 and path length
change the training step's parameter updates, and ``--resume`` repeats the exact next step."""

import os
import warnings

import numpy as np
import pytest
import torch

import ganreg_ext as gx
from ganreg_ext.demo import Config, Trainer, main
from ganreg_ext.demo.data import load_digits_images

pytestmark = pytest.mark.timeout(300)

TINY = dict(size=16, batch=4, width=16, z_dim=16, w_dim=16, device="cpu", seed=3)


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded():
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gx.BackendWarning)
        yield
    torch.set_num_threads(threads)


def _trainer(**kw) -> Trainer:
    cfg = Config(**{**TINY, **kw})
    return Trainer(cfg, load_digits_images(cfg.size))


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _image_folder(path, n=12, size=20):
    from PIL import Image

    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(os.path.join(path, f"{i}.png"))
    return path


def test_demo_cli_writes_outputs(tmp_path):
    out = tmp_path / "run"
    res = main(
        [
            "--steps",
            "3",
            "--batch",
            "4",
            "--size",
            "16",
            "--width",
            "16",
            "--eval-every",
            "2",
            "--n-eval",
            "40",
            "--timing-reps",
            "1",
            "--threads",
            "1",
            "--no-progress",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    for name in (
        "samples.png",
        "samples_000000.png",
        "samples_000002.png",
        "samples_000003.png",
        "curves.png",
        "metrics.csv",
        "scores.csv",
        "scores.txt",
        "checkpoint.pt",
        "timing.md",
        "config.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss_G,loss_D") and len(lines) == 1 + 3
    assert [r["step"] for r in res["scores"]] == [0, 2, 3]  # step 0 is evaluated too
    assert all(1.0 - 1e-6 <= r["score"] <= 10.0 and 0.0 < r["confidence"] <= 1.0 for r in res["scores"])
    timing = (out / "timing.md").read_text()
    assert "D step + R1" in timing and "G step + path length" in timing and "torch.compile" in timing
    assert "D step + DiffAugment + bCR" in timing
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 3 and {"G", "D", "G_ema", "opt_G", "opt_D", "pl_reg", "rng"} <= set(ckpt)
    assert "pl_mean" in ckpt["pl_reg"] and float(ckpt["pl_reg"]["pl_mean"]) > 0


def test_r1_changes_d_update_only():
    """Step 0 runs every phase; turning R1 off leaves G's update alone and changes D's."""
    on, off = _trainer(r1_gamma=1.0), _trainer(r1_gamma=0.0)
    torch.set_num_threads(1)
    assert _same(_params(on.D), _params(off.D))
    s_on, s_off = on.train_step(), off.train_step()
    assert np.isfinite(s_on["r1"]) and s_on["r1"] > 0 and "r1" not in s_off
    assert _same(_params(on.G), _params(off.G))
    assert not _same(_params(on.D), _params(off.D))
    # the R1 gradient reaches every D weight through the double backward
    x = on.data[:4].clone().requires_grad_(True)
    on.D.requires_grad_(True)
    r1 = gx.r1_penalty(gx.input_gradients(on.D(on.augment(x, on.sample_augment(4, torch.Generator().manual_seed(0)))), x))
    weights = [p for p in on.D.parameters() if p.dim() > 1]
    grads = torch.autograd.grad(r1, weights, allow_unused=True)
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_path_length_changes_g_update():
    on, off = _trainer(pl_weight=2.0, r1_gamma=0.0), _trainer(pl_weight=0.0, r1_gamma=0.0)
    torch.set_num_threads(1)
    s_on, s_off = on.train_step(), off.train_step()
    assert np.isfinite(s_on["pl"]) and s_on["pl"] > 0 and "pl" not in s_off
    assert float(on.pl_reg.pl_mean) > 0 and float(off.pl_reg.pl_mean) == 0
    assert not _same(_params(on.G), _params(off.G))
    # the lazy regularization phase's gradient itself moves the mapping and synthesis weights
    on.G.requires_grad_(True)
    ws = on.G.mapping(torch.randn(2, on.cfg.z_dim))
    pl = on.pl_reg(on.G.synthesis(ws), ws, seed=5)
    grads = torch.autograd.grad(pl, [on.G.mapping.net[0].weight, on.G.synthesis.conv4.weight])
    assert all(bool(g.abs().sum() > 0) for g in grads)


def test_bcr_sub_batch_keeps_minibatch_std_groups():
    """bCR's second view goes to every B/n-th sample: D scores that sub-batch exactly as it scored
    those samples inside the full batch (same minibatch-std groups), unlike the first n samples."""
    t = _trainer(batch=32, bcr=10.0, bcr_batch=8)
    torch.set_num_threads(1)
    with torch.no_grad():
        x = t.data[:32]
        full = t.D(x)
        torch.testing.assert_close(t.D(x[::4]), full[::4], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(t.D(x[:8]), full[:8], rtol=1e-4, atol=1e-5)
    assert t.bcr_stride(32) == 4 and t.bcr_stride(4) == 1 and t.bcr_stride(36) == 1
    out = t.train_step()
    assert np.isfinite(out["bcr"]) and out["bcr"] > 0
    # the bCR gradient reaches every D weight; T translates but does not flip (digits)
    gen = torch.Generator().manual_seed(1)
    cr = (t.sample_cr(32, gen), t.sample_cr(32, gen))
    assert cr[0]["translation"].shape == (8, 2) and not cr[0]["flip"].any()
    t.D.requires_grad_(True)
    with torch.no_grad():
        fake = t.G(torch.randn(32, t.cfg.z_dim))
    _, _, _, bcr = t.d_main_loss(x, fake, t.sample_augment(32, gen), t.sample_augment(32, gen), cr)
    grads = torch.autograd.grad(bcr, [p for p in t.D.parameters() if p.dim() > 1])
    assert bcr > 0 and all(bool(g.abs().sum() > 0) for g in grads)


def test_resume_repeats_next_step(tmp_path):
    torch.set_num_threads(1)
    a = _trainer(bcr=1.0)
    for _ in range(2):
        a.train_step()
    path = str(tmp_path / "ckpt.pt")
    a.save(path)
    a.train_step()
    b = _trainer(bcr=1.0)
    b.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
    assert b.step == 2
    b.train_step()
    for name in ("G", "D", "G_ema"):
        assert _same(_params(getattr(a, name)), _params(getattr(b, name))), name
    assert torch.equal(a.pl_reg.pl_mean, b.pl_reg.pl_mean)
    sa, sb = a.opt_D.state_dict()["state"], b.opt_D.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)


def test_cli_resume_on_image_folder(tmp_path):
    """--data DIR (RGB, no digits score) and --resume: 2 steps + resume to 3 equals 3 steps."""
    data = _image_folder(str(tmp_path / "imgs"))
    common = [
        "--data",
        data,
        "--size",
        "16",
        "--batch",
        "4",
        "--width",
        "16",
        "--no-timing",
        "--no-progress",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--eval-every",
        "100",
        "--loss",
        "hinge",
        "--augment",
        "translation",
    ]
    main(common + ["--steps", "3", "--out", str(tmp_path / "full")])
    main(common + ["--steps", "2", "--out", str(tmp_path / "part")])
    main(["--resume", str(tmp_path / "part" / "checkpoint.pt"), "--steps", "3", "--no-progress", "--no-timing", "--threads", "1"])
    full = torch.load(tmp_path / "full" / "checkpoint.pt", map_location="cpu", weights_only=False)
    part = torch.load(tmp_path / "part" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert part["step"] == full["step"] == 3
    for name in ("G", "D", "G_ema", "pl_reg"):
        for k, v in full[name].items():
            assert torch.allclose(v, part[name][k], atol=1e-6, rtol=0), (name, k)
    lines = (tmp_path / "part" / "metrics.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in lines[1:]] == ["0", "1", "2"]
    assert (tmp_path / "part" / "samples.png").is_file()


def test_digits_score_is_calibrated():
    """Real digits score high, random blobs (an untrained generator's kind of output) score ~1: the
    scorer's "not a digit" class keeps noise from being read confidently as a few digits."""
    from ganreg_ext.demo.score import DigitsScorer, non_digits

    torch.set_num_threads(1)
    sc = DigitsScorer(16, seed=1, n_outliers=600)
    assert sc.test_accuracy > 0.93 and sc.real_score > 7.0
    assert sc.noise_score < 1.3
    blobs, _ = sc(non_digits(300, 16, seed=7))
    digits, _ = sc(load_digits_images(16)[:500])
    assert blobs < 1.3 and digits > 7.0
    untrained = _trainer().sample(300, seed=0)
    assert sc(untrained)[0] < 2.0
