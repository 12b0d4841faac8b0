"""Writing results: the CSV writers, number formats and the default results folder every entry point
uses, and the sweep's ``results.md`` and PNG plots from ``results.csv`` + ``meta.json`` (also usable on
its own: ``python -m benchmarks ops --report-only --out DIR``)."""

from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from pathlib import Path

import torch

from . import timing as T
from .cases import MODE_LABEL

ROOT = Path(__file__).resolve().parent
IMPL_ORDER = ("eager", "compile", "cpu", "cuda", "triton")
LAYERS = "layers (no grad)"  # the overhead family's per-layer rows (benchmarks/run.py run_layers)


def num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x, nd: int = 3, suffix: str = "") -> str:
    v = num(x)
    if v is None:
        return "—"
    if v == 0:
        return "0" + suffix
    if abs(v) >= 100:
        return f"{v:.0f}{suffix}"
    return f"{v:.{nd}g}{suffix}"


def fmt_spec(v, spec: str) -> str:
    """``format(v, spec)``; "–" for a missing value (None, "", NaN)."""
    v = None if v is None or v == "" else float(v)
    return "–" if v is None or math.isnan(v) else format(v, spec)


def results_dir(device: torch.device, sub: str = "") -> Path:
    """The default output folder: ``benchmarks/results/<device-slug>/[sub]``."""
    return ROOT / "results" / T.device_slug(device) / sub


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """``path`` with a header and ``rows`` (missing fields empty)."""
    with Path(path).open("w", newline="") as f:
        w = csv.DictWriter(f, fields, restval="")
        w.writeheader()
        w.writerows(rows)


def append_csv(path: Path, fields: list[str], row: dict) -> None:
    """One more row (the header first when the file is new): a run cut off by a limit keeps its rows."""
    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fields, restval="")
        if new:
            w.writeheader()
        w.writerow(row)


def _impl_key(impl: str) -> tuple:
    return (IMPL_ORDER.index(impl) if impl in IMPL_ORDER else len(IMPL_ORDER), impl)


def load(out: Path) -> tuple[dict, list[dict]]:
    meta_p, csv_p = out / "meta.json", out / "results.csv"
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
    rows = list(csv.DictReader(csv_p.open())) if csv_p.exists() else []
    return meta, rows


def _group(rows):
    """family -> size -> mode -> impl -> row (insertion order = run order)."""
    g: OrderedDict = OrderedDict()
    for r in rows:
        g.setdefault(r["family"], OrderedDict()).setdefault(r["size"], OrderedDict()).setdefault(r["mode"], OrderedDict())[
            r["impl"]
        ] = r
    return g


def _fused(impls) -> list[str]:
    return [i for i in impls if i not in ("eager", "compile", "*") and i in IMPL_ORDER]


