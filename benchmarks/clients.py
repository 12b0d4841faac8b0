"""Real clients: a user's StyleGAN2-ADA, StyleGAN3 or R3GAN checkout run with its own networks and
losses, once with its own ``torch_utils.ops`` (the original) and once with the drop-in
``ganreg_ext.nvlabs`` swapped in; parameter gradients compared, phases timed interleaved.

    python -m benchmarks clients --client stylegan2-ada --path ~/src/stylegan2-ada-pytorch
    python -m benchmarks clients --stylegan2-ada P1 --stylegan3 P2 --r3gan P3   # each in its own process

Nothing of the clients is copied here (their licences): the checkout is imported from ``--path``.

**The swap** is the one-import change ``from ganreg_ext.nvlabs import bias_act, upfirdn2d,
filtered_lrelu`` applied to every module of the checkout that imported those op modules (the
networks, ``conv2d_resample``, R3GAN's resamplers …): equivalent to aliasing the three modules
(``sys.modules``). It is done by rebinding those module attributes, so the same process, the same
weights and the same random draws serve both variants and they can be timed interleaved. The
clients' other ops (``conv2d_gradfix``, ``grid_sample_gradfix``, ``fma``) stay theirs: on CPU they
fall back to PyTorch, and their CUDA plugin loaders never run. Shims, only where an import fails
without them: an empty ``requests`` module (``dnnlib.util`` imports it for downloads) and a
``pkg_resources`` with ``parse_version`` only (``conv2d_gradfix`` of StyleGAN3 and R3GAN; recent
setuptools dropped the module).

On a CPU the original ops run their eager reference (``impl="cuda"`` falls back to ``impl="ref"``:
``bias_act`` in torch ops, FIR filtering by depthwise ``conv2d``); the drop-in runs the fused
``cpu`` backend.

**Phases** (the client's own loss code, ``gain=1``):

- ``stylegan2-ada``: ``training/networks.py`` ``Generator`` (skip) and ``Discriminator`` (resnet:
  the skip branch is added in place, ``y.add_(x)``), ``conv_clamp=256``, float32;
  ``StyleGAN2Loss.accumulate_gradients`` phases ``Dreg`` (R1 on reals) and ``Greg`` (path length).
- ``stylegan3``: ``training/networks_stylegan3.py`` ``Generator`` configs T (3×3 convs) and R (1×1
  convs, radial filters) with the ``networks_stylegan2`` D; its ``StyleGAN2Loss`` phases ``Gmain``
  (G and D forward, backward) and ``Greg`` (path length through ``filtered_lrelu``'s double backward).
- ``r3gan``: ``R3GAN/Networks.py`` G and D (grouped 3×3 convs, ``bias_act`` lrelu gain 1,
  ``upsample2d``/``downsample2d`` with [1, 2, 1]); ``R3GAN/Trainer.py`` ``AdversarialTraining``
  D step (relativistic loss + R1 + R2) and G step.

Every bias and noise strength is set to a random non-zero value first (trained networks have them;
they start at zero), the same for both variants. Per phase: the gradient check (one phase from the
same weights, inputs and seed per variant; worst parameter of ``max|g_ours − g_orig| / max|g_orig|``;
the float32 floor is the larger of the same error of the original on 1 thread against 2 threads
(the reduction order alone) and of the original with its weights perturbed by half a float32 ulp), then ``--reps`` interleaved runs of each (``timing.interleaved``: the order alternating, ``--warmup`` rounds first), median ms.
Output: ``<out>/<client>.json`` per client and ``<out>/results.md`` from every JSON present.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from . import report
from . import timing as T
from .checks import errmsg, worst_rel

ROOT = Path(__file__).resolve().parent
OPS = ("bias_act", "upfirdn2d", "filtered_lrelu")
CLIENTS = ("stylegan2-ada", "stylegan3", "r3gan")
BIAS_STD, NOISE_STRENGTH = 0.1, 0.1


# ------------------------------------------------------------------------------------- the swap


class Swap:
    """The client's op modules and ours; ``use(ours)`` rebinds every client module's reference."""

    def __init__(self, path: Path):
        self.path = str(path.resolve())
        if self.path not in sys.path:
            sys.path.insert(0, self.path)
        try:
            import requests  # noqa: F401
        except ImportError:
            sys.modules["requests"] = types.ModuleType("requests")  # dnnlib.util imports it for downloads
        try:
            import pkg_resources  # noqa: F401
        except ImportError:  # gone from recent setuptools; conv2d_gradfix only needs parse_version
            from packaging.version import Version

            shim = types.ModuleType("pkg_resources")
            shim.parse_version = Version
            sys.modules["pkg_resources"] = shim
        import importlib

        import ganreg_ext.nvlabs as nv

        self.theirs, self.ours = {}, {}
        for name in OPS:
            try:
                self.theirs[name] = importlib.import_module(f"torch_utils.ops.{name}")
            except ImportError:
                continue  # StyleGAN2-ADA and R3GAN have no filtered_lrelu
            self.ours[name] = getattr(nv, name)

    def _client_modules(self):
        own = {f"torch_utils.ops.{n}" for n in OPS}
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) or ""
            if f.startswith(self.path) and name not in own:
                yield mod

    def use(self, ours: bool) -> int:
        """Bind the ops (ours or theirs) in every client module that refers to either; → count."""
        n = 0
        for mod in self._client_modules():
            for name, theirs in self.theirs.items():
                cur = getattr(mod, name, None)
                if cur is theirs or cur is self.ours[name]:
                    setattr(mod, name, self.ours[name] if ours else theirs)
                    n += 1
        return n


def randomize_biases(*models) -> None:
    """Biases N(0, BIAS_STD²) (÷ the layer's lr multiplier when it has one), noise strengths
    NOISE_STRENGTH: neither is a no-op (they start at zero in the originals)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for model in models:
            for mod in model.modules():
                lr = float(getattr(mod, "lr_multiplier", getattr(mod, "bias_gain", 1.0)) or 1.0)
                for pname, p in mod.named_parameters(recurse=False):
                    if pname.lower() == "bias" and p is not None:
                        p.add_(BIAS_STD * torch.randn(p.shape, generator=g) / lr)
                    elif pname == "noise_strength":
                        p.fill_(NOISE_STRENGTH)


# ------------------------------------------------------------------------------------- clients


def _sg2_nets(N, size: int, cmax: int):
    base = cmax * size // 2  # cmax channels, half at the output resolution
    G = N.Generator(
        z_dim=128, c_dim=0, w_dim=128, img_resolution=size, img_channels=3, mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=base, channel_max=cmax, conv_clamp=256, num_fp16_res=0),
    )  # fmt: skip
    D = N.Discriminator(
        c_dim=0, img_resolution=size, img_channels=3, channel_base=base, channel_max=cmax, conv_clamp=256, num_fp16_res=0
    )
    return G, D


