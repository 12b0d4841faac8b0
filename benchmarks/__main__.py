"""``python -m benchmarks <subcommand> [args]``: the one front door of the benchmark harness.

Each subcommand hands the rest of the command line to one entry point's ``main(argv)``;
``python -m benchmarks.<module> [args]`` runs the same code (the command lines recorded in committed
results files use that form). What the entry points share lives in one place each: ``timing.py``
(timing loops, peak memory, the environment header; the primitives the demo needs too come from
``ganreg_ext/_measure.py``), ``checks.py`` (the check against the reference before timing) and
``report.py`` (CSV writers, number formats, the default results folder, the sweep's report).
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (the module whose main(argv) runs it, one line of help); benchmarks/test_bench.py
# checks that every module of benchmarks/ with a main() is here
COMMANDS = {
    "ops": ("benchmarks.run", "the sweep: op families, StyleGAN blocks, ADA, overhead, training steps → CSV, results.md, plots"),
    "quick": ("benchmarks.cpu_quick", "CPU: a few large cases, the cpu backend vs eager and torch.compile, interleaved, printed"),
    "check": (
        "benchmarks.op_check",
        "every public function × fused backend vs the reference, bitwise repeat, SHA-256 (no timing)",
    ),
    "stylegan2": ("benchmarks.stylegan2", "end to end: StyleGAN2 G/D regularized steps, eager reference blocks vs fused"),
    "clients": ("benchmarks.clients", "real StyleGAN2-ADA / StyleGAN3 / R3GAN checkouts: their own ops vs the drop-in"),
    "demo-timing": ("ganreg_ext.demo.timing", "the demo's timing table (R1, path length, augmentation steps) without training"),
    "suite": ("benchmarks.test_bench", "the pytest-benchmark suite at small sizes (pytest --benchmark-only; pytest's flags)"),
    "gpu": ("benchmarks.gpu_check", "GPU machine: build, GPU tests, determinism, memcheck, overhead + sweep → one verdict"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m benchmarks <subcommand> [args]   (python -m benchmarks <subcommand> --help)", ""]
    lines += [f"  {name:{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    lines += ["", "benchmarks/README.md: what each measures and how; results in benchmarks/results/<device-slug>/."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"python -m benchmarks: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    rc = importlib.import_module(COMMANDS[name][0]).main(rest)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
