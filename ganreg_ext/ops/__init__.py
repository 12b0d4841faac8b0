"""The registered ops, one per kernel, per family (``gradnorm``, ``noise``, ``consistency``,
``augment``, ``bias_act``, ``upfirdn2d``, ``ada``): each family module holds the fake kernels
(``FAKES``, keyed by op) of its ops. The schemas (``csrc/ops.cpp``) and autograd
(``csrc/autograd/<family>.cpp``) are C++, written once and compiled per op namespace:
:mod:`.native` loads ``ganreg_ext._C`` (the ``ganreg_C`` ops: CPU/CUDA kernels and C++ autograd)
and registers their fakes; :mod:`.triton` loads ``ganreg_ext._triton_autograd`` (the ``ganreg_triton``
ops: the same schemas and C++ autograd, no kernel) and registers the Triton launchers of
:mod:`ganreg_ext.triton_kernels` as their CPU/CUDA kernels, and their fakes."""

from . import ada, augment, bias_act, consistency, gradnorm, noise, upfirdn2d

FAMILIES = {
    "gradnorm": gradnorm,
    "noise": noise,
    "consistency": consistency,
    "augment": augment,
    "bias_act": bias_act,
    "upfirdn2d": upfirdn2d,
    "ada": ada,
}