def _loss_phases(loss, z_dim: int, batch: int, size: int, names: dict, **kw) -> dict:
    """{label: run()}: ``loss.accumulate_gradients(name, …, gain=1, **kw)`` of each ``names`` entry
    (label → phase name) on fixed random reals and latents, no labels, the path-length mean reset."""
    real = torch.randn(batch, 3, size, size)
    z = torch.randn(batch, z_dim)
    c = torch.zeros(batch, 0)

    def phase(name):
        def run():
            loss.pl_mean.zero_()
            loss.accumulate_gradients(name, real, c, z, c, gain=1, **kw)

        return run

    return {label: phase(name) for label, name in names.items()}


def stylegan2_ada(size: int, batch: int, cmax: int) -> dict:
    """{phase: run()}: StyleGAN2-ADA ``Dreg`` and ``Greg`` of its ``StyleGAN2Loss``."""
    import training.loss as L
    import training.networks as N

    torch.manual_seed(0)
    G, D = _sg2_nets(N, size, cmax)
    randomize_biases(G, D)
    loss = L.StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D)
    phases = _loss_phases(loss, G.z_dim, batch, size, {"Dreg (R1)": "Dreg", "Greg (path length)": "Greg"}, sync=True)
    return {"models": (G, D), "phases": phases}


