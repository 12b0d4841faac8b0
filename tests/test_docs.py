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


# ---------------------------------------------------------------- README and docs/performance.md (issues 22, 23)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PERFORMANCE = ROOT / "docs" / "performance.md"
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")
RESULTS_LINK = re.compile(r"\]\(((?:\.\./)?benchmarks/results/[^)#\s]+\.md)(?:#[^)]*)?\)")


def _table_rows(lines: list[str], start: int) -> list[tuple[int, list[str]]]:
    """The body rows ``(line number, cells)`` of the markdown table whose header is ``lines[start]``."""
    rows, i = [], start + 2  # skip the header and the |---| line
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        rows.append((i + 1, [c.strip() for c in lines[i].strip().strip("|").split("|")]))
        i += 1
    return rows


def _tables(text: str) -> list[tuple[int, list[str], list[tuple[int, list[str]]]]]:
    """Every markdown table of ``text``: ``(header line number, header cells, body rows)``."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            rows = _table_rows(lines, i)
            out.append((i + 1, [c.strip() for c in lines[i].strip().strip("|").split("|")], rows))
            i += 2 + len(rows)
        else:
            i += 1
    return out


def figures_missing(cells: list[str], results_text: str) -> list[str]:
    """The numbers of ``cells`` (as written: ``1.92``, ``0.000366``, ``2026``) that are not a number of
    the results file (compared as strings: a figure must be copied, not rounded)."""
    have = set(NUMBER.findall(results_text))
    return [n for c in cells for n in NUMBER.findall(RESULTS_LINK.sub("", c)) if n not in have]


def _resolve(doc: Path, link: str) -> Path:
    return (doc.parent / link).resolve()


def headline_rows(text: str) -> list[tuple[int, list[str], str]]:
    """``(line, cells, linked results file)`` of every row of the README's "## Headline results" table."""
    section = text.split("\n## Headline results\n", 1)
    assert len(section) == 2, "README.md lost its '## Headline results' section"
    body = section[1].split("\n## ", 1)[0]
    offset = text[: text.index("\n## Headline results\n")].count("\n") + 2
    tables = _tables(body)
    assert len(tables) == 1, f"README's headline section must hold exactly one table, found {len(tables)}"
    out = []
    for line, cells in tables[0][2]:
        links = RESULTS_LINK.findall(" | ".join(cells))
        assert len(links) == 1, f"README.md:{line + offset - 1}: a headline row must link exactly one results file"
        out.append((line + offset - 1, cells, links[0]))
    return out


def check_figures(doc: Path, rows) -> list[str]:
    problems = []
    for line, cells, link in rows:
        path = _resolve(doc, link)
        if not path.is_file():
            problems.append(f"{doc.name}:{line}: links {link}, which does not exist")
            continue
        missing = figures_missing(cells, path.read_text(encoding="utf-8"))
        if missing:
            problems.append(f"{doc.name}:{line}: {missing} not found in {link} (row: {' | '.join(cells)})")
    return problems


def test_readme_headline_figures_are_in_their_results_files():
    """Issue 22: every figure of the README's headline table is found, as written, in the committed
    results file its row links (re-run a benchmark → copy the new figures into the row)."""
    rows = headline_rows(README.read_text(encoding="utf-8"))
    assert len(rows) >= 5, f"the headline table has {len(rows)} rows"
    problems = check_figures(README, rows)
    assert not problems, "README headline figures not in their results files:\n" + "\n".join(problems)


def performance_rows(text: str) -> list[tuple[int, list[str], str]]:
    """The rows of every table of docs/performance.md, each with the last results file linked between
    the section heading above the table and the table (tables without one: none)."""
    lines, out = text.splitlines(), []
    for header_line, _, rows in _tables(text):
        before = lines[: header_line - 1]
        heading = max((i for i, ln in enumerate(before) if ln.startswith("#")), default=0)
        links = RESULTS_LINK.findall("\n".join(before[heading:]))
        if links:
            out += [(line, cells, links[-1]) for line, cells in rows]
    return out


def test_performance_tables_are_in_their_results_files():
    """Every number of every table of docs/performance.md is in the results file linked above it."""
    rows = performance_rows(PERFORMANCE.read_text(encoding="utf-8"))
    assert len({link for _, _, link in rows}) >= 4 and len(rows) >= 20, "docs/performance.md lost its tables or their links"
    problems = check_figures(PERFORMANCE, rows)
    assert not problems, "docs/performance.md figures not in their results files:\n" + "\n".join(problems)


