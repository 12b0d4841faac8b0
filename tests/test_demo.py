"""The demo (``python -m ganreg_ext.demo``): a short CPU run writes every output, R1 and path length
change the training step's parameter updates, ``--resume`` repeats the exact next step, the networks'
blocks follow the ``backend`` setting, the GAN trains on a fixed split of the digits and is judged
on the held-out rest (score and FD calibrated, copies of training digits flagged), ``--compare``
overlays two backends' runs, and the GPU preset runs on a CPU when forced."""

import os
import warnings

import numpy as np
import pytest
import torch

import ganreg_ext as gx
from ganreg_ext.demo import Config, Trainer, main, report
from ganreg_ext.demo.data import digits_8x8, digits_split, load_digits_images, load_training_images
from helpers import FUSED_BACKENDS

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
    return Trainer(cfg, load_training_images("digits", cfg.size))


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
            "--augment",
            "translation",
            "--bcr",
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
    assert all(np.isfinite(r["fd"]) and r["fd"] > r["real_fd"] >= 0 for r in res["scores"])
    assert all(r["nn_gen"] > 0 and r["nn_real"] > 0 and 0 <= r["near_copies"] <= 1 for r in res["scores"])
    header = (out / "scores.csv").read_text().splitlines()[0].split(",")
    assert {"score", "fd", "real_fd", "nn_gen", "nn_real", "near_copies"} <= set(header)
    summary = (out / "scores.txt").read_text()
    assert "FD" in summary and "memorization check" in summary and "nearest training digit" in summary
    timing = (out / "timing.md").read_text()
    assert "D step + R1" in timing and "G step + path length" in timing and "torch.compile" in timing
    assert "D step + DiffAugment + bCR" in timing
    assert "| reference |" in timing and "| cpu |" in timing
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


