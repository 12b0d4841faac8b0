"""The timing table at the end of a demo run: the regularized D steps (R1; DiffAugment + bCR) and
G step (path length) with ``backend="reference"`` versus the backend ``auto`` picks on this device, plus ``torch.compile``
of the non-regularized D step (first order only: double backward cannot run through a compiled
region, so the R1/PL steps stay eager). Timing and peak memory: ``ganreg_ext/_measure.py``, the
primitives the benchmark harness uses too.

The table alone, without training (:func:`main`): ``python -m benchmarks demo-timing [demo flags]``
(or ``python -m ganreg_ext.demo.timing``)."""

from __future__ import annotations

import copy
import os
import sys
import warnings

import torch

import ganreg_ext as gx
from ganreg_ext._dispatch import resolve
from ganreg_ext._measure import interleaved, peak_memory


def auto_backend(device: torch.device) -> str:
    """What ``auto`` resolves to for the penalty ops and the blocks on ``device`` (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gx.BackendWarning)
        names = {resolve(op, "auto", device) for op in ("sqnorm", "noise_dot", "bias_act", "upfirdn2d")}
    return names.pop() if len(names) == 1 else "+".join(sorted(names))


def measure(fn, device, reps: int = 10, warmup: int = 2) -> tuple[float, float | None]:
    """``(median ms, peak MiB)`` of ``fn`` (:func:`measure_interleaved`)."""
    return measure_interleaved([fn], device, reps, warmup)[0]


def measure_interleaved(fns, device, reps: int = 10, warmup: int = 2) -> list[tuple[float, float | None]]:
    """``(median ms, peak MiB)`` per function, timed in rounds of one call each, the order alternating
    (so a busy machine slows every backend alike and the ratios stay meaningful); the peak is the extra
    memory of one more call: the CUDA allocator's, or on CPU PyTorch's allocations (profiler records
    replayed in time order) plus the package's CPU reuse cache, which the profiler never sees."""
    stats = interleaved(dict(enumerate(fns)), reps, warmup, device=device)
    peaks = [peak_memory(lambda _, fn=fn: fn(), device) for fn in fns]
    return [(stats[i].median_ms, None if p is None else p.total / 2**20) for i, p in enumerate(peaks)]