def stylegan3(size: int, batch: int, cmax: int, config: str) -> dict:
    """{phase: run()}: StyleGAN3 config T or R G with the StyleGAN2 D, ``Gmain`` and ``Greg``."""
    import training.loss as L
    import training.networks_stylegan2 as N2
    import training.networks_stylegan3 as N3

    torch.manual_seed(0)
    kw = dict(conv_kernel=1, use_radial_filters=True) if config == "R" else {}
    base = cmax * size // 2 * (2 if config == "R" else 1)  # R doubles the channels, as train.py does
    G = N3.Generator(
        z_dim=128, c_dim=0, w_dim=128, img_resolution=size, img_channels=3, mapping_kwargs=dict(num_layers=2),
        channel_base=base, channel_max=cmax * (2 if config == "R" else 1), num_fp16_res=0, **kw,
    )  # fmt: skip
    D = N2.Discriminator(
        c_dim=0, img_resolution=size, img_channels=3, channel_base=cmax * size // 2, channel_max=cmax, conv_clamp=256
    )
    randomize_biases(G, D)
    loss = L.StyleGAN2Loss(torch.device("cpu"), G, D, pl_weight=2)
    names = {f"{config}: Gmain": "Gmain", f"{config}: Greg (path length)": "Greg"}
    return {"models": (G, D), "phases": _loss_phases(loss, G.z_dim, batch, size, names, cur_nimg=0)}