def test_figure_checker_catches_a_changed_figure():
    """The checker itself: one digit changed in a headline row, or a rounded figure, is reported."""
    text = README.read_text(encoding="utf-8")
    (line, cells, link), *_ = headline_rows(text)
    results = _resolve(README, link).read_text(encoding="utf-8")
    assert not figures_missing(cells, results)
    figure = next(n for c in cells[2:] for n in NUMBER.findall(c) if "." in n)
    have = set(NUMBER.findall(results))
    changed = next(x for x in (figure[:-1] + str(d) for d in range(10)) if x not in have)  # absent from the file
    assert figures_missing([c.replace(figure, changed) for c in cells], results) == [changed]
    assert figures_missing(["×1.23456789"], results) == ["1.23456789"]


DEMO = ROOT / "docs" / "demo"
DEMO_RUNS = {0: DEMO / "seed0" / "scores.csv", 1: DEMO / "tuning" / "fast-s1" / "scores_ema5_r0.05.csv", 2: DEMO / "tuning" / "fast-s2" / "scores_ema5_r0.05.csv"}  # fmt: skip


def _demo_scores(seed: int) -> dict[int, tuple[float, float]]:
    import csv

    with open(DEMO_RUNS[seed]) as f:
        return {int(r["step"]): (float(r["score"]), float(r["fd"])) for r in csv.DictReader(f)}


def _fd_cell(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def test_demo_figures_are_its_runs():
    """The demo's figures (docs/demo/README.md's table over the run, the README's demo paragraph and
    its training time) are the committed runs' scores files, rounded as written."""
    text = (DEMO / "README.md").read_text(encoding="utf-8")
    header, table = next((h, rows) for _, h, rows in _tables(text) if h[0] == "step" and "4500" in h)
    steps = [int(c) for c in header[1:]]
    seen = set()
    for _, cells in table:
        m = re.fullmatch(r"seed (\d) (score|FD)", cells[0])
        assert m, cells
        seed, kind = int(m.group(1)), m.group(2)
        scores = _demo_scores(seed)
        want = [f"{scores[s][0]:.2f}" if kind == "score" else _fd_cell(scores[s][1]) for s in steps]
        assert cells[1:] == want, f"docs/demo/README.md, seed {seed} {kind}: {cells[1:]} vs the scores file {want}"
        seen.add((seed, kind))
    assert len(seen) == 6, seen
    readme = README.read_text(encoding="utf-8")
    for seed in DEMO_RUNS:
        score, fd = _demo_scores(seed)[4500]
        assert f"seed {seed} {score:.2f} / {fd:.2f}" in readme, f"README demo paragraph: seed {seed} is {score:.2f} / {fd:.2f}"
    train_s = float(re.search(r"training: ([\d.]+) s wall", (DEMO / "seed0" / "scores.txt").read_text()).group(1))
    assert f"seed 0 trained {train_s:.0f} s" in readme and f"{train_s} s" in text


def _examples(text: str) -> dict[str, str]:
    """The ```python blocks of the README whose first line is ``# example: <name>``."""
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"```python\n# example: ([^\n]+)\n(.*?)```", text, re.S)}


README_EXAMPLES = _examples(README.read_text(encoding="utf-8"))


def test_readme_has_an_example_per_family():
    assert set(README_EXAMPLES) >= {"regularizers", "path length", "consistency", "blocks", "ada"}, sorted(README_EXAMPLES)
    long = {k: len(v.strip().splitlines()) for k, v in README_EXAMPLES.items() if len(v.strip().splitlines()) > 12}
    assert not long, f"README examples longer than 12 lines: {long}"


@pytest.mark.parametrize("name", sorted(README_EXAMPLES))
def test_readme_example_runs(name):
    """Each README example runs as written (default backend, CPU tensors) and its backward reaches
    every parameter of its models (or, without a model, some leaf tensor), with finite values."""
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(README_EXAMPLES[name], f"README.md example {name!r}", "exec"), scope)
    modules = [v for v in scope.values() if isinstance(v, torch.nn.Module) and any(True for _ in v.parameters())]
    leaves = [v for v in scope.values() if isinstance(v, torch.Tensor) and v.is_leaf and v.requires_grad]
    for m in modules:
        for p in m.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    reached = [t for t in leaves if t.grad is not None]
    assert modules or reached, f"example {name!r}: its backward reaches no parameter"
    # a leaf may legitimately get a zero gradient (the second derivative of a piecewise-linear
    # network w.r.t. its input, in the blocks example); at least one must be non-zero
    assert all(torch.isfinite(t.grad).all() for t in reached), name
    assert modules or any(t.grad.abs().sum() > 0 for t in reached), name


