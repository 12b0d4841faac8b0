"""Backend selection (SPEC §1): names, defaults, env, errors, the auto fallback warning, info."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

import ganreg_ext as gx
from ganreg_ext import _dispatch
from ganreg_ext.reference import gradnorm as refgn

GN_OPS = ("sqnorm", "scale", "dot")


@pytest.fixture(autouse=True)
def _restore_backend():
    """set_backend writes a context variable for this thread: put it back after each test."""
    before = _dispatch._current.get()
    token = _dispatch._current.set(before)
    yield
    _dispatch._current.reset(token)


def _fake_gradnorm_kernels(calls: list, backend: str):
    """Raw kernels that record their use and compute with the reference."""

    def sqnorm(grads, inv, per_sample):
        calls.append("sqnorm")
        return refgn.grad_sqnorm(grads, per_sample, inv)

    def scale(grads, coef, factor, per_sample):
        calls.append("scale")
        return [
            (factor * (coef.view(-1, *[1] * (g.dim() - 1)) if per_sample else coef) * g.to(coef.dtype)).to(g.dtype) for g in grads
        ]

    def dot(a, b, per_sample):
        calls.append("dot")
        acc = _dispatch.acc_dtype(a[0].dtype)
        return sum(
            (x.to(acc) * y.to(acc)).reshape(x.shape[0], -1).sum(1) if per_sample else (x.to(acc) * y.to(acc)).sum()
            for x, y in zip(a, b)
        )

    return {"sqnorm": {backend: sqnorm}, "scale": {backend: scale}, "dot": {backend: dot}}


def test_reference_always_available():
    names = gx.available_backends()
    assert names[0] == "reference"
    assert set(names) <= {"reference", "cpu", "triton", "cuda"}
    assert names == [b for b in ("reference", "cpu", "triton", "cuda") if b in names]  # SPEC order


def test_default_is_auto(monkeypatch):
    monkeypatch.delenv("GANREG_BACKEND", raising=False)
    assert gx.get_backend() == "auto"


def test_use_backend_context_and_nesting(monkeypatch):
    monkeypatch.delenv("GANREG_BACKEND", raising=False)
    with gx.use_backend("reference"):
        assert gx.get_backend() == "reference"
        with gx.use_backend("auto"):
            assert gx.get_backend() == "auto"
        assert gx.get_backend() == "reference"
    assert gx.get_backend() == "auto"


def test_use_backend_restores_on_error(monkeypatch):
    monkeypatch.delenv("GANREG_BACKEND", raising=False)
    with pytest.raises(KeyError):
        with gx.use_backend("reference"):
            raise KeyError("boom")
    assert gx.get_backend() == "auto"


def test_set_backend(monkeypatch):
    monkeypatch.delenv("GANREG_BACKEND", raising=False)
    gx.set_backend("reference")
    assert gx.get_backend() == "reference"
    gx.set_backend("auto")
    assert gx.get_backend() == "auto"


def test_env_variable(monkeypatch):
    monkeypatch.setenv("GANREG_BACKEND", "reference")
    assert gx.get_backend() == "reference"
    with gx.use_backend("auto"):  # the context manager wins over the env
        assert gx.get_backend() == "auto"
    monkeypatch.setenv("GANREG_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="GANREG_BACKEND"):
        gx.get_backend()


@pytest.mark.parametrize("bad", ["Reference", "gpu", "", None, 3])
def test_unknown_name_is_value_error(bad):
    g = torch.randn(2, 3)
    with pytest.raises(ValueError):
        gx.set_backend(bad)
    with pytest.raises(ValueError):
        with gx.use_backend(bad):
            pass
    if bad is not None:  # None means "the default"
        with pytest.raises(ValueError, match="backend"):
            gx.r1_penalty(g, backend=bad)


def test_explicit_reference_never_warns(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx.r1_penalty(torch.randn(2, 3), backend="reference")
        with gx.use_backend("reference"):
            gx.r1_penalty(torch.randn(2, 3))


def test_unavailable_backend_by_name_raises(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (False, "simulated: ganreg_ext._C is not built"))
    g = torch.randn(2, 3)
    with pytest.raises(gx.BackendUnavailable, match="simulated: ganreg_ext._C is not built") as e:
        gx.r1_penalty(g, backend="cpu")
    assert isinstance(e.value, RuntimeError) and "cpu" in str(e.value)
    with gx.use_backend("cpu"):
        with pytest.raises(gx.BackendUnavailable):
            gx.grad_sqnorm(g)


def test_really_unavailable_backends_say_why():
    info = gx.backend_info()["backends"]
    g = torch.randn(2, 3)
    for name, b in info.items():
        if not b["available"]:
            assert b["reason"] and b["reason"] != "available"
            with pytest.raises(gx.BackendUnavailable, match="unavailable") as e:
                gx.grad_sqnorm(g, backend=name)
            assert b["reason"] in str(e.value)


def test_backend_without_kernel_raises(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    monkeypatch.setattr(_dispatch, "_KERNELS", {})
    with pytest.raises(gx.BackendUnavailable, match="no kernel"):
        gx.r1_penalty(torch.randn(2, 3), backend="cpu")


def test_wrong_device_raises(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cuda", (True, "available"))
    calls = []
    monkeypatch.setattr(_dispatch, "_KERNELS", _fake_gradnorm_kernels(calls, "cuda"))
    with pytest.raises(gx.BackendUnavailable, match="CUDA tensors only"):
        gx.r1_penalty(torch.randn(2, 3), backend="cuda")
    assert calls == []


def test_auto_fallback_warns_once(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (False, "simulated: the cpu kernels are not compiled"))
    monkeypatch.setattr(_dispatch, "_warned", set())
    g = torch.randn(3, 4)
    with pytest.warns(gx.BackendWarning, match="simulated: the cpu kernels are not compiled"):
        out = gx.r1_penalty(g, backend="auto")
    torch.testing.assert_close(out, gx.r1_penalty(g, backend="reference"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per op and device
        gx.r1_penalty(g, backend="auto")
        gx.r1_penalty(g)  # default is auto too


def test_auto_fallback_when_kernel_missing_warns(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    monkeypatch.setattr(_dispatch, "_KERNELS", {})
    monkeypatch.setattr(_dispatch, "_warned", set())
    with pytest.warns(gx.BackendWarning, match="no kernel"):
        gx.grad_sqnorm(torch.randn(2, 3), backend="auto")


def test_auto_picks_cpu_kernels_when_present(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    calls = []
    monkeypatch.setattr(_dispatch, "_KERNELS", _fake_gradnorm_kernels(calls, "cpu"))
    monkeypatch.setattr(_dispatch, "_warned", set())
    g = torch.randn(3, 2, 4, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gx.r1_penalty(g)
    assert "sqnorm" in calls
    out.backward()
    assert "scale" in calls
    torch.testing.assert_close(out, gx.r1_penalty(g, backend="reference"))
    torch.testing.assert_close(g.grad, 10 * g.detach() / 3)


def test_resolve_per_device(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    monkeypatch.setitem(_dispatch._status, "triton", (True, "available"))
    monkeypatch.setitem(_dispatch._status, "cuda", (False, "no nvcc"))
    kern = {op: {"cpu": None, "triton": None} for op in GN_OPS}
    monkeypatch.setattr(_dispatch, "_KERNELS", kern)
    monkeypatch.setattr(_dispatch, "_warned", set())
    assert _dispatch.resolve(GN_OPS, "auto", torch.device("cpu")) == "cpu"
    assert _dispatch.resolve(GN_OPS, "auto", torch.device("cuda", 0)) == "triton"  # CUDA tensor: cuda, else triton
    assert _dispatch.resolve(GN_OPS, "reference", torch.device("cuda", 0)) == "reference"


def test_backend_info_keys():
    info = gx.backend_info()
    for key in ("torch", "torch_cuda", "cuda_available", "device", "cpu_capability", "default_backend", "backends", "triton"):
        assert key in info, key
    assert info["torch"] == torch.__version__
    assert set(info["backends"]) == {"reference", "cpu", "triton", "cuda"}
    for name, b in info["backends"].items():
        assert set(b) >= {"available", "reason", "ops"}
        assert b["available"] == (name in gx.available_backends())
        if b["available"] and name != "reference":
            assert b["ops"] == sorted(op for op, impls in _dispatch._KERNELS.items() if name in impls)
    assert info["backends"]["reference"]["available"]


def test_cli_info():
    env = dict(os.environ)
    env.setdefault("TRITON_INTERPRET", "1")
    r = subprocess.run([sys.executable, "-m", "ganreg_ext", "info"], capture_output=True, text=True, timeout=300, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in ("reference", "cpu", "triton", "cuda"):
        assert any(line.startswith(name + " ") for line in lines), (name, r.stdout)
    assert torch.__version__ in r.stdout
    r2 = subprocess.run([sys.executable, "-m", "ganreg_ext"], capture_output=True, text=True, timeout=300, env=env)
    assert r2.returncode != 0 and "usage" in r2.stdout
