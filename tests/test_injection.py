"""No code injection: names, comments, `\\text{...}`, file names and caches run only the math.

Hostile payloads (quotes, triple quotes, newlines, `\\r`, backslashes, `__import__('os')...`,
unicode line separators) go into every place of a Kokoyi unit that reaches generated code.
The generated Python (Unit.python_source, compile_unit(...).generated.code and the output of
`kyic compile`) must then be the same program as without the payload: same syntax tree once
string constants are blanked out (so every payload ended up inert, inside a comment or a
string), a UTF-8 module, and running it must not create the marker file a payload would.
"""
from __future__ import annotations

import ast
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import tokenize

import pytest
import torch

import kokoyi
from kokoyi.compiler.pipeline import compile_unit

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAS_CLI = (ROOT / "kokoyi" / "cli.py").exists()


def payloads(marker: pathlib.Path) -> list[str]:
    cmd = f"touch {marker}"
    return [
        "'", '"', "'''", '"""', "\\", "\\\\", "\\'", "\\n", "\n", "\r", "\r\n",
        "\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x00", "\x1b[2J",
        f"__import__('os').system('{cmd}')",
        f"\nimport os; os.system('{cmd}')\n",
        f"\rimport os; os.system('{cmd}')",
        f"\u2028import os; os.system('{cmd}')",
        f"\x0cimport os; os.system('{cmd}')",
        f"\x85import os; os.system('{cmd}')",
        f"'''; __import__('os').system('{cmd}'); '''",
        f'"""; __import__("os").system("{cmd}"); """',
        f"'); __import__('os').system('{cmd}'); ('",
        f"\\'); __import__('os').system('{cmd}'); #",
        f"}}\\\\ __import__('os').system('{cmd}') \\\\",
        "-*- coding: utf-7 -*-",
        f"+AAo-__import__(+ACI-os+ACI-).system(+ACI-{cmd}+ACI-)",
    ]


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran"


def shape(code: str) -> str:
    """The program's syntax tree with every string constant blanked: what it *does*."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = "<str>"
    return ast.dump(tree)


def assert_well_formed(code: str) -> None:
    data = code.encode("utf-8")  # encodable: no lone surrogates
    assert tokenize.detect_encoding(io.BytesIO(data).readline)[0] in ("utf-8", "utf-8-sig")
    compile(data, "<generated>", "exec", dont_inherit=True)


MODEL = r"""
\phi \gets 2 \\
sq(x) \gets x * x \\
\Module{Net}{x; W}
  h \gets W @ x \\
  \Return \begin{cases} sq(h) + \phi & \text{if } h > 0 \\ h & \text{otherwise} \end{cases} \\
