"""docs/semantics.md stays true (issue 15, "Self-contained docs").

Every line of a ```python block that starts with ``# signatures`` is an exact call signature:
``name(param, param=default, ...)`` or ``Class.method(...)`` (without ``self``). This file checks
that each documented name exists in ``ganreg_ext`` with exactly the documented parameters (names,
order, kinds) and defaults (``inspect.signature``; a class by its ``__init__``), and that every public
function/class of ``ganreg_ext.__all__`` is documented. The ADA names are checked once the ADA op is
in ``ganreg_ext`` (skipped, saying so, until then).
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ganreg_ext as gx

DOC = Path(__file__).resolve().parents[1] / "docs" / "semantics.md"
ADA_HEADING = "## Adaptive discriminator augmentation (ADA)"
ADA_NAMES = ("sample_ada_params", "ada_augment", "AdaptiveAugment")
DEFAULTS_ENV = {"torch": torch, "sqrt": math.sqrt, "math": math}  # names a documented default may use
EMPTY = inspect.Parameter.empty
SIGNATURE_LINE = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\((.*)\)$")


@dataclass
class Documented:
    name: str  # "r1_penalty" or "PathLengthRegularizer.forward"
    line: int  # 1-based line in docs/semantics.md
    section: str  # the "## " heading above it
    params: list[tuple[str, inspect._ParameterKind, object]]  # (name, kind, default or EMPTY)

    @property
    def root(self) -> str:
        return self.name.split(".")[0]

    def where(self) -> str:
        return f"docs/semantics.md:{self.line} {self.name}"


def _params(arglist: str) -> list[tuple[str, inspect._ParameterKind, object]]:
    """The parameters of ``name(<arglist>)``, parsed as a ``def`` (so ``*``, ``*args``, ``**kw`` work),
    each default evaluated with :data:`DEFAULTS_ENV`."""
    fn = ast.parse(f"def _f({arglist}): pass").body[0]
    a = fn.args
    P = inspect.Parameter

    def value(node):
        return EMPTY if node is None else eval(compile(ast.Expression(node), "docs/semantics.md", "eval"), dict(DEFAULTS_ENV))

    positional = [(x, P.POSITIONAL_ONLY) for x in a.posonlyargs] + [(x, P.POSITIONAL_OR_KEYWORD) for x in a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [(x.arg, kind, value(d)) for (x, kind), d in zip(positional, defaults)]
    if a.vararg is not None:
        out.append((a.vararg.arg, P.VAR_POSITIONAL, EMPTY))
    out += [(x.arg, P.KEYWORD_ONLY, value(d)) for x, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg is not None:
        out.append((a.kwarg.arg, P.VAR_KEYWORD, EMPTY))
    return out


def parse_doc(text: str) -> tuple[list[Documented], list[str]]:
    """``(documented signatures, problems)`` of the ``# signatures`` blocks of ``text``."""
    found, problems = [], []
    section, in_block, lines = "", False, text.splitlines()
    for i, raw in enumerate(lines, 1):
        line = raw.strip()
        if not in_block:
            if raw.startswith("## "):
                section = raw.strip()
            elif line == "```python" and i < len(lines) and lines[i].strip() == "# signatures":
                in_block = True
            continue
        if line.startswith("```"):
            in_block = False
        elif line and not line.startswith("#"):
            m = SIGNATURE_LINE.match(line)
            if m is None:
                problems.append(f"docs/semantics.md:{i}: not a signature line `name(params)`: {line!r}")
                continue
            try:
                params = _params(m.group(2))
            except Exception as e:  # a syntax error or a default that does not evaluate
                problems.append(f"docs/semantics.md:{i}: cannot parse the parameters of {line!r}: {type(e).__name__}: {e}")
                continue
            found.append(Documented(m.group(1), i, section, params))
    if in_block:
        problems.append("docs/semantics.md: a ```python block with '# signatures' is not closed")
    return found, problems


DOC_TEXT = DOC.read_text(encoding="utf-8")
DOCUMENTED, PARSE_PROBLEMS = parse_doc(DOC_TEXT)


def _code_params(name: str):
    """The real parameters of a documented name (a class: its ``__init__``; a method: without ``self``),
    or a string saying why there are none."""
    obj = gx
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return f"{name} does not exist in ganreg_ext"
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError) as e:
        return f"{name}: inspect.signature fails ({e})"
    if (inspect.isclass(obj) or "." in name) and params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


def _same_default(doc, code) -> bool:
    try:
        return type(doc) is type(code) and bool(doc == code)
    except Exception:
        return False


def signature_mismatches(doc: Documented) -> list[str]:
    """What differs between a documented signature and the code (empty if they agree)."""
    code = _code_params(doc.name)
    if isinstance(code, str):
        return [f"{doc.where()}: {code}"]
    out = []
    doc_names, code_names = [(n, k.description) for n, k, _ in doc.params], [(n, k.description) for n, k, _ in code]
    if doc_names != code_names:
        out.append(f"{doc.where()}: parameters documented {doc_names}, code has {code_names}")
    code_by_name = {n: d for n, _, d in code}
    for p, _, default in doc.params:
        if p not in code_by_name:
            continue  # reported above
        real = code_by_name[p]
        if default is EMPTY and real is not EMPTY:
            out.append(f"{doc.where()}: parameter {p!r} is documented without a default, code has {p}={real!r}")
        elif default is not EMPTY and real is EMPTY:
            out.append(f"{doc.where()}: parameter {p!r} is documented with default {default!r}, code has none")
        elif default is not EMPTY and not _same_default(default, real):
            out.append(
                f"{doc.where()}: default of {p!r} documented {default!r} ({type(default).__name__}), "
                f"code {real!r} ({type(real).__name__})"
            )
    return out


