"""Build ganreg_ext._C and ganreg_ext._triton_autograd from csrc/ with torch.utils.cpp_extension + ninja.

- _C: CUDAExtension when nvcc is found (CUDA_HOME, else the newest /usr/local/cuda*); FORCE_CUDA=1 forces
  it. CppExtension otherwise; GANREG_SKIP_BUILD=1 installs pure Python (the reference backend only).
- _triton_autograd: csrc/ops.cpp + csrc/autograd/*.cpp compiled again under the op namespace
  ganreg_triton (schemas and C++ autograd, no kernel, no .cu; seconds to build): the triton backend's
  ops, whose CPU/CUDA kernels ganreg_ext/ops/triton.py registers (the Triton launchers).
- TORCH_CUDA_ARCH_LIST defaults to Ampere + Hopper ("8.0;9.0+PTX"); MAX_JOBS is honoured by ninja.
- GANREG_NO_CUDA=1 builds the CPU kernels only (minutes instead of ~10 on a 2-core machine without a GPU).
- CPU sources are built with AVX2/FMA when the compiler supports it (GANREG_NO_AVX2=1 turns it off) and
  with OpenMP: ATen's header-only ``at::parallel_for`` is serial in code compiled without ``-fopenmp``
  (the extension then links the libgomp torch already loaded, so ``torch.set_num_threads`` applies).

Metadata (name, version = ganreg_ext.__version__, extras) is in pyproject.toml; the one dependency, torch,
is set here: a build with native kernels requires the torch ``major.minor`` it was compiled against (the
C++ ABI of torch changes between minor releases), a pure-Python build (GANREG_SKIP_BUILD=1) any torch the
project was tested with.
"""

import glob
import os
import platform
import shutil

from setuptools import find_packages, setup


def find_cuda_home():
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return home
    nvcc = shutil.which("nvcc")
    if nvcc:
        return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    candidates = sorted(
        glob.glob("/usr/local/cuda*/bin/nvcc"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("cuda-")[-1].split("/")[0].split(".")],
    )
    return os.path.dirname(os.path.dirname(candidates[-1])) if candidates else None


def extensions():
    if os.environ.get("GANREG_SKIP_BUILD") == "1":
        return [], {}
    cuda_home = find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # read by torch.utils.cpp_extension at import
    from torch.utils import cpp_extension as ce

    ce.CUDA_HOME = cuda_home or ce.CUDA_HOME
    with_cuda = os.environ.get("FORCE_CUDA") == "1" or (cuda_home is not None and os.environ.get("GANREG_NO_CUDA") != "1")
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    # -g0: Python's CFLAGS carry -g, which doubles the compile time of the ATen vector templates and
    # makes 6 MB objects; -Wno-unknown-pragmas: ATen's vec headers use `#pragma unroll`.
    cxx = ["-O3", "-std=c++20", "-g0", "-Wno-unknown-pragmas"]
    if platform.machine() in ("x86_64", "AMD64") and os.environ.get("GANREG_NO_AVX2") != "1":
        cxx += ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2"]
    link = []
    if platform.system() == "Linux":
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/autograd/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    include_dirs = [os.path.abspath("csrc")]
    macros = []
    if with_cuda:
        import torch

        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        include_dirs += glob.glob(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "cu*", "include"))
        macros.append(("GANREG_WITH_CUDA", None))
        ext = ce.CUDAExtension(
            "ganreg_ext._C",
            sources,
            include_dirs=include_dirs,
            define_macros=macros,
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++20", "-lineinfo"]},
            extra_link_args=link,
        )
    else:
        ext = ce.CppExtension(
            "ganreg_ext._C", sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx}, extra_link_args=link
        )
    return [ext, triton_autograd(ce)], {"build_ext": build_ext_class(ce)}


def build_ext_class(ce):
    """BuildExtension (ninja) that compiles _triton_autograd in a folder of its own: it shares source
    files with _C, whose objects (and ninja file) would otherwise be overwritten with other flags."""

    class BuildExt(ce.BuildExtension.with_options(use_ninja=True)):
        def build_extension(self, ext):
            temp = self.build_temp
            if ext.name != "ganreg_ext._C":
                self.build_temp = os.path.join(temp, ext.name.rsplit(".", 1)[-1])
            try:
                super().build_extension(ext)
            finally:
                self.build_temp = temp

    return BuildExt


def triton_autograd(ce):
    """ganreg_ext._triton_autograd: the schemas (csrc/ops.cpp) and C++ autograd (csrc/autograd) of the
    ops under the namespace ganreg_triton, no kernel (like csrc/emu/build.py for ganreg_emu).
    -fvisibility=hidden: its copies of ganreg::* never bind to _C's."""
    flags = [
        "-O2",
        "-std=c++20",
        "-g0",
        "-fvisibility=hidden",
        "-fvisibility-inlines-hidden",
        "-DGANREG_NS=ganreg_triton",
        "-DGANREG_AUTOGRAD_ONLY",
        "-DGANREG_PY_MODULE=_triton_autograd",
    ]
    sources = ["csrc/ops.cpp"] + sorted(glob.glob("csrc/autograd/*.cpp"))
    return ce.CppExtension(
        "ganreg_ext._triton_autograd", sources, include_dirs=[os.path.abspath("csrc")], extra_compile_args={"cxx": flags}
    )


def torch_requirement(native: bool) -> str:
    """``torch==X.Y.*`` of the torch this build compiles against (native), else the oldest torch tested."""
    if not native:
        return "torch>=2.11"
    import torch

    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch=={major}.{minor}.*"


ext_modules, cmdclass = extensions()

setup(
    # the repo-root folder triton_kernels/ is the subpackage ganreg_ext.triton_kernels (never a top-level
    # `triton_kernels`: Triton ships a package of that name); editable installs map it with setuptools' finder
    packages=find_packages(include=["ganreg_ext", "ganreg_ext.*"]) + ["ganreg_ext.triton_kernels"],
    package_dir={"ganreg_ext.triton_kernels": "triton_kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[torch_requirement(native=bool(ext_modules))],
)