def timing_table(trainer, reps: int = 10, compile_mode: str = "auto") -> tuple[str, list[dict]]:
    """Markdown table (and rows) for the R1 D step and PL G step per backend, and the compiled D step."""
    cfg, dev = trainer.cfg, trainer.device
    G, D = trainer.G, trainer.D
    B = cfg.batch
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    real = trainer.data[torch.randint(0, len(trainer.data), (B,), generator=gen)].to(dev)
    z = torch.randn(B, G.z_dim, generator=gen).to(dev)
    z_pl = z[: max(1, B // 2)]
    aug = trainer.sample_augment(B, gen)
    aug2 = trainer.sample_augment(B, gen)
    aug_name = getattr(trainer.aug, "name", "")
    auto = auto_backend(dev)
    rows = []

    def params_zero():
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = None

    def d_r1_step(backend):
        def fn():
            params_zero()
            x = real.detach().requires_grad_(True)
            logits = D(trainer.augment(x, aug, backend), backend)
            grads = gx.input_gradients(logits, x)
            r1 = gx.r1_penalty(grads, cfg.r1_gamma, backend=backend) * cfg.r1_interval
            (logits.mean() * 0 + r1).backward()

        return fn

    def g_pl_step(backend):
        reg = copy.deepcopy(trainer.pl_reg)
        reg.backend = backend

        def fn():
            params_zero()
            ws = G.mapping(z_pl, backend)
            img = G.synthesis(ws, backend)
            (reg(img, ws, seed=1234) * cfg.pl_interval).backward()

        return fn

    D.requires_grad_(True)
    G.requires_grad_(False)
    for b, (ms, mib) in zip(("reference", auto), measure_interleaved([d_r1_step("reference"), d_r1_step(auto)], dev, reps)):
        rows.append(dict(step=f"D step + R1 (B={B})", backend=b, ms=ms, mib=mib))
    D.requires_grad_(False)
    G.requires_grad_(True)
    for b, (ms, mib) in zip(("reference", auto), measure_interleaved([g_pl_step("reference"), g_pl_step(auto)], dev, reps)):
        rows.append(dict(step=f"G step + path length (B={B // 2})", backend=b, ms=ms, mib=mib))
    G.requires_grad_(False)
    D.requires_grad_(True)

    with torch.no_grad():
        fake = G(z, auto)
    cr = (trainer.sample_cr(B, gen), trainer.sample_cr(B, gen)) if cfg.bcr > 0 else None

    def d_bcr_step(backend):
        def fn():
            params_zero()
            trainer.d_main_loss(real, fake, aug, aug2, cr, backend)[0].backward()

        return fn

    what = "D step" + (f" + {aug_name}" if aug_name else "") + (" + bCR" if cr is not None else "")
    for b, (ms, mib) in zip(("reference", auto), measure_interleaved([d_bcr_step("reference"), d_bcr_step(auto)], dev, reps)):
        rows.append(dict(step=f"{what} (B={B})", backend=b, ms=ms, mib=mib))

    def d_main_step(model):
        def fn():
            params_zero()
            trainer.d_main_loss(real, fake, aug, aug2, None, auto, D=model)[0].backward()

        return fn

    ms, mib = measure(d_main_step(D), dev, reps)
    rows.append(dict(step=f"D step, no penalty (B={B})", backend=f"{auto}, eager", ms=ms, mib=mib))
    do_compile = compile_mode == "on" or (compile_mode == "auto" and dev.type == "cuda")
    if do_compile:
        try:
            D_c = torch.compile(D)
            ms, mib = measure(d_main_step(D_c), dev, reps, warmup=3)
            rows.append(dict(step=f"D step, no penalty (B={B})", backend=f"{auto}, torch.compile(D)", ms=ms, mib=mib))
        except Exception as e:  # noqa: BLE001 - report, don't fail the demo
            rows.append(
                dict(
                    step=f"D step, no penalty (B={B})",
                    backend="torch.compile(D)",
                    ms=None,
                    mib=None,
                    note=f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                )
            )
    else:
        why = (
            "off (--compile off)"
            if compile_mode == "off"
            else "skipped on CPU (compiling takes minutes there; --compile on forces it)"
        )
        rows.append(dict(step=f"D step, no penalty (B={B})", backend="torch.compile(D)", ms=None, mib=None, note=why))
    D.requires_grad_(False)
    params_zero()

    mem = "peak MiB (CUDA allocator)" if dev.type == "cuda" else "peak MiB (torch CPU allocations + reuse cache)"
    lines = [
        f"| step | backend | ms / step (median of {reps}) | {mem} |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        if r["ms"] is None:
            lines.append(f"| {r['step']} | {r['backend']} | {r.get('note', 'n/a')} | |")
        else:
            mib = "n/a" if r["mib"] is None else f"{r['mib']:.1f}"
            lines.append(f"| {r['step']} | {r['backend']} | {r['ms']:.1f} | {mib} |")
    ref = {r["step"]: r["ms"] for r in rows if r["backend"] == "reference"}
    notes = [
        "",
        f"Device: {device_name(dev)}; torch {torch.__version__}; ganreg_ext backends here: {gx.available_backends()}; "
        f"`auto` → `{auto}`.",
        f"`reference` runs every op eagerly: the penalties, {aug_name or 'the augmentation'}/bCR when on and the networks' blocks (`bias_act`, "
        "FIR up/downsampling); the fused backend runs all of them fused (convolutions and matmuls are PyTorch's "
        "either way). "
        "Steps time forward + input/`ws` gradients (create_graph) + penalty + backward, without the optimizer step "
        f"(identical for both backends). R1 includes {aug_name or 'the augmentation (none here)'} of the real batch (its "
        f"double backward too); `{what}` is the main D step (losses on {'augmented ' if aug_name else ''}reals and fakes"
        + (", bCR's two extra D passes on its sub-batch)." if cr is not None else ")."),
        "torch.compile applies only to the first-order D step: double backward (R1, path length) cannot run through "
        "a compiled region (PyTorch limitation), so the regularized steps run eagerly with the fused ops.",
    ]
    if auto == "reference":
        notes.append("No fused backend is built for this device, so `auto` falls back to `reference` and the two rows match.")
    else:
        for r in rows:
            if r["backend"] == auto and r["step"] in ref and r["ms"]:
                notes.append(f"{r['step']}: {ref[r['step']] / r['ms']:.2f}× vs reference.")
    return "\n".join(lines + notes) + "\n", rows


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def main(argv=None) -> int:
    """The timing table of a demo run without the training: the networks of the demo's settings at
    initialization (a step costs the same whatever the weights; ``--augment ada`` starts at p = 0),
    printed, and written to ``<out>/timing.md`` with ``--out``. Every flag of ``python -m ganreg_ext.demo``
    is accepted; those of training (``--steps``, ``--eval-every``, …) are ignored."""
    from .cli import parse_args, set_threads
    from .config import resolve_config
    from .data import load_training_images
    from .trainer import Trainer

    doc = "The demo's timing table without training (the demo's flags; training ones are ignored)."
    cfg, _ = parse_args(argv, prog="python -m benchmarks demo-timing", description=doc)
    cfg = resolve_config(cfg)
    if torch.device(cfg.device).type == "cpu":
        set_threads(cfg.threads)
    trainer = Trainer(cfg, load_training_images(cfg.data, cfg.size))
    table, _ = timing_table(trainer, cfg.timing_reps, cfg.compile)
    print(table, end="", flush=True)
    if cfg.out:
        os.makedirs(cfg.out, exist_ok=True)
        with open(os.path.join(cfg.out, "timing.md"), "w") as f:
            f.write(table)
        print(f"wrote {os.path.join(cfg.out, 'timing.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