def _public_callables() -> list[str]:
    """The functions and classes of ``ganreg_ext.__all__`` (the regularizer, blocks and dispatch API)."""
    names = []
    for name in gx.__all__:
        obj = getattr(gx, name, None)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            names.append(name)
    return names


def _is_exception(name: str) -> bool:
    obj = getattr(gx, name, None)
    return inspect.isclass(obj) and issubclass(obj, BaseException)


# ---------------------------------------------------------------- tests


def test_doc_parses():
    assert not PARSE_PROBLEMS, "docs/semantics.md has malformed signature lines:\n" + "\n".join(PARSE_PROBLEMS)
    assert len(DOCUMENTED) >= 40, f"docs/semantics.md documents only {len(DOCUMENTED)} signatures: a '# signatures' block lost?"
    seen: dict[str, int] = {}
    dups = []
    for d in DOCUMENTED:
        if d.name in seen:
            dups.append(f"{d.where()} (also line {seen[d.name]})")
        seen.setdefault(d.name, d.line)
    assert not dups, "docs/semantics.md documents a name twice:\n" + "\n".join(dups)


def test_documented_signatures_match_code():
    """Each documented name exists in ganreg_ext (top-level names in ``__all__``) with exactly the
    documented parameters and defaults. ADA entries are checked by ``test_ada_documented``."""
    problems = []
    for doc in DOCUMENTED:
        if doc.root in ADA_NAMES:
            continue
        if doc.root not in gx.__all__:
            problems.append(f"{doc.where()}: {doc.root!r} is not in ganreg_ext.__all__")
        problems += signature_mismatches(doc)
    assert not problems, (
        "docs/semantics.md disagrees with the code (fix the doc, or the code if the doc is right):\n" + "\n".join(problems)
    )


def test_every_public_name_documented():
    """Every function/class of ``ganreg_ext.__all__`` has a signature line (exception classes: are
    named in the text)."""
    documented = {d.name for d in DOCUMENTED}
    missing = []
    for name in _public_callables():
        if name in ADA_NAMES:
            continue  # test_ada_documented
        if _is_exception(name):
            if f"`{name}`" not in DOC_TEXT:
                missing.append(f"{name} (an exception class: name it in the text)")
        elif name not in documented:
            missing.append(name)
    assert not missing, (
        f"public names of ganreg_ext.__all__ without a signature line in docs/semantics.md "
        f"(add them to a ```python '# signatures' block of their family): {missing}"
    )


@pytest.mark.parametrize("name", ADA_NAMES)
def test_ada_documented(name):
    """The ADA op's public names: documented under the ADA heading with their exact signatures, once
    they are in ganreg_ext (until then skipped)."""
    assert ADA_HEADING in DOC_TEXT.splitlines(), f"docs/semantics.md lost its section {ADA_HEADING!r}"
    if getattr(gx, name, None) is None:
        pytest.skip(f"{name} is not in ganreg_ext yet: its signature is checked once the ADA op lands")
    entries = [d for d in DOCUMENTED if d.root == name]
    assert any(d.name == name for d in entries), (
        f"ganreg_ext.{name} exists but docs/semantics.md has no signature line for it: add it to a "
        f"```python '# signatures' block under {ADA_HEADING!r} (replacing the TODO comment)"
    )
    misplaced = [d.where() for d in entries if d.section != ADA_HEADING]
    assert not misplaced, f"{name} is documented outside {ADA_HEADING!r}: {misplaced}"
    problems = [p for d in entries for p in signature_mismatches(d)]
    assert not problems, "docs/semantics.md disagrees with the code:\n" + "\n".join(problems)
    assert name in gx.__all__, f"ganreg_ext.{name} exists but is not in ganreg_ext.__all__"


def test_checker_catches_a_wrong_default():
    """The checker itself: a changed default, a missing parameter, an unknown name are reported."""
    text = (
        "## X\n```python\n# signatures\n"
        'r1_penalty(grads, gamma=1.0, reduction="mean", inv_scale=None, backend=None)\n'
        "grad_sqnorm(grads, per_sample=True, backend=None)\n"
        "no_such_op(x)\n```\n"
    )
    docs, problems = parse_doc(text)
    assert not problems and [d.name for d in docs] == ["r1_penalty", "grad_sqnorm", "no_such_op"]
    r1, sq, missing = (signature_mismatches(d) for d in docs)
    assert len(r1) == 1 and "'gamma' documented 1.0" in r1[0] and "code 10.0" in r1[0], r1
    assert sq and "parameters documented" in sq[0], sq
    assert missing == ["docs/semantics.md:6 no_such_op: no_such_op does not exist in ganreg_ext"], missing
