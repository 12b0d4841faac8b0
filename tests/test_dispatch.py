"""Backend selection (docs/semantics.md#backends-and-dispatch): names, defaults, env, errors, the auto fallback warning, info."""

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
def _restore_backend(monkeypatch):
    """set_backend writes a context variable for this thread: put it back after each test; start
    every test with an empty resolution cache (tests below simulate other machines)."""
    before = _dispatch._current.get()
    token = _dispatch._current.set(before)
    monkeypatch.setattr(_dispatch, "_resolved", {})
    yield
    _dispatch._current.reset(token)


def _fake_ops(monkeypatch, calls: list, backend: str, ops=GN_OPS):
    """Pretend ``backend`` has ``ops``, each a recorder that computes with the reference."""
    monkeypatch.setattr(_dispatch, "has_op", lambda op, b: b == backend and op in ops)

    def registered(op, b):
        assert b == backend and op == "sqnorm", (op, b)

        def sqnorm(grads, inv, weight, reduction):
            calls.append("sqnorm")
            return refgn.sqnorm(grads, inv, weight, reduction)

        return sqnorm

    monkeypatch.setattr(_dispatch, "registered", registered)


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
    _fake_ops(monkeypatch, [], "cpu", ops=())
    with pytest.raises(gx.BackendUnavailable, match="no kernel"):
        gx.r1_penalty(torch.randn(2, 3), backend="cpu")


def test_wrong_device_raises(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cuda", (True, "available"))
    calls = []
    _fake_ops(monkeypatch, calls, "cuda")
    with pytest.raises(gx.BackendUnavailable, match="CUDA tensors only"):
        gx.r1_penalty(torch.randn(2, 3), backend="cuda")
    assert calls == []


def test_auto_fallback_warns_once(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (False, "simulated: the cpu kernels are not compiled"))
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
    _fake_ops(monkeypatch, [], "cpu", ops=())
    with pytest.warns(gx.BackendWarning, match="no kernel"):
        gx.grad_sqnorm(torch.randn(2, 3), backend="auto")


def test_auto_picks_cpu_kernels_when_present(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    calls = []
    _fake_ops(monkeypatch, calls, "cpu")
    g = torch.randn(3, 2, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gx.r1_penalty(g)
    assert calls == ["sqnorm"]
    torch.testing.assert_close(out, gx.r1_penalty(g, backend="reference"))


def test_auto_uses_the_native_op_and_caches_the_choice():
    if "cpu" not in gx.available_backends():
        pytest.fail("the cpu backend must be available (CI builds the extension)")
    g = torch.randn(3, 2, 4, 4, requires_grad=True)
    out = gx.r1_penalty(g)
    assert "SqnormFn" in out.grad_fn.name()  # torch.ops.ganreg_C.sqnorm with its C++ autograd
    assert _dispatch._resolved[("sqnorm", "auto", "cpu")] == ("cpu", torch.ops.ganreg_C.sqnorm.default)
    out.backward()
    torch.testing.assert_close(g.grad, 10 * g.detach() / 3)


def test_resolve_per_device(monkeypatch):
    monkeypatch.setitem(_dispatch._status, "cpu", (True, "available"))
    monkeypatch.setitem(_dispatch._status, "triton", (True, "available"))
    monkeypatch.setitem(_dispatch._status, "cuda", (False, "no nvcc"))
    monkeypatch.setattr(_dispatch, "has_op", lambda op, b: b in ("cpu", "triton"))
    monkeypatch.setattr(_dispatch, "registered", lambda op, b: f"{b}::{op}")
    assert _dispatch.resolve("sqnorm", "auto", torch.device("cpu")) == "cpu"
    assert _dispatch.resolve("sqnorm", "auto", torch.device("cuda", 0)) == "triton"  # CUDA tensor: cuda, else triton
    assert _dispatch.fused("sqnorm", "auto", torch.device("cuda", 0)) == "triton::sqnorm"
    assert _dispatch.resolve("sqnorm", "reference", torch.device("cuda", 0)) == "reference"
    assert _dispatch.fused("sqnorm", "reference", torch.device("cuda", 0)) is None


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
            assert b["ops"] == sorted(op for ops in _dispatch.OPS.values() for op in ops)  # every op, every backend
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


def test_triton_kernels_has_a_module_per_family():
    """``ganreg_ext.triton_kernels`` imports one module per family of ``_dispatch.OPS`` (the op table)."""
    import ast
    import pathlib

    import ganreg_ext._dispatch as dispatch

    init = pathlib.Path(__file__).resolve().parents[1] / "triton_kernels" / "__init__.py"
    imported = {a.name for node in ast.walk(ast.parse(init.read_text())) if isinstance(node, ast.ImportFrom) for a in node.names}
    assert imported == set(dispatch.OPS)
