"""The GPU check's one verdict table: public function × fused backend → correct / wrong / not run,
with the evidence (op_check vs the reference, bitwise repeatability in and across processes, the GPU
tests attributed to the function, compute-sanitizer) and the numbers (fused ms at the sweep's
largest size, ×eager, ×compile, % of the HBM peak; µs per call at the overhead size).

Rules: *wrong* when any evidence fails (a mismatch or error in op_check, or in the check the sweep
and the overhead family make before timing; a second call or the second process not bitwise equal;
a failed GPU test attributed to the function; a memcheck error inside its calls); *correct* when
something ran and nothing failed; *not run* otherwise (with the reason). GPU tests are attributed to
functions by keywords of their node ids (:func:`ops_of_test`); tests matching none make the
"(other tests)" rows.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from .cases import overhead_cases
from .report import fmt, num, write_csv

OTHER = "(other tests)"
_GN = ("r1_penalty", "r2_penalty", "gradient_penalty", "grad_sqnorm", "roth_penalty")
_PL = ("path_length_noise_dot", "path_length_penalty", "PathLengthRegularizer")
_CR = ("consistency_loss", "bcr_loss", "zcr_generator_loss", "zcr_discriminator_loss")
# node-id keyword -> functions: every matching specific keyword counts; else the first generic one
SPECIFIC = {
    "roth": ("roth_penalty",), "wgan": ("gradient_penalty",), "gradient_penalty": ("gradient_penalty",),
    "r1": ("r1_penalty", "r2_penalty"), "sqnorm": _GN + ("path_length_penalty",), "instance_noise": ("instance_noise",),
    "test_noise.py": ("instance_noise",), "noise_dot": ("path_length_noise_dot", "PathLengthRegularizer"),
    "regularizer": ("PathLengthRegularizer",), "bcr": ("bcr_loss",), "zcr": ("zcr_generator_loss", "zcr_discriminator_loss"),
    "diff_aug": ("diff_augment",), "cr_aug": ("cr_augment",),
}  # fmt: skip
GENERIC = {
    "pathlength": _PL, "path_length": _PL, "consistency": _CR, "sq_diff": _CR, "augment": ("diff_augment", "cr_augment"),
    "gradnorm": _GN, "penalt": _GN, "scale": _GN, "dot": _GN, "noise": _PL + ("instance_noise",), "philox": _PL,
}  # fmt: skip
FIELDS = [
    "op", "backend", "verdict", "why", "check", "bitwise", "tests", "memcheck", "size", "fused_ms", "x_eager",
    "x_compile", "pct_hbm", "baseline", "overhead_us", "overhead_eager_us", "overhead_compile_us",
]  # fmt: skip


def ops_of_test(nodeid: str) -> tuple[str, ...]:
    """The public functions a GPU test checks, from keywords of its node id (OTHER when none)."""
    n = nodeid.lower()
    hit = sorted({op for key, ops in SPECIFIC.items() if key in n for op in ops})
    return tuple(hit) or next((ops for key, ops in GENERIC.items() if key in n), (OTHER,))


def backend_of_test(nodeid: str, backends) -> str | None:
    """The backend a test runs (the first backend named in its id, Triton's module first)."""
    n = nodeid.lower()
    return next((b for b in sorted(backends, key=lambda b: b != "triton") if b in n), None)


def _output(log: str) -> str:
    """A step's log without the ``$ command`` line the GPU check writes first."""
    return "\n".join(ln for ln in log.splitlines() if not ln.startswith("$ "))


def parse_pytest(text: str) -> dict[str, str]:
    """node id -> outcome from ``pytest -v`` output (with or without xdist); survives a killed run."""
    text, out = _output(text), {}
    for m in re.finditer(r"(tests/\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b|"
                         r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(tests/\S+::\S+)", text):  # fmt: skip
        node, outcome = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        if out.get(node) not in ("FAILED", "ERROR"):
            out[node] = outcome
    return out


def parse_sanitizer(text: str, result: str) -> dict:
    """compute-sanitizer memcheck log of op_check and its step result ("rc=N", "timeout", "skipped: …",
    or "absent") → state (clean / errors (N) / refused / timed out / not run) and the (op, backend)
    calls during which errors were reported."""
    text = _output(text)
    if not result.startswith(("rc=", "timeout")):
        return {"state": "not run", "detail": (text or result).strip()[:200], "bad": []}
    bad, cur = set(), None
    for line in text.splitlines():
        if line.startswith(("BEGIN ", "END ")):
            parts = line.split()
            cur = (parts[1], parts[2]) if line.startswith("BEGIN") else None
        elif cur and re.search(r"=+ (Invalid|Program hit|Error:|.*out of bounds|.*misaligned)", line):
            bad.add(cur)
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    if bad or (m and int(m.group(1))):
        return {"state": f"errors ({m.group(1) if m else '?'})", "detail": m.group(0) if m else "", "bad": sorted(bad)}
    if m:
        return {"state": "clean", "detail": m.group(0), "bad": []}
    if result == "timeout":
        return {"state": "timed out", "detail": "", "bad": []}
    # the tool never ran the workload to its end, e.g. refused by the container runtime
    first = next((ln for ln in text.splitlines() if "rror" in ln), text.strip()[:200])
    return {"state": "refused", "detail": first[:200], "bad": []}


def _bench(rows: list[dict], op: str, impl: str) -> dict | None:
    """The sweep's fwd+bwd row of ``op``/``impl`` at its largest size."""
    cand = [r for r in rows if r["op"] == op and r["impl"] == impl and r["mode"] == "fwdbwd" and r["family"] != "overhead"]
    return max(cand, key=lambda r: num(r["numel"]) or 0, default=None)


def _overhead(rows: list[dict], op: str, impl: str) -> dict | None:
    """The overhead family's ok fwd+bwd row of ``op``/``impl``."""
    return next((r for r in rows if r["family"] == "overhead" and r["op"] == op and r["impl"] == impl and r["mode"] == "fwdbwd"
                 and str(r["status"]).startswith("ok") and num(r["median_ms"])), None)  # fmt: skip


def build(backends, checks: list[list[dict]], tests: dict[str, str], sanitizer: dict, bench: list[dict]) -> list[dict]:
    """Verdict rows (op × backend, then the "(other tests)" rows); ``checks``: op_check records of each process."""
    rows = []
    ops = [c.op for c in overhead_cases()] + [OTHER]
    for op in ops:
        for b in backends:
            wrong, ran, notes = [], False, []
            recs = [[r for r in run if r["op"] == op and r["backend"] == b] for run in checks]
            flat = [r for run in recs for r in run]
            if op != OTHER:
                st = {r["status"] for r in flat}
                bad = [r for r in flat if r["status"] in ("wrong", "error")]
                if bad:
                    wrong.append(f"check {bad[0]['status']} ({bad[0]['layout']}): {bad[0].get('msg', '')[:120]}")
                ran |= "ok" in st
                if "unavailable" in st and not ran:
                    notes.append(next(r["msg"] for r in flat if r["status"] == "unavailable")[:160])
                if any(r.get("repeat_equal") is False for r in flat):
                    wrong.append("a second call is not bitwise equal")
                hashes = [{r["layout"]: r.get("hash") for r in run if r.get("hash")} for run in recs]
                across = [h for h in hashes if h]
                if len(across) >= 2 and any(h != across[0] for h in across[1:]):
                    wrong.append("the second process's results differ bitwise")
                check = "—" if not flat else "ok" if st == {"ok"} else "/".join(sorted(st))
                bitwise = f"yes ({len(across)} processes)" if len(across) >= 2 else "yes (in-process)"
                if any("bitwise" in w for w in wrong):
                    bitwise = "no"
                elif not ran:
                    bitwise = "—"
            else:
                check = bitwise = "—"
            mine = [o for n, o in tests.items() if backend_of_test(n, backends) == b and op in ops_of_test(n)]
            failed = sum(o in ("FAILED", "ERROR") for o in mine)
            passed = sum(o in ("PASSED", "XFAIL") for o in mine)
            if failed:
                wrong.append(f"{failed} GPU tests failed")
            ran |= passed > 0
            tests_cell = f"{passed}/{passed + failed} passed" if passed + failed else "—"
            mem = sanitizer.get("state", "absent")
            if op != OTHER and [op, b] in [list(x) for x in sanitizer.get("bad", [])]:
                wrong.append("memcheck errors in its calls")
            fused, oh = _bench(bench, op, b), {}
            timed = [r for r in bench if r["op"] == op and r["impl"] == b]  # each was checked against the reference
            bad = next((r for r in timed if str(r["status"]).startswith("WRONG")), None)
            if bad:
                wrong.append(f"benchmark check ({bad['family']} {bad['size']} {bad['mode']}): {bad['status'][:120]}")
            ran |= any(str(r["status"]).startswith("ok") for r in timed)
            user = (_overhead(bench, op, b) or {}).get("baseline") or "eager"  # noise functions: their randn_like code
            comp = "compile" if user == "eager" else f"compile_{user}"
            for impl, key in ((b, "overhead_us"), (user, "overhead_eager_us"), (comp, "overhead_compile_us")):
                r = _overhead(bench, op, impl)
                oh[key] = num(r["median_ms"]) * 1e3 if r else None
            verdict = "wrong" if wrong else "correct" if ran else "not run"
            why = "; ".join(wrong) if wrong else ("; ".join(notes) or "no check, test or benchmark ran it") if not ran else ""
            ok_fused = fused if fused and str(fused["status"]).startswith("ok") else None
            rows.append({
                "op": op, "backend": b, "verdict": verdict, "why": why, "check": check, "bitwise": bitwise,
                "tests": tests_cell, "memcheck": "—" if op == OTHER else mem, "size": ok_fused["size"] if ok_fused else "",
                "fused_ms": num(ok_fused["median_ms"]) if ok_fused else None,
                "x_eager": num(ok_fused["x_eager"]) if ok_fused else None,
                "x_compile": num(ok_fused["x_compile"]) if ok_fused else None,
                "pct_hbm": num(ok_fused["pct_bw"]) if ok_fused else None,
                "baseline": (ok_fused.get("baseline") or "eager") if ok_fused else "", **oh,
            })  # fmt: skip
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    L = [f"# GPU verdict — {meta.get('gpu', '?')}", ""]
    L += [f"- {k}: {v}" for k, v in meta.items() if k not in ("gpu", "steps")]
    if meta.get("steps"):
        L += ["", "| step | result | s | limit s |", "|---|---|---|---|"]
        L += [f"| {s['step']} | {s['result']} | {s['s']:.0f} | {s['limit']:.0f} |" for s in meta["steps"]]
    L += [
        "",
        "**correct** = something ran and nothing failed; **wrong** = some evidence failed (see *why*); **not run** = no "
        "evidence. *check*: benchmarks/op_check vs the eager reference (output, gradients, double backward), contiguous + "
        "channels_last; *bitwise*: a second call and a second process give identical bytes (SHA-256); *tests*: GPU tests "
        "attributed to the function by keywords of their ids. Numbers: fwd+bwd at the sweep's largest size; ×eager / "
        "×compile against what users run (`baseline`: the reference, or the `randn_like` code for the noise functions) and "
        "its `torch.compile`; % of the nominal HBM peak; overhead µs = fwd+bwd per call at 4×3×8×8.",
        "",
        "| op | backend | verdict | check | bitwise | tests | memcheck | size | fused ms | ×eager | ×compile | % HBM peak "
        "| overhead µs fused / eager / compile | why |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = "" if r["baseline"] in ("", "eager") else f" (vs {r['baseline']})"
        oh = " / ".join(fmt(r[k]) for k in ("overhead_us", "overhead_eager_us", "overhead_compile_us"))
        L.append(
            f"| {r['op']} | {r['backend']} | **{r['verdict']}** | {r['check']} | {r['bitwise']} | {r['tests']} | "
            f"{r['memcheck']} | {r['size'] or '—'} | {fmt(r['fused_ms'])} | {fmt(r['x_eager'])}{base} | {fmt(r['x_compile'])} | "
            f"{fmt(r['pct_hbm'], 2, '%')} | {oh} | {r['why'].replace('|', '/')} |"
        )
    return "\n".join(L) + "\n"


def write(rows: list[dict], meta: dict, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "verdict.md").write_text(markdown(rows, meta))
    write_csv(dest / "verdict.csv", FIELDS, rows)
    (dest / "verdict.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return dest / "verdict.md"


def collect(dest: Path, steps: list[dict], meta: dict, backends=("cuda", "triton"), test_steps=("tests_cuda", "tests_triton")):
    """Read what the GPU check left in ``dest`` (check_1/2.json, logs/, overhead/ and sweep/ results),
    write verdict.md / .csv / .json there and return the rows."""
    logs = dest / "logs"
    checks = [json.loads(f.read_text())["records"] for f in (dest / "check_1.json", dest / "check_2.json") if f.exists()]
    tests = {}
    for name in test_steps:
        if (logs / f"{name}.log").exists():
            tests.update(parse_pytest((logs / f"{name}.log").read_text()))
    result = next((s["result"] for s in steps if s["step"] == "memcheck"), "absent")
    log = logs / "memcheck.log"
    san = parse_sanitizer(
        log.read_text() if log.exists() else "compute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda*/bin)", result
    )
    bench = []
    for name in ("overhead", "sweep"):
        if (dest / name / "results.csv").exists():
            with (dest / name / "results.csv").open() as f:
                bench += list(csv.DictReader(f))
    rows = build(list(backends), checks, tests, san, bench)
    outcomes = list(tests.values())
    counts = [f"{outcomes.count(o)} {o.lower()}" for o in ("PASSED", "FAILED", "ERROR", "SKIPPED") if o in outcomes]
    meta = {**meta, "GPU tests": ", ".join(counts) or "none ran", "memcheck": f"{san['state']} {san['detail']}".strip()}
    write(rows, {**meta, "steps": steps}, dest)
    return rows