def r3gan(size: int, batch: int, cmax: int) -> dict:
    """{phase: run()}: R3GAN's trainer, D step (relativistic + R1 + R2, γ = 10) and G step."""
    import R3GAN.Networks as RN
    import R3GAN.Trainer as RT

    torch.manual_seed(0)
    stages = int(math.log2(size)) - 1  # 4×4 … size
    widths = [cmax] * (stages - 1) + [cmax // 2]
    card = [w // 16 for w in widths]  # 16 channels per group
    G = RN.Generator(64, widths, card, [2] * stages, 2)
    D = RN.Discriminator(widths[::-1], card[::-1], [2] * stages, 2)
    randomize_biases(G, D)
    tr = RT.AdversarialTraining(G, D)
    real = torch.randn(batch, 3, size, size)
    noise = torch.randn(batch, 64)
    return {
        "models": (G, D),
        "phases": {
            "D step (R1 + R2)": lambda: tr.AccumulateDiscriminatorGradients(noise, real, None, 10.0),
            "G step": lambda: tr.AccumulateGeneratorGradients(noise, real, None),
        },
    }


def build(client: str, size: int, batch: int, cmax: int) -> list[dict]:
    if client == "stylegan2-ada":
        return [stylegan2_ada(size, batch, cmax)]
    if client == "stylegan3":
        return [stylegan3(size, batch, cmax, "T"), stylegan3(size, batch, cmax, "R")]
    return [r3gan(size, batch, cmax)]


# ------------------------------------------------------------------------------------- measuring


def grads_of(models, run, seed: int = 1) -> dict:
    for m in models:
        m.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    run()
    return {
        f"{i}.{n}": p.grad.detach().clone() for i, m in enumerate(models) for n, p in m.named_parameters() if p.grad is not None
    }


FLOOR_DRAWS = 4  # perturbed runs of the original per phase (the floor is the largest deviation)


def perturbed_grads(models, run, rel: float = 2.0**-24, seed: int = 11) -> dict:
    """Gradients of the original with every weight multiplied by ``1 + rel·n`` (``n`` standard normal
    from ``seed``, ``rel`` half a float32 ulp): how far float32 rounding alone moves them (e.g. a
    pre-activation on the other side of the leaky ReLU's kink)."""
    gen = torch.Generator().manual_seed(seed)
    saved = [(p, p.detach().clone()) for m in models for p in m.parameters()]
    with torch.no_grad():
        for p, _ in saved:
            p.mul_(1 + rel * torch.randn(p.shape, generator=gen))
    try:
        return grads_of(models, run)
    finally:
        with torch.no_grad():
            for p, v in saved:
                p.copy_(v)


def measure_phase(swap: Swap, models, run, reps: int, warmup: int) -> dict:
    threads = torch.get_num_threads()
    swap.use(False)
    g_orig = grads_of(models, run)
    torch.set_num_threads(1)
    g_orig1 = grads_of(models, run)
    torch.set_num_threads(threads)
    g_orig_p = [perturbed_grads(models, run, seed=11 + k) for k in range(FLOOR_DRAWS)]
    out = {"n_params": len(g_orig)}
    swap.use(True)
    try:
        g_ours = grads_of(models, run)
    except Exception as e:  # the drop-in fails where the original runs: that is the result
        swap.use(False)
        out["error"] = errmsg(e, 400)
        return out
    out["max_grad_rel_err"], out["worst_param"] = worst_rel(g_ours, g_orig)
    # one draw of the floor is as random as the drop-in's own deviation (which elements cross a kink):
    # the floor is the largest of the 1-thread run and FLOOR_DRAWS perturbed runs; the first draw alone
    # (the floor of the runs before 2026-12-07 22:30 UTC) is kept as f32_floor1_rel_err
    floors = [worst_rel(g_orig1, g_orig)] + [worst_rel(g, g_orig) for g in g_orig_p]
    out["f32_floor_rel_err"], out["floor_worst_param"] = max(floors)
    out["f32_floor1_rel_err"] = max(floors[:2])[0]

    def before(v):  # untimed: the variant's ops, fresh gradients, the same random draws
        swap.use(v == "ours")
        for m in models:
            m.zero_grad(set_to_none=True)
        torch.manual_seed(2)

    st = T.interleaved({"orig": run, "ours": run}, reps, warmup, before=before)
    swap.use(False)
    for v, x in st.items():
        out[f"{v}_ms"], out[f"{v}_q1_ms"], out[f"{v}_q3_ms"] = x.median_ms, x.q1_ms, x.q3_ms
    out["speedup"] = out["orig_ms"] / out["ours_ms"]
    out["reps"] = reps
    return out


def run_client(args) -> dict:
    swap = Swap(Path(args.path))
    load0 = T.loadavg()
    t0 = time.perf_counter()
    rows = []
    for size, batch in args.sizes:
        cmax = args.channels or (64 if size <= 64 else 32)
        for setup in build(args.client, size, batch, cmax):
            swap.use(False)
            for phase, run in setup["phases"].items():
                print(f"[{args.client} {size}px B{batch}] {phase} ...", flush=True)
                r = measure_phase(swap, setup["models"], run, args.reps, args.warmup)
                r.update(client=args.client, phase=phase, size=size, batch=batch, channels_max=cmax)
                rows.append(r)
                print("   ", {k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    rev = args.commit
    if not rev:
        try:
            rev = subprocess.run(["git", "-C", args.path, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        except OSError:
            rev = ""
    return {
        "client": args.client,
        "checkout_commit": rev or "unknown (not a git checkout)",
        **T.header(torch.device("cpu")),
        "load_start": load0,
        "load_end": T.loadavg(),
        "elapsed_s": time.perf_counter() - t0,
        "swapped_modules": swap.use(False),
        "argv": args.argv,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------- report


def write_md(out: Path) -> None:
    fs = report.fmt_spec
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    md = [
        "# Real clients: their own networks and losses, original ops vs the drop-in (`ganreg_ext.nvlabs`)",
        "",
        "`python -m benchmarks.clients` (see its docstring): each checkout's `torch_utils.ops` `bias_act` / `upfirdn2d` / "
        "`filtered_lrelu` swapped for `ganreg_ext.nvlabs` in every module that imports them; the original on CPU is "
        "their eager reference (`impl='ref'`: grouped-`conv2d` FIR filtering). Biases and noise strengths random "
        "non-zero. **grad err**: worst parameter `max|g_ours − g_orig| / max|g_orig|`; **f32 floor**: the original "
        "against itself on 1 thread (reduction order) or with its weights perturbed by half a float32 ulp "
        f"({FLOOR_DRAWS} draws), the largest; **1 draw**: the same with the first draw only (the floor of runs before "
        "2026-12-07 22:30 UTC; which elements land on the other side of a leaky-ReLU kink is random, so one draw "
        "of the floor is about as likely to fall below the drop-in's deviation as above it). Times: median of the "
        "interleaved reps; the machine is shared, so read the ratios.",
        "",
    ]
    for r in runs:
        md += [
            f"## {r['client']} (checkout {r['checkout_commit']}; {r['swapped_modules']} module references swapped)",
            "",
            f"{r['date']} · {r['device']} · torch {r['torch']} · {r['threads']} threads · load average "
            f"{r['load_start']:.2f} at the start, {r['load_end']:.2f} at the end · {r['elapsed_s']:.0f} s · "
            f"`{r['argv']}`",
            "",
            "| phase | size | batch | orig ms | drop-in ms | speed-up | grad err | f32 floor | 1 draw | params |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in r["rows"]:
            if "error" in x:
                md.append(
                    f"| {x['phase']} | {x['size']}² | {x['batch']} | – | **fails**: {x['error']} | – | – | – | – | {x['n_params']} |"
                )
                continue
            md.append(
                f"| {x['phase']} | {x['size']}² | {x['batch']} | {fs(x['orig_ms'], '.0f')} | {fs(x['ours_ms'], '.0f')} | "
                f"{fs(x['speedup'], '.2f')}× | {fs(x['max_grad_rel_err'], '.1e')} | {fs(x['f32_floor_rel_err'], '.1e')} | "
                f"{fs(x.get('f32_floor1_rel_err', x['f32_floor_rel_err']), '.1e')} | {x['n_params']} |"
            )
        md.append("")
    (out / "results.md").write_text("\n".join(md) + "\n")


# ------------------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks clients", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--client", choices=CLIENTS, help="which codebase --path is")
    p.add_argument("--path", help="the user's checkout")
    for c in CLIENTS:
        p.add_argument(f"--{c}", default=None, metavar="PATH", help=f"run the {c} checkout at PATH (own process)")
    p.add_argument("--sizes", default=None, help="SIZE:BATCH,... (default 64:8,256:4 for stylegan2-ada, else 64:4)")
    p.add_argument("--channels", type=int, default=None, help="max channels (default 64 up to 64 px, else 32)")
    p.add_argument("--commit", default=None, help="the checkout's commit, recorded (default: git rev-parse in --path)")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="default benchmarks/results/<device-slug>/clients/")
    a = p.parse_args(argv)
    a.argv = T.argv_line(argv)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    out = Path(a.out) if a.out else report.results_dir(torch.device("cpu"), "clients")
    out.mkdir(parents=True, exist_ok=True)
    many = {c: getattr(a, c.replace("-", "_")) for c in CLIENTS if getattr(a, c.replace("-", "_"))}
    if many:  # one process per checkout: they share package names (training, torch_utils, dnnlib)
        rc = 0
        passthrough = ["--reps", str(a.reps), "--warmup", str(a.warmup), "--out", str(out)]
        passthrough += (["--threads", str(a.threads)] if a.threads else []) + (["--sizes", a.sizes] if a.sizes else [])
        passthrough += ["--channels", str(a.channels)] if a.channels else []
        for c, path in many.items():
            cmd = [sys.executable, "-m", "benchmarks.clients", "--client", c, "--path", path] + passthrough
            cmd += ["--commit", a.commit] if a.commit else []
            rc |= subprocess.call(cmd, cwd=ROOT.parent)
        return rc
    if not (a.client and a.path):
        raise SystemExit("give --client and --path, or --stylegan2-ada/--stylegan3/--r3gan PATH")
    if a.threads:
        torch.set_num_threads(a.threads)
    default = "64:8,256:4" if a.client == "stylegan2-ada" else "64:4"
    a.sizes = [tuple(int(v) for v in s.split(":")) for s in (a.sizes or default).split(",") if s]
    res = run_client(a)
    name = f"{a.client}_{'_'.join(str(s) for s, _ in a.sizes)}"
    (out / f"{name}.json").write_text(json.dumps(res, indent=2))
    write_md(out)
    print(f"wrote {out / (name + '.json')} and results.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