def test_one_d_pass_scores_reals_and_fakes_as_two_passes():
    """Dmain runs D once on [reals; fakes] with ``parts=2``: each half keeps its own minibatch-std
    groups, so the logits are those of two passes (float64: to round-off), and without ``parts`` the
    groups would mix reals with fakes (different logits)."""
    t = _trainer(batch=12)
    D = t.D.double()
    x, y = t.data[:12].double(), t.data[12:24].double()
    with torch.no_grad():
        two = torch.cat([D(x), D(y)])
        torch.testing.assert_close(D(torch.cat([x, y]), parts=2), two, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(D(torch.cat([x, y])), two, rtol=1e-6, atol=1e-6)


def test_conv1x1_is_the_convolution():
    """The models' 1×1 convolutions (broadcast product for one input channel, else a matmul) equal
    ``F.conv2d``, gradients and the double backward of R1 included (float64)."""
    from ganreg_ext.demo.models import conv2d

    for c in (1, 5):
        x = torch.randn(3, c, 6, 7, dtype=torch.float64, requires_grad=True)
        w = torch.randn(4, c, 1, 1, dtype=torch.float64, requires_grad=True)
        torch.testing.assert_close(conv2d(x, w), torch.nn.functional.conv2d(x, w), rtol=1e-13, atol=1e-13)
        assert torch.autograd.gradgradcheck(conv2d, (x, w))


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


def test_digits_split_is_fixed_and_disjoint():
    """The GAN's training split and the held-out split are disjoint, cover the 1,797 digits, hold out
    half of each class, and are the same on every call (fixed seed, not the run's); the trainer and
    the CLI train on the training split only."""
    train, held_out = digits_split()
    assert len(np.intersect1d(train, held_out)) == 0 and len(train) + len(held_out) == 1797
    assert np.array_equal(np.union1d(train, held_out), np.arange(1797))
    labels = digits_8x8()[1]
    assert np.abs(np.bincount(labels[train], minlength=10) - np.bincount(labels[held_out], minlength=10)).max() <= 4
    again = digits_split()
    assert np.array_equal(train, again[0]) and np.array_equal(held_out, again[1])
    assert not np.array_equal(held_out, digits_split(seed=1)[1])  # the seed decides the split
    images = load_digits_images(16)
    assert torch.equal(load_training_images("digits", 16), images[train])
    assert torch.equal(load_digits_images(16, "held_out"), images[held_out])
    assert len(_trainer(seed=7).data) == len(train)  # whatever the run's seed


def test_digits_score_is_calibrated():
    """Real digits the scorer never saw score high, random blobs (an untrained generator's kind of
    output) score ~1: the scorer's "not a digit" class keeps noise from being read confidently as a
    few digits. The scorer is fitted on the held-out split, not on the GAN's training digits."""
    from ganreg_ext.demo.score import DigitsScorer, non_digits

    torch.set_num_threads(1)
    sc = DigitsScorer(16, n_outliers=600)
    train, held_out = digits_split()
    assert sc.n_fit == len(held_out) and sc.n_unseen == len(train)
    assert sc.test_accuracy > 0.93 and 7.3 < sc.real_score < 8.3  # the documented range (docs/demo/README.md)
    assert sc.noise_score < 1.3
    blobs, _ = sc(non_digits(300, 16, seed=7))
    digits, _ = sc(load_digits_images(16, "train")[:500])
    assert blobs < 1.3 and digits > 7.0
    untrained = _trainer().sample(300, seed=0)
    assert sc(untrained)[0] < 2.0


def test_frechet_distance_formula():
    """``frechet_distance`` equals FID's formula with scipy's ``sqrtm`` and is 0 for equal statistics."""
    import scipy.linalg

    from ganreg_ext.demo.score import feature_stats, frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    want = np.square(m1 - m2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)


def test_digits_fd_is_calibrated():
    """The reference statistics are the held-out digits (FD of that set itself ≈ 0); the GAN's
    training digits, unseen by the scorer, have the documented real-digit FD — which is all a generator
    that copies its training set can get (no better than new real digits) — and blurred digits,
    noise and one class alone are far."""
    from ganreg_ext.demo.score import DigitsScorer, non_digits

    torch.set_num_threads(1)
    sc = DigitsScorer(16, n_outliers=600)
    train, held_out = digits_split()
    digits, labels = load_digits_images(16), torch.as_tensor(digits_8x8()[1])
    assert sc.fd(digits[held_out]) < 1e-6  # the reference set itself
    assert 0.2 < sc.real_fd < 1.2  # the documented range (docs/demo/README.md)
    assert sc.fd(digits[train]) == pytest.approx(sc.real_fd, rel=1e-9)  # a copier scores exactly that
    fd_blur = sc.fd(torch.nn.functional.avg_pool2d(digits[train], 3, 1, 1))
    fd_noise = sc.fd(non_digits(500, 16, seed=5))
    assert sc.real_fd < 2 < fd_blur < fd_noise and fd_noise > 100 and sc.noise_fd > 100
    train_labels = labels[train]
    assert sc.fd(digits[train][train_labels == 0]) > 50  # one digit only: a collapsed generator
    score, _, fd = sc.evaluate(digits[train][train_labels < 5])  # half the classes: still a decent score, a clear FD
    assert score > 4 and fd > 10


def test_memorization_check_flags_copies():
    """A generator that returns training images (exactly, or with a little noise) is flagged; new
    real digits (the held-out split) and the networks' samples are not, and the held-out digits'
    median distance is the yardstick."""
    from ganreg_ext.demo.memorization import MemorizationCheck, nearest_distances

    train, held = load_digits_images(16, "train"), load_digits_images(16, "held_out")
    check = MemorizationCheck(train, held)
    gen = torch.Generator().manual_seed(11)
    copies = train[torch.randint(0, len(train), (400,), generator=gen)]
    noisy = (copies + 0.02 * torch.randn(copies.shape, generator=gen)).clamp(-1, 1)
    for fake in (copies, noisy):
        m = check(fake)
        assert m["memorizing"] and m["near_copies"] > 0.9 and m["nn_ratio"] < 0.3, m
    m = check(held)  # new real digits: by construction 5 % are nearer than the 5 % quantile
    assert not m["memorizing"] and m["near_copies"] == pytest.approx(0.05, abs=0.01) and m["nn_ratio"] == pytest.approx(1.0)
    assert 0.05 < check.nn_real < 0.5
    assert not check(_trainer().sample(200, seed=1))["memorizing"]
    # the distance itself: RMS over pixels to the nearest reference image
    a, b = torch.rand(5, 1, 4, 4, generator=gen), torch.rand(7, 1, 4, 4, generator=gen)
    want = ((a[:, None] - b[None]).square().mean([2, 3, 4]).sqrt().min(1).values).double().numpy()
    np.testing.assert_allclose(nearest_distances(a, b, chunk=2), want, rtol=1e-6)
    assert nearest_distances(b, b).max() == 0.0


def test_networks_use_the_blocks_of_the_backend(monkeypatch):
    """G and D route every bias + activation and FIR resampling through ``gx.bias_act`` / ``gx.upfirdn2d``
    with the backend they are given: ``reference`` runs the eager blocks, ``cpu`` the fused ones;
    both compute the same function, and R1 through the fused blocks matches the reference (double backward)."""
    import sys

    seen = []

    def spy(module):
        real = module.fused

        def fused(op, backend, device):
            f = real(op, backend, device)
            seen.append((op, backend, f is not None))
            return f

        monkeypatch.setattr(module, "fused", fused)

    spy(sys.modules["ganreg_ext.bias_act"])  # the package's names are the functions
    spy(sys.modules["ganreg_ext.upfirdn2d"])
    torch.set_num_threads(1)
    t = _trainer()
    z = torch.randn(4, t.cfg.z_dim)
    out = {}
    for b in ("reference", "cpu"):
        seen.clear()
        img = t.G(z, b)
        logits = t.D(img, b)
        ops = {op for op, _, _ in seen}
        assert ops == {"bias_act", "upfirdn2d"}, ops
        assert all(be == b and fused == (b != "reference") for _, be, fused in seen), seen
        x = img.detach().requires_grad_(True)
        t.D.requires_grad_(True)
        t.D.zero_grad(set_to_none=True)
        gx.r1_penalty(gx.input_gradients(t.D(x, b), x), backend=b).backward()
        # a parameter R1 does not depend on (the last bias) may be linked by one backend only: zeros
        out[b] = (img, logits, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in t.D.parameters()])
    torch.testing.assert_close(out["cpu"][0], out["reference"][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["cpu"][1], out["reference"][1], rtol=1e-4, atol=1e-5)
    for g_f, g_r in zip(out["cpu"][2], out["reference"][2]):
        torch.testing.assert_close(g_f, g_r, rtol=1e-3, atol=1e-5)


def _compare_args(out, backends, steps=3):
    return [
        "--compare",
        str(steps),
        "--compare-backends",
        backends,
        "--size",
        "16",
        "--batch",
        "4",
        "--width",
        "16",
        "--bcr",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


def test_compare_identical_backends_coincide(tmp_path):
    """--compare with the same backend twice: identical curves (drift exactly 0), while the control
    (the same backend with the weights moved by one ulp) drifts; plot and CSV written."""
    res = main(_compare_args(tmp_path / "same", "reference,reference"))
    assert (tmp_path / "same" / "compare.png").stat().st_size > 0
    lines = (tmp_path / "same" / "compare.csv").read_text().splitlines()
    assert lines[0].startswith("# a = reference, b = reference") and lines[1].startswith("step,loss_G_a,loss_G_b,loss_G_control")
    assert len(lines) == 2 + 3
    assert {"loss_G", "loss_D", "r1", "pl", "bcr"} <= set(res["drift"])
    assert res["max_drift"] == 0.0 and res["step0_drift"] == 0.0
    a, b = (res["curves"][x] for x in ("a", "b"))
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert res["max_control_drift"] > 0.0  # a GAN amplifies a one-ulp change at once


def test_compare_fused_vs_reference_drift_is_small(tmp_path):
    """The fused backend (ops and blocks) reproduces the reference run up to float32 round-off: at
    step 0 (identical weights) to ~1e-7, afterwards within a few times the one-ulp control's drift."""
    res = main(_compare_args(tmp_path / "fused", "reference,auto", steps=2))
    assert (tmp_path / "fused" / "compare.png").is_file()
    assert res["step0_drift"] < 1e-5
    assert res["max_drift"] < max(10 * res["max_control_drift"], 1e-4), (res["drift"], res["control_drift"])


def test_gpu_preset_runs_on_cpu():
    """The GPU preset (larger networks, 32×32) builds and takes a training step on a CPU when forced."""
    from ganreg_ext.demo.config import PRESETS, resolve_config

    torch.set_num_threads(1)
    cfg = Config(preset="gpu", device="cpu", batch=8)
    r = resolve_config(cfg)
    assert r.size == PRESETS["gpu"]["size"] > PRESETS["cpu"]["size"] and r.width == PRESETS["gpu"]["width"]
    assert r.steps == PRESETS["gpu"]["steps"] and r.batch == 8
    assert resolve_config(Config(device="cpu")).preset == "cpu"
    t = Trainer(cfg, load_training_images("digits", r.size))
    out = t.train_step()
    assert np.isfinite(out["loss_G"]) and np.isfinite(out["r1"]) and np.isfinite(out["pl"])
    assert t.sample(2, seed=0).shape == (2, 1, r.size, r.size)


def test_cli_ada_logs_p_and_resumes(tmp_path):
    """--augment ada: D's inputs go through gx.AdaptiveAugment, p and r_t are logged every step and
    plotted, and the controller's state is checkpointed (2 steps + resume to 9 equals 9 steps, with
    p moved by the controller: interval 4, kimg tiny so p must change)."""
    common = "--size 16 --batch 4 --width 16 --no-timing --no-progress --threads 1 --device cpu --eval-every 100"
    common = common.split() + ["--augment", "ada", "--ada-kimg", "0.01", "--ada-target", "0.0", "--n-eval", "50"]
    res = main(common + ["--steps", "9", "--out", str(tmp_path / "full")])
    main(common + ["--steps", "2", "--out", str(tmp_path / "part")])
    main(["--resume", str(tmp_path / "part" / "checkpoint.pt"), "--steps", "9", "--no-progress", "--no-timing", "--threads", "1"])
    full = torch.load(tmp_path / "full" / "checkpoint.pt", map_location="cpu", weights_only=False)
    part = torch.load(tmp_path / "part" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert full["config"]["augment"] == "ada" and "augment" in full
    for k, v in full["augment"].items():  # p, r_t, the statistic since the last adjustment, the call count
        assert torch.allclose(v, part["augment"][k], equal_nan=True) if torch.is_tensor(v) else v == part["augment"][k], k
    for name in ("G", "D"):
        for k, v in full[name].items():
            assert torch.allclose(v, part[name][k], atol=1e-6, rtol=0), (name, k)
    m = report.read_csv(str(tmp_path / "full" / "metrics.csv"))
    p, rt = m["ada_p"], m["ada_rt"]
    assert np.isfinite(p).all() and len(p) == 9
    assert np.isnan(rt[:3]).all() and np.isfinite(rt[3:]).all()  # first interval completes at call 4
    step = 4 * 4 / (0.01 * 1000)  # (images in an interval) / (kimg · 1000)
    want = np.clip(np.sign(rt[3] - 0.0) * step, 0, 1)
    assert p[:3].tolist() == [0.0] * 3 and p[3] == pytest.approx(want, abs=1e-6)
    assert res["scores"] and (tmp_path / "full" / "curves.png").is_file()


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_r1_through_ada_matches_reference(backend, device):
    """The demo's R1 step with ``--augment ada`` (p = 0.8: most transforms on): D's parameter
    gradients through the fused ADA op, fused blocks and fused R1 on ``backend`` equal the all-eager
    reference's (double backward through ada_augment's adjoint on every backend)."""
    torch.set_num_threads(1)
    t = _trainer(augment="ada", device=device)
    t.aug.ada.p.fill_(0.8)
    params = t.sample_augment(4, torch.Generator().manual_seed(5))
    assert params["geom"].device.type == torch.device(device).type
    grads = {}
    for b in ("reference", backend):
        x = t.data[:4].clone().requires_grad_(True)
        t.D.requires_grad_(True)
        t.D.zero_grad(set_to_none=True)
        logits = t.D(t.augment(x, params, b), b)
        gx.r1_penalty(gx.input_gradients(logits, x), 1.0, backend=b).backward()
        grads[b] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in t.D.parameters()]
    assert any(bool(g.abs().sum() > 0) for g in grads[backend])
    for g_f, g_r in zip(grads[backend], grads["reference"]):
        torch.testing.assert_close(g_f, g_r, rtol=1e-3, atol=1e-5)
