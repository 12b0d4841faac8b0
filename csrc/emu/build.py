"""Build the test-only module ``ganreg_emu``: the CUDA kernels of ``csrc/cuda/*.cu`` compiled a second
time, by g++, against the CUDA execution model of ``csrc/emu/cuda_emu.h`` (one wrapper ``.cpp`` per
``.cu``), with ``csrc/ops.cpp`` and ``csrc/autograd/*.cpp`` compiled again under the op namespace
``ganreg_emu`` (schemas, C++ autograd, double backward) and the kernels registered for CPU tensors.
The installed package never needs it; ``make test`` builds it and tests/conftest.py loads it as the
test backend ``cuda_emu``.

    python csrc/emu/build.py          # build (incremental: ninja), print the library's path
    python csrc/emu/build.py --check  # exit 1 when the library is missing or older than a source

Output: build/emu/ganreg_emu.so (ignored by git). ``-O1``: the kernels' bodies run fast enough and the
build stays short (the CPU kernels of csrc/cpu are NOT compiled in: they register the ganreg_C CPU keys).
"""

from __future__ import annotations

import glob
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
BUILD_DIR = ROOT / "build" / "emu"
NAME = "ganreg_emu"
NAMESPACE = "ganreg_emu"
FLAGS = [
    "-O1",
    "-g0",
    "-std=c++20",
    "-fno-strict-aliasing",
    "-fvisibility=hidden",  # its copies of ganreg::* never bind to ganreg_ext._C's
    "-fvisibility-inlines-hidden",
    "-Wno-unknown-pragmas",
    "-DGANREG_CUDA_EMU",
    f"-DGANREG_NS={NAMESPACE}",
]


def sources() -> list[str]:
    """ops.cpp + autograd/*.cpp (schemas, autograd), cpu/alloc.cpp (the output allocator; registers no
    kernel), the scheduler and one wrapper per CUDA source."""
    emu = sorted(glob.glob(str(CSRC / "emu" / "*_emu.cpp")))
    autograd = sorted(glob.glob(str(CSRC / "autograd" / "*.cpp")))
    return [
        str(CSRC / "ops.cpp"),
        str(CSRC / "cpu" / "alloc.cpp"),
        str(CSRC / "emu" / "runtime.cpp"),
    ] + autograd + emu


def library_path() -> Path:
    return BUILD_DIR / f"{NAME}.so"


def _inputs() -> list[Path]:
    pats = ("cuda/*", "common/*", "emu/*", "autograd/*", "ops.cpp", "cpu/alloc.cpp")
    return [Path(p) for pat in pats for p in glob.glob(str(CSRC / pat))]


def stale() -> str | None:
    """Why the library must be (re)built, or None when it is current."""
    lib = library_path()
    if not lib.exists():
        return f"{lib} is not built"
    t = lib.stat().st_mtime
    newer = [str(p.relative_to(ROOT)) for p in _inputs() if p.stat().st_mtime > t]
    return f"{', '.join(newer[:3])} changed since {lib.name} was built" if newer else None


def build(verbose: bool = False) -> Path:
    """Compile (incrementally) and return the library's path. The build is not loaded here."""
    os.environ.setdefault("MAX_JOBS", "2")
    from torch.utils import cpp_extension

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # the JIT loader builds and then loads; load=False-like use: build only, through its ninja writer
    cpp_extension.load(
        NAME,
        sources(),
        extra_cflags=FLAGS,
        extra_include_paths=[str(CSRC)],
        build_directory=str(BUILD_DIR),
        is_python_module=False,
        verbose=verbose,
    )
    return library_path()


def load() -> Path:
    """Load the built library into this process (registers torch.ops.ganreg_emu); raises when stale."""
    import torch

    why = stale()
    if why:
        raise RuntimeError(f"{NAME}: {why}; run `python csrc/emu/build.py` (make test does)")
    torch.ops.load_library(str(library_path()))
    return library_path()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        why = stale()
        print(why or f"{library_path()} is current")
        return 1 if why else 0
    t0 = time.perf_counter()
    path = build(verbose="-v" in argv)
    print(f"{path} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