\EndModule
"""


class Holder(torch.nn.Module):
    def __init__(self, forward, W):
        super().__init__()
        self.W = W
        self._forward = forward

    def get_parameters(self):
        return self.W

    def forward(self, *args, **kwargs):
        return self._forward(self, *args, **kwargs)


def run_net(forward) -> torch.Tensor:
    W = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    return Holder(forward, W)(torch.tensor([1.0, 3.0]))


EXPECTED = torch.tensor([-5.0, 6.0])


def with_line_comments(text: str, payload: str) -> str:
    return "\n".join(f"{line} % {payload}" for line in text.split("\n"))


def with_statement_comments(text: str, payload: str) -> str:
    return text.replace(" \\\\\n", f" \\Comment{{{payload}}} \\\\\n")


# ---- comments -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["percent", "Comment"])
def test_comment_payloads_are_inert(where, marker):
    plain = shape(compile_unit(MODEL, "m.kyi").generated.code)
    add = with_line_comments if where == "percent" else with_statement_comments
    compiled = rejected = 0
    for payload in payloads(marker):
        text = add(MODEL, payload)
        try:
            code = compile_unit(text, "m.kyi").generated.code
        except kokoyi.KokoyiError as err:
            # a payload that ends the comment (a line break, a `}`) leaves text that is not
            # Kokoyi; it is reported, never run
            assert err.line is not None, (payload, str(err))
            rejected += 1
            continue
        compiled += 1
        assert_well_formed(code)
        assert shape(code) == plain, f"payload {payload!r} changed the program"
        kokoyi.symbol.clear()
        unit = kokoyi.compile(text, filename="m.kyi")
        assert unit.python_source == code
        torch.testing.assert_close(run_net(unit["Net"]), EXPECTED)
    assert compiled >= len(payloads(marker)) // 2, (compiled, rejected)


def code_tokens(code: str):
    """(code tokens, number of comments): the tokens Python runs, strings and comments aside."""
    skip = (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
            tokenize.DEDENT, tokenize.ENDMARKER)
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    return ([(t.type, t.string) for t in tokens if t.type not in skip],
            sum(t.type == tokenize.COMMENT for t in tokens))


@pytest.mark.parametrize("add", [with_line_comments, with_statement_comments])
def test_comment_text_stays_in_its_comment(add, marker):
    """Token by token: a payload neither adds code tokens nor splits or adds comment lines."""
    plain = code_tokens(compile_unit(MODEL, "m.kyi").generated.code)
    for payload in payloads(marker):
        try:
            code = compile_unit(add(MODEL, payload.replace("}", ")")), "m.kyi").generated.code
        except kokoyi.KokoyiError:
            continue
        assert code_tokens(code) == plain, f"payload {payload!r}"


# ---- \text{...} -----------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(22))
def test_text_payloads_are_syntax_errors(index, marker):
    payload = payloads(marker)[index]
    text = MODEL.replace(r"\text{if }", "\\text{if " + payload + "}").replace(
        r"\text{otherwise}", "\\text{" + payload + "}")
    with pytest.raises(kokoyi.KokoyiError) as info:
        kokoyi.compile(text, filename="t.kyi")
    assert info.value.line is not None
    assert len(kokoyi.symbol) == 0


# ---- names ----------------------------------------------------------------------------------
PYTHON_WORDS = r"""
import \gets 2 \\
kk \gets 3 \\
torch \gets 4 \\
exec(os, eval) \gets os * eval + import \\
\Module{open}{lambda, None; self}
  print \gets lambda + None \\
  globals(math) \gets math * kk + torch \\
  \Return exec(print, self) + globals(1) \\