# ---------------------------------------------------------------- packaging metadata (issue 23)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_txt_is_the_union_of_the_extras():
    """requirements.txt (what the Makefile installs) lists exactly the packages of the extras demo,
    test and dev (self-references ``ganreg_ext[...]`` resolved), so neither drifts."""
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"test", "demo", "dev"} <= set(extras), sorted(extras)
    union = {_name(r) for k in ("demo", "test", "dev") for r in extras[k] if _name(r) != "ganreg-ext"}
    for k in ("test", "dev"):  # each extra pulls the previous one in
        assert any(_name(r) == "ganreg-ext" for r in extras[k]), f"extra {k!r} no longer includes the others"
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    listed = {_name(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}
    assert listed == union, f"requirements.txt only: {sorted(listed - union)}; extras only: {sorted(union - listed)}"


def test_version_has_one_source():
    """The version is ganreg_ext.__version__, read by setuptools (pyproject dynamic), written nowhere else."""
    project = _pyproject()
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ganreg_ext.__version__"}
    assert "version=" not in (ROOT / "setup.py").read_text(encoding="utf-8")
    assert re.fullmatch(r"\d+\.\d+\.\d+", gx.__version__), gx.__version__
    import importlib.metadata as md

    try:
        installed = md.version("ganreg_ext")
    except md.PackageNotFoundError:
        return  # a source checkout on sys.path, not installed
    assert installed == gx.__version__, (
        f"installed metadata says {installed}, ganreg_ext.__version__ {gx.__version__} (reinstall)"
    )


# ---------------------------------------------------------------- docs/ARCHITECTURE.md: the op and family tables (issue 23)

ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
SCHEMA_DEF = re.compile(r'm\.def\("([a-z_0-9]+)\((.*?)\) -> [^"]*"\s*(,)?')


def schema_ops() -> dict[str, str]:
    """``{op: argument list}`` of the kernel ops defined in csrc/ops.cpp (``m.def`` without an
    implementation; the ``m.def(schema, &fn)`` test hooks excluded)."""
    text = (ROOT / "csrc" / "ops.cpp").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in SCHEMA_DEF.finditer(text) if m.group(3) is None}