def markdown(meta: dict, rows: list[dict]) -> str:
    L: list[str] = []
    dev = meta.get("device", "?")
    L.append(f"# ganreg_ext benchmarks — {dev}")
    L.append("")
    L.append(
        f"- date {meta.get('date', '?')}; torch {meta.get('torch', '?')}, triton {meta.get('triton', '?')}, "
        f"CUDA {meta.get('cuda') or '—'}, Python {meta.get('python', '?')}"
    )
    L.append(
        f"- threads {meta.get('threads', '?')} (cores {meta.get('cpu_count', '?')}, "
        f"capability {meta.get('cpu_capability', '?')}); "
        f"load average at start {fmt(meta.get('loadavg'))}, at end {fmt(meta.get('loadavg_end'))}"
    )
    L.append(
        f"- backends available {meta.get('backends_available', '?')}; fused backends benchmarked: "
        f"{meta.get('fused_benchmarked') or 'none (only eager reference and torch.compile)'}"
    )
    L.append(
        f"- bandwidth: copy_ {fmt(meta.get('copy_gbps'))} GB/s measured in this run; % columns are relative to "
        f"{meta.get('bw_src', '?')}"
    )
    L.append(
        "- caches: CUDA flushes L2 (256 MB write) before every timed repetition; CPU rewrites 2×LLC "
        f"(LLC {fmt(meta.get('llc_mib'))} MiB) before every repetition of a case whose fwd+bwd working set exceeds "
        "the LLC, else times it warm (`cache` column); the overhead family is timed warm, per call"
    )
    L.append(
        f"- dtype {meta.get('dtype', 'float32')}, {'quick' if meta.get('quick') else 'full'} sweep, "
        f"≥ {meta.get('min_reps', 20)} timed repetitions per figure after warm-up, median [IQR]; "
        f"run time {fmt(meta.get('elapsed_s'))} s; args `{meta.get('argv', '')}`"
    )
    L.append("")
    L.append(
        "Columns: **ms** median [q1–q3]; **×eager / ×compile** = that impl's speedup (eager or compiled time / its time); "
        "**GB/s** = the op's floor bytes (the least it must read + write, `benchmarks/cases.py`) / time, **%BW** of the "
        "bandwidth above (100% = at the floor); **peak MiB** = extra memory held at the peak of one call "
        "(CUDA: `max_memory_allocated`; CPU: replay of `torch.profiler` memory events **plus** the peak of "
        "ganreg_ext's CPU reuse cache, which the profiler never sees: "
        f"{meta.get('peak_method') or 'profiler only (a results file older than the cache counters)'}); **compile s** = first call "
        "of `torch.compile` (forward+backward compile, excluded from the timings). Every fused/compiled result was "
        "checked against the eager reference before timing; rows marked WRONG were not timed. `nvlabs_randn` / "
        "`torch_randn` use a stored `randn_like` tensor (what users run: NVlabs' noise-dot, the usual instance noise; other "
        "noise, not checked), `compile_*` is its `torch.compile`: for the noise families ×eager and ×compile are against "
        'these, and **×ref** against the eager integer-Philox reference (`backend="reference"`, the same noise as the '
        "fused kernels, not what anyone runs). "
        "Timings on shared machines vary ±30% between runs: compare ratios within one run."
    )
    L.append("")
    grouped = _group(rows)

    # ---- summary: fwd+bwd of the largest size per family
    summary = []
    for fam, sizes in grouped.items():
        if fam == "overhead":
            continue
        best = None
        for size, modes in sizes.items():
            m = modes.get("fwdbwd") or modes.get("step")
            if not m:
                continue
            eager = m.get("eager")
            if eager is None or num(eager.get("median_ms")) is None:
                continue
            n = num(eager.get("numel")) or 0
            if best is None or n >= best[0]:
                best = (n, size, m)
        if best is None:
            continue
        _, size, m = best
        fused = _fused(m)
        user = next((r["baseline"] for r in m.values() if r.get("baseline")), "eager")
        user = user if user in m else "eager"
        cells = [fam, size, fmt(m[user]["median_ms"]) + ("" if user == "eager" else f" ({user})")]
        comp = m.get("compile" if user == "eager" else f"compile_{user}")
        if comp is None or not str(comp["status"]).startswith("ok"):
            alt = next((k for k in m if k.startswith("compile_") and str(m[k]["status"]).startswith("ok")), None)
            comp = m[alt] if alt else comp
            cells.append(
                f"{fmt(comp['median_ms'])} ({alt})" if alt else "—" if comp is None else str(comp["status"]).split(":")[0]
            )
        else:
            cells.append(fmt(comp["median_ms"]))
        if fused:
            parts = []
            for b in fused:
                r = m[b]
                if str(r["status"]).startswith("ok"):
                    ref = f", ×{fmt(r['x_ref'])} Philox ref" if num(r.get("x_ref")) else ""
                    parts.append(
                        f"{b}: {fmt(r['median_ms'])} ms, ×{fmt(r['x_eager'])} eager, ×{fmt(r['x_compile'])} compile{ref}, "
                        f"{fmt(r['pct_bw'], 2, '%')} BW"
                    )
                else:
                    parts.append(f"{b}: {str(r['status']).split(':')[0]}")
            cells.append("; ".join(parts))
        else:
            cells.append("no fused backend")
        summary.append(cells)
    L += reuse_table(meta, rows)
    if summary:
        L.append("## Summary (forward+backward, or one training step, at the largest size)")
        L.append("")
        L.append("Eager and compile: what users run (the reference; for the noise families their `randn_like` code).")
        L.append("")
        L.append("| family | size | eager ms | compile ms | fused |")
        L.append("|---|---|---|---|---|")
        for c in summary:
            L.append("| " + " | ".join(c) + " |")
        L.append("")

    # ---- per family
    for fam, sizes in grouped.items():
        if fam == "overhead":
            L += overhead_table([r for r in rows if r["family"] == "overhead"])
            continue
        first = next(iter(next(iter(sizes.values())).values()))
        op = next(iter(first.values()))["op"]
        L.append(f"## {fam} — `{op}`")
        L.append("")
        L.append(
            "| size | mode | impl | ms [IQR] | ×eager | ×compile | ×ref | GB/s | %BW | peak MiB | compile s | cache | status |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        notes: dict[str, list[str]] = {}
        for size, modes in sizes.items():
            for mode, impls in modes.items():
                for impl in sorted(impls, key=_impl_key):
                    r = impls[impl]
                    if impl == "compile" and str(r["status"]).startswith("skipped"):
                        sizes_noted = notes.setdefault(str(r["status"]).removeprefix("skipped: "), [])
                        if size not in sizes_noted:
                            sizes_noted.append(size)
                        continue
                    ok = str(r["status"]).startswith("ok")
                    ms = f"{fmt(r['median_ms'])} [{fmt(r['q1_ms'])}–{fmt(r['q3_ms'])}]" if ok else "—"
                    status = "ok" if r["status"] == "ok" else str(r["status"]).replace("|", "/")[:160]
                    L.append(
                        f"| {size} | {MODE_LABEL.get(mode, mode)} | {impl} | {ms} | {fmt(r['x_eager'])} | "
                        f"{fmt(r['x_compile'])} | {fmt(r.get('x_ref'))} | {fmt(r['gbps'])} | {fmt(r['pct_bw'], 2)} | "
                        f"{fmt(r['peak_mem_mib'])} | {fmt(r['compile_s'])} | {r.get('cache') or '—'} | {status} |"
                    )
        for why, where in notes.items():
            L.append("")
            L.append(f"torch.compile not run at {', '.join(where)}: {why}.")
        if fam.startswith("train") and any(r["steps_per_s"] for s in sizes.values() for m in s.values() for r in m.values()):
            L.append("")
            L.append(
                "steps/s: "
                + ", ".join(
                    f"{impl} {fmt(r['steps_per_s'])}"
                    for s in sizes.values()
                    for m in s.values()
                    for impl, r in m.items()
                    if r["steps_per_s"]
                )
            )
        L.append("")
    skipped = sorted(
        {
            f"{r['family']}/{r['size']}" + ("" if r["impl"] == "*" else f" ({r['impl']})")
            for r in rows
            if str(r["status"]).startswith("skipped: time budget")
        }
    )
    if skipped:
        L.append(f"**Skipped (time budget):** {', '.join(skipped)}")
        L.append("")
    return "\n".join(L) + "\n"


def reuse_table(meta: dict, rows: list[dict]) -> list[str]:
    """Fused CPU rows timed with the reuse cache on and off (``ms_reuse_off``), beside eager."""
    off = [r for r in rows if num(r.get("ms_reuse_off")) is not None and str(r["status"]).startswith("ok")]
    if not off:
        return []
    eager = {(r["family"], r["size"], r["mode"]): r for r in rows if r["impl"] == "eager"}
    limit = meta.get("cpu_reuse_cache_mib")
    L = [
        "## CPU reuse cache on / off (fused rows whose outputs came from it)",
        "",
        f"The fused CPU kernels take outputs of ≥ 4 MiB from a reuse cache (limit {fmt(limit)} MiB in this run, "
        "`GANREG_CPU_REUSE_MB`, docs/memory.md): in the timing loop each call gets the block its previous output "
        "freed, so it touches no freshly mapped page, while the eager baseline's outputs come from PyTorch's "
        "allocator and pay the page faults and zeroing of fresh pages. The main tables time the fused rows with "
        "the cache on (the default); here they are timed again with it off.",
        "",
        "| family | size | mode | impl | ms cache on | ms cache off | off / on | eager ms | ×eager on | ×eager off | cache MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in off:
        on_ms, off_ms = num(r["median_ms"]), num(r["ms_reuse_off"])
        e = eager.get((r["family"], r["size"], r["mode"]))
        e_ms = num(e["median_ms"]) if e else None
        L.append(
            f"| {r['family']} | {r['size']} | {MODE_LABEL.get(r['mode'], r['mode'])} | {r['impl']} | {fmt(on_ms)} | "
            f"{fmt(off_ms)} | {fmt(off_ms / on_ms if on_ms else None)} | {fmt(e_ms)} | "
            f"{fmt(e_ms / on_ms if e_ms and on_ms else None)} | {fmt(e_ms / off_ms if e_ms and off_ms else None)} | "
            f"{fmt(r.get('peak_cache_mib'))} |"
        )
    L.append("")
    return L


def overhead_table(rows: list[dict]) -> list[str]:
    """The overhead family: µs per call, one row per public function × mode, one column per impl
    (the noise functions' ``randn_like`` baselines share two columns)."""
    impls = {r["impl"] for r in rows if r["op"] != LAYERS and r["impl"] != "*"}
    fused = _fused(impls)
    col = lambda i: i if i in ("eager", "compile", *fused) else "compile randn_like" if i.startswith("compile_") else "randn_like"  # noqa: E731
    cols = ["eager", "compile", *fused] + [c for c in ("randn_like", "compile randn_like") if c in {col(i) for i in impls}]
    L = ["## overhead — µs per call at a tiny size (every public function)", ""]
    L.append(
        "Median of ≥ 20 blocks of back-to-back calls (warm caches, CUDA synchronized per block), divided by the "
        "calls per block. fwd builds the graph; fwd+bwd adds `autograd.grad`; double bwd is the penalty on "
        "`create_graph=True` gradients (penalties) or R1 through the op (noise, augmentations), then its backward. "
        "`randn_like`: the code users run for the noise functions (NVlabs' noise-dot and path length, the usual instance "
        "noise), the baseline of their ×eager; their `eager` is the integer-Philox reference."
    )
    L.append("")
    L.append("| op | mode | " + " | ".join(f"{c} µs" for c in cols) + "".join(f" | ×eager {b}" for b in fused) + " | peak KiB |")
    L.append("|---|---|" + "---|" * (len(cols) + len(fused) + 1))
    notes: dict[str, list[str]] = {}
    by: OrderedDict = OrderedDict()
    for r in rows:
        if r["op"] != LAYERS:
            by.setdefault((r["op"], r["mode"]), {})[col(r["impl"])] = r
    for (op, mode), got in by.items():
        cells = []
        for c in cols:
            r = got.get(c) or got.get("*")
            if r is None:
                cells.append("—")
            elif str(r["status"]).startswith("ok"):
                cells.append(fmt(num(r["median_ms"]) * 1e3))
            else:
                cells.append(str(r["status"]).split(":")[0])
                notes.setdefault(str(r["status"]).replace("|", "/")[:200], []).append(
                    f"{op} {MODE_LABEL.get(mode, mode)} {r['impl']}"
                )
        cells += [fmt(got[b]["x_eager"]) if b in got else "—" for b in fused]
        peak = next((num(got[b]["peak_mem_mib"]) for b in fused if b in got and num(got[b]["peak_mem_mib"]) is not None), None)
        cells.append(fmt(peak * 1024) if peak is not None else "—")
        L.append(f"| {op} | {MODE_LABEL.get(mode, mode)} | " + " | ".join(cells) + " |")
    layers = [r for r in rows if r["op"] == LAYERS]
    if layers:
        L += ["", "Layers of one R1 call without grad (what each level of the stack costs):", ""]
        L += ["| layer | µs per call | status |", "|---|---|---|"]
        for r in layers:
            ok = str(r["status"]).startswith("ok")
            L.append(f"| `{r['impl']}` | {fmt(num(r['median_ms']) * 1e3) if ok else '—'} | {r['status'][:160]} |")
    if notes:
        L += ["", "Not timed:", ""] + [f"- {why}: {', '.join(where)}" for why, where in notes.items()]
    L.append("")
    return L


def make_plots(out: Path, meta: dict, rows: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    grouped = _group(rows)
    bw = num(meta.get("bw_ref_gbps"))
    for fam, sizes in grouped.items():
        if fam.startswith("train") or fam == "overhead":
            continue
        fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
        any_data = False
        for col, mode in enumerate(("fwd", "bwd", "fwdbwd")):
            series: dict[str, list[tuple[float, float, float, float | None]]] = {}
            floor: list[tuple[float, float]] = []
            for modes in sizes.values():
                for impl, r in modes.get(mode, {}).items():
                    if not str(r["status"]).startswith("ok") or num(r["median_ms"]) is None:
                        continue
                    n = num(r["numel"]) or 0
                    series.setdefault(impl, []).append(
                        (n, num(r["median_ms"]), num(r["q1_ms"]) or 0, num(r["q3_ms"]) or 0, num(r["gbps"]))
                    )
                    if impl == "eager" and num(r["floor_ms"]):
                        floor.append((n, num(r["floor_ms"])))
            ax_t, ax_b = axes[0][col], axes[1][col]
            for impl in sorted(series, key=_impl_key):
                pts = sorted(series[impl])
                xs = [p[0] for p in pts]
                ax_t.errorbar(
                    xs,
                    [p[1] for p in pts],
                    yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                    marker="o",
                    capsize=3,
                    label=impl,
                )
                if any(p[4] for p in pts):
                    ax_b.plot([p[0] for p in pts if p[4]], [p[4] for p in pts if p[4]], marker="o", label=impl)
                any_data = True
            if floor:
                floor.sort()
                ax_t.plot([p[0] for p in floor], [p[1] for p in floor], "k--", label="floor (bytes / BW)")
            if bw:
                ax_b.axhline(bw, color="k", ls="--", lw=1, label=f"device BW {bw:.0f} GB/s")
            ax_t.set_title(f"{fam} {MODE_LABEL[mode]}: time")
            ax_b.set_title(f"{fam} {MODE_LABEL[mode]}: achieved GB/s (floor bytes / time)")
            for ax in (ax_t, ax_b):
                ax.set_xscale("log")
                ax.set_xlabel("elements")
                ax.grid(True, which="both", alpha=0.3)
            ax_t.set_yscale("log")
            ax_t.set_ylabel("ms (median, IQR bars)")
            ax_b.set_ylabel("GB/s")
            ax_b.set_yscale("log")
            if series:
                ax_t.legend(fontsize=8)
                ax_b.legend(fontsize=8)
        if any_data:
            fig.suptitle(f"{fam} — {meta.get('device', '')} — torch {meta.get('torch', '')}")
            fig.tight_layout()
            p = out / f"{fam}.png"
            fig.savefig(p, dpi=80)
            written.append(p)
        plt.close(fig)
    # training steps: bar chart of ms/step
    train = [r for r in rows if r["family"].startswith("train") and str(r["status"]).startswith("ok")]
    if train:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [f"{r['family']}\n{r['size']}\n{r['impl']}" for r in train]
        ax.bar(range(len(train)), [float(r["median_ms"]) for r in train], yerr=[float(r["iqr_ms"]) / 2 for r in train], capsize=3)
        ax.set_xticks(range(len(train)), labels, fontsize=7)
        ax.set_ylabel("ms / step (median, IQR)")
        ax.set_title("training steps")
        fig.tight_layout()
        p = out / "train.png"
        fig.savefig(p, dpi=80)
        written.append(p)
        plt.close(fig)
    return written


def write(out: Path, plots: bool = True) -> None:
    meta, rows = load(out)
    (out / "results.md").write_text(markdown(meta, rows))
    if plots and rows:
        make_plots(out, meta, rows)