\EndModule
\Module{s'}{x_{first}, \bar{x}; W^{(1)}, \mathbf{kokoyi}}
  \Return W^{(1)} * x_{first} + \bar{x} + \mathbf{kokoyi} \\
\EndModule
"""


def test_names_that_are_python_words_stay_names(marker):
    unit = kokoyi.compile(PYTHON_WORDS, filename="words.kyi")
    tree = ast.parse(unit.python_source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported <= {"math", "torch", "kernels", "ops", "unit"}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"exec", "eval", "open", "print", "globals", "__import__", "compile", "getattr"}
    # the runtime names the code uses were not taken over by the user's
    assert unit["kk"] == 3 and unit["torch"] == 4 and unit["import"] == 2

    class Open(torch.nn.Module):
        def get_parameters(self):
            return 10.0

        forward = unit["open"]

    # print = 1 + 2; exec(print, 10) = 3 * 10 + 2; globals(1) = 1 * 3 + 4
    assert float(Open()(torch.tensor(1.0), torch.tensor(2.0))) == 39.0

    class S(torch.nn.Module):
        def get_parameters(self):
            return 2.0, 5.0

        forward = unit["s'"]

    assert float(S()(torch.tensor(3.0), torch.tensor(1.0))) == 12.0


def test_user_names_cannot_take_the_generated_code_globals():
    text = "KOKOYI_{SOURCE} \\gets 1 \\\\\nKOKOYI_{FILENAME} \\gets 2 \\\\\n\\Module{M}{x}\n  \\Return x \\\\\n\\EndModule\n"
    code = compile_unit(text, "g.kyi").generated.code
    assigned = [node.targets[0].id for node in ast.parse(code).body
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)]
    assert assigned.count("KOKOYI_SOURCE") == 1 and assigned.count("KOKOYI_FILENAME") == 1


# ---- file names -----------------------------------------------------------------------------
def hostile_file_names(marker) -> list[str]:
    return [p for p in payloads(marker) if p] + ["caf\udce9.kyi", "a\nb.kyi", "x.kyi\u2028import os"]


def test_file_name_payloads_are_inert(marker):
    plain = shape(compile_unit(MODEL, "m.kyi").generated.code)
    for filename in hostile_file_names(marker):
        code = compile_unit(MODEL, filename).generated.code
        code.encode("utf-8")
        compile(code, "<generated>", "exec", dont_inherit=True)
        assert shape(code) == plain, f"file name {filename!r} changed the program"
        kokoyi.symbol.clear()
        unit = kokoyi.compile(MODEL, filename=filename)
        torch.testing.assert_close(run_net(unit["Net"]), EXPECTED)
        # errors show the name, and still print
        with pytest.raises(kokoyi.KokoyiError) as info:
            kokoyi.compile(MODEL.replace(r"\phi \gets 2", r"\phi \gets \psi"), filename=filename)
        str(info.value).encode("utf-8")


def test_file_name_cannot_declare_the_source_encoding(marker):
    for filename in ["-*- coding: utf-7 -*-", "x coding=latin-1.kyi", "vim: set fileencoding=utf-16 :"]:
        code = compile_unit(MODEL, filename).generated.code
        assert tokenize.detect_encoding(io.BytesIO(code.encode()).readline)[0] == "utf-8", filename


def test_utf7_file_name_and_comment_do_not_run_code_in_process(marker):
    """In-process compilation is immune to encoding declarations (the code is compiled as str)."""
    text = with_line_comments(MODEL, payloads(marker)[-1])
    unit = kokoyi.compile(text, filename="-*- coding: utf-7 -*-")
    torch.testing.assert_close(run_net(unit["Net"]), EXPECTED)


# ---- kyic compile ---------------------------------------------------------------------------
def kyic(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "kokoyi.cli", *map(str, args)], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=120)


RUN_OUTPUT = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
class Holder(torch.nn.Module):
    def get_parameters(self):
        return torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    forward = mod.Net
print(Holder()(torch.tensor([1.0, 3.0])).tolist(), Holder()(torch.ones(2, 2), batch_level=[1]).tolist())
"""


@pytest.mark.skipif(not HAS_CLI, reason="kyic (kokoyi/cli.py) is not written yet")
@pytest.mark.parametrize("name", ["quote'\"name.kyi", "new\nline\u2028sep.kyi", "__import__('os').kyi"])
def test_kyic_output_runs_only_the_math(tmp_path, marker, name):
    usable = [p for p in payloads(marker) if "\n" not in p and "\r" not in p and "coding" not in p
              and "+AAo-" not in p]
    text = MODEL
    for payload in usable:
        text = f"% {payload}\n" + text
    text = with_statement_comments(text, usable[-4].replace("}", ")"))
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    done = kyic("compile", source.name, "-o", "out.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    code = (tmp_path / "out.py").read_bytes().decode("utf-8")
    assert_well_formed(code)
    generated = shape(code.split("# ---- torch.nn.Module templates", 1)[0])
    assert generated == shape(compile_unit(MODEL, source.name).generated.code)
    (tmp_path / "run.py").write_text(RUN_OUTPUT, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ran = subprocess.run([sys.executable, "run.py", "out.py"], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["[-5.0,", "6.0]", "[[-1.0,", "3.0],", "[-1.0,", "3.0]]"]


# ---- the load cache (kokoyi.load) ---------------------------------------------------------------
def cache_module():
    from kokoyi.runtime import cache

    if not hasattr(cache, "cache_dir") or not hasattr(cache, "load_cached"):
        pytest.skip("the kokoyi.load cache (kokoyi/runtime/cache.py) is not written yet")
    return cache


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    cache_module()
    folder = tmp_path / "cache"
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def written_entries(folder):
    return sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith("lalr-"))


def test_load_cache_never_uses_the_entry_of_another_source(cache_folder, tmp_path):
    """A valid entry the cache wrote for source A, put where source B's entry goes, is not B's."""
    (tmp_path / "m.kyi").write_text(r"\phi \gets 3 \\", encoding="utf-8")
    kokoyi.load("m.kyi")
    (entry_a,) = written_entries(cache_folder)
    content_a = entry_a.read_bytes()

    (tmp_path / "m.kyi").write_text(r"\phi \gets 5 \\", encoding="utf-8")
    kokoyi.symbol.clear()
    kokoyi.load("m.kyi")
    (entry_b,) = [p for p in written_entries(cache_folder) if p != entry_a]
    entry_b.write_bytes(content_a)  # B's slot now holds A's (intact, well-formed) entry

    kokoyi.symbol.clear()
    unit = kokoyi.load("m.kyi")
    assert unit["phi"] == 5


def test_load_cache_never_runs_files_planted_in_its_folder(cache_folder, tmp_path, marker):
    (tmp_path / "m.kyi").write_text(r"\phi \gets 3 \\", encoding="utf-8")
    kokoyi.load("m.kyi")
    planted = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
    for name in ("__init__.py", "sitecustomize.py", "m.py", "m.kyi.py", "m.pyc", "m.pickle"):
        (cache_folder / name).write_text(planted, encoding="utf-8")
    (cache_folder / "evil.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    for entry in written_entries(cache_folder):
        if entry.suffix == ".json":
            data = json.loads(entry.read_text(encoding="utf-8"))
            data["generated"]["code"] = planted  # code_sha256 left as it was: tampered
            entry.write_text(json.dumps(data), encoding="utf-8")
    kokoyi.symbol.clear()
    assert kokoyi.load("m.kyi")["phi"] == 3


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


def _forge(entry: pathlib.Path, marker: pathlib.Path) -> None:
    """Rewrite a cache entry with code that writes the marker, every checksum made to match."""
    import hashlib

    data = json.loads(entry.read_text(encoding="utf-8"))
    code = data["generated"]["code"] + f"\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    data["generated"]["code"] = code
    data["code_sha256"] = hashlib.sha256(code.encode("utf-8")).hexdigest()
    entry.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("how", ["world-writable", "other owner"])
def test_load_cache_never_runs_an_entry_someone_else_could_have_written(cache_folder, tmp_path, how):
    marker = tmp_path / "pwned"
    (tmp_path / "m.kyi").write_text(r"\phi \gets 3 \\", encoding="utf-8")
    kokoyi.load("m.kyi")
    (entry,) = written_entries(cache_folder)
    _forge(entry, marker)
    if how == "world-writable":
        entry.chmod(0o666)
    else:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(entry, 65534, 65534)
    kokoyi.symbol.clear()
    assert kokoyi.load("m.kyi")["phi"] == 3
    assert not marker.exists(), "the cache ran an entry it did not write"


# ---- the parser's table cache: a pickle, so it must never load someone else's -------------------
PARSE = "from kokoyi.compiler.pipeline import compile_unit; compile_unit(r'\\phi \\gets 1 \\\\', 'p.kyi'); print('parsed')"


def _python(code, folder):
    env = dict(os.environ, PYTHONPATH=str(ROOT), KOKOYI_CACHE_DIR=str(folder))
    env.pop("KOKOYI_NO_PARSER_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("how", ["world-writable file", "group-writable file", "world-writable folder",
                                 "other owner"])
def test_parser_tables_someone_else_could_have_written_are_not_unpickled(tmp_path, how):
    """Regression: lark keeps the LALR tables as a pickle in the cache folder, and it checked
    only a hash of the (public) grammar before unpickling them, so a file planted there ran
    arbitrary code at the next parse. Now the tables are used only when the folder and the file
    belong to this user and nobody else may write them."""
    folder = tmp_path / "cache"
    done = _python(PARSE, folder)
    assert done.returncode == 0 and "parsed" in done.stdout, done.stderr
    (tables,) = folder.glob("lalr-*.tables")
    assert not tables.stat().st_mode & 0o022, "the tables should be writable by their owner only"

    marker = tmp_path / "pwned"
    first_line = tables.read_bytes().split(b"\n", 1)[0] + b"\n"  # the grammar hash lark checks
    tables.write_bytes(first_line + pickle.dumps(_Payload(str(marker))))
    if how == "world-writable file":
        tables.chmod(0o646)
    elif how == "group-writable file":
        tables.chmod(0o664)
    elif how == "world-writable folder":
        folder.chmod(0o777)
    else:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(tables, 65534, 65534)
    done = _python(PARSE, folder)
    assert done.returncode == 0 and "parsed" in done.stdout, done.stderr
    assert not marker.exists(), "the parser unpickled tables it did not write"