def _arch_tables() -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({op: family}, {family: [paths]})`` from the op table and the family table of ARCHITECTURE.md."""
    ops, families = {}, {}
    for _, header, rows in _tables(ARCHITECTURE.read_text(encoding="utf-8")):
        if header[:2] == ["op", "family"]:
            for line, cells in rows:
                assert cells[0].startswith("`") and cells[0].endswith("`"), f"ARCHITECTURE.md:{line}: op cell {cells[0]!r}"
                assert cells[0].strip("`") not in ops, f"ARCHITECTURE.md:{line}: {cells[0]} listed twice"
                ops[cells[0].strip("`")] = cells[1]
        elif header[0] == "family" and "reference" in header:
            for _, cells in rows:
                families[cells[0]] = re.findall(r"`([\w./]+\.(?:py|cpp|cu|h))`", " | ".join(cells[1:]))
    return ops, families


def test_architecture_op_table_matches_the_registered_ops():
    """The op table of docs/ARCHITECTURE.md names exactly the kernel ops of csrc/ops.cpp, of
    ganreg_ext._dispatch.OPS and of the Python fake kernels (``FAKES``), each under its family; with the
    native extension built, each is a registered ``torch.ops.ganreg_C`` op."""
    from ganreg_ext._dispatch import OPS
    from ganreg_ext.ops import FAMILIES

    doc, _ = _arch_tables()
    assert len(doc) >= 18, f"ARCHITECTURE.md's op table lost rows: {sorted(doc)}"
    dispatch = {op: fam for fam, ops in OPS.items() for op in ops}
    python = {op: fam for fam, mod in FAMILIES.items() for op in mod.FAKES}
    cpp = schema_ops()
    assert set(doc) == set(dispatch), (
        f"only in ARCHITECTURE.md: {sorted(set(doc) - set(dispatch))}; only in _dispatch.OPS: {sorted(set(dispatch) - set(doc))}"
    )
    assert doc == dispatch, {op: (doc[op], dispatch[op]) for op in doc if doc[op] != dispatch[op]}
    assert set(cpp) == set(doc), (
        f"csrc/ops.cpp only: {sorted(set(cpp) - set(doc))}; ARCHITECTURE.md only: {sorted(set(doc) - set(cpp))}"
    )
    assert python == dispatch, "ganreg_ext/ops/*.FAKES disagree with _dispatch.OPS"
    if hasattr(torch.ops, "ganreg_C") and hasattr(torch.ops.ganreg_C, "sqnorm"):
        missing = [op for op in doc if not hasattr(torch.ops.ganreg_C, op)]
        assert not missing, f"ops of ARCHITECTURE.md not registered in torch.ops.ganreg_C: {missing}"


def test_architecture_family_table_paths_exist():
    """Every family of _dispatch.OPS has a row in the family table, every path in it exists, and every
    per-family kernel file of the tree (triton_kernels/, csrc/cpu, csrc/cuda, ganreg_ext/ops,
    ganreg_ext/reference) is named in it."""
    from ganreg_ext._dispatch import OPS

    _, families = _arch_tables()
    assert set(families) == set(OPS), f"family table rows {sorted(families)} vs _dispatch.OPS {sorted(OPS)}"
    named = {p for paths in families.values() for p in paths}
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"
    tree = {f"triton_kernels/{f}.py" for f in OPS} | {f"ganreg_ext/ops/{f}.py" for f in OPS}
    tree |= {str(p.relative_to(ROOT)) for d in ("csrc/cpu", "csrc/cuda", "ganreg_ext/reference") for p in (ROOT / d).iterdir()}
    tree = {p for p in tree if (ROOT / p).is_file() and Path(p).stem in OPS}  # family files, not helpers
    assert tree <= named, f"family files missing from ARCHITECTURE.md's family table: {sorted(tree - named)}"
    for fam, paths in families.items():
        assert sum(p.startswith("tests/") for p in paths) >= 1, f"family {fam}: no test file named"


def test_architecture_checker_catches_a_missing_op():
    """The schema parser finds the kernel ops and skips the hooks; a dropped op row would be reported."""
    ops = schema_ops()
    assert {"sqnorm", "bias_act_grad", "upfirdn2d", "ada_augment_adj"} <= set(ops), sorted(ops)
    assert not {"build_info", "set_poison", "parallel_threads"} & set(ops)
    doc, _ = _arch_tables()
    assert set(doc) - {"sqnorm"} != set(ops)


# ---------------------------------------------------------------- citations resolve (issue 23: no retired spec sections, no plan)

CITED = re.compile(r"(docs/[\w./-]+\.md)#([\w-]+)")
MD_LINK = re.compile(r"\]\(([\w./-]+\.md)#([\w-]+)\)")
SOURCE_EXTS = {".py", ".cpp", ".h", ".cu", ".cuh", ".md"}


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """The anchors of the headings of ``doc`` (``# comments`` inside fenced code blocks are not headings)."""
    out, fenced = set(), False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.+)$", line)):
            out.add(slug(m.group(1)))
    return out


def _source_files():
    skip = {".venv", "build", ".git", "node_modules", "runs"}
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if path.suffix in SOURCE_EXTS and path.is_file() and not (set(rel.parts) & skip or rel.parts[0].startswith(".")):
            yield rel, path


def test_doc_citations_resolve():
    """Every ``docs/<file>.md#<anchor>`` cited in code, tests and docs (and every relative ``.md#anchor``
    link inside a markdown file) names an existing heading; no file cites the retired SPEC sections or
    the removed wave-2 plan."""
    retired = ("SPEC" + " §", "PLAN-" + "wave2")
    problems, cache = [], {}
    for rel, path in _source_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += [
            f"{rel}: cites {r!r} (use a docs/semantics.md or docs/ARCHITECTURE.md section)" for r in retired if r in text
        ]
        refs = [(ROOT / d, a) for d, a in CITED.findall(text)]
        if path.suffix == ".md":
            refs += [((path.parent / d).resolve(), a) for d, a in MD_LINK.findall(text) if not d.startswith("docs/")]
        for doc, anchor in refs:
            if doc not in cache:
                cache[doc] = anchors(doc) if doc.is_file() else None
            if cache[doc] is None:
                problems.append(
                    f"{rel}: cites {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}, which does not exist"
                )
            elif anchor not in cache[doc]:
                problems.append(f"{rel}: cites #{anchor} of {doc.name}, which has no such heading")
    assert not problems, "broken doc citations:\n" + "\n".join(sorted(set(problems)))


def test_slug_matches_github():
    assert slug("## Gradient-norm penalties: R1, R2, WGAN-GP, Roth et al., DRAGAN, `grad_sqnorm`".lstrip("# ")) == (
        "gradient-norm-penalties-r1-r2-wgan-gp-roth-et-al-dragan-grad_sqnorm"
    )
    assert (
        slug("The blocks' raw ops (`bias_act`, `bias_act_grad`, `upfirdn2d`)")
        == "the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d"
    )
