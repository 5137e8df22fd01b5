"""The shipped type stubs (uwsgi.pyi + py.typed) against the built module."""

import importlib.util
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import uwsgi

HERE = pathlib.Path(__file__).resolve().parent
ALLOWLIST = HERE / "stubtest-allowlist.txt"


def run(args, cwd):
    # cwd outside pymod/, so mypy reads the *installed* stubs, not pymod/uwsgi.pyi.
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True
    )


def test_stubs_and_marker_are_installed():
    package = pathlib.Path(uwsgi.__file__).parent
    assert (package / "__init__.pyi").is_file()
    assert (package / "py.typed").is_file()


def test_stubtest(tmp_path):
    pytest.importorskip("mypy", reason="mypy is needed for the stub check (pip install mypy)")
    result = run(
        ["mypy.stubtest", "uwsgi", "--allowlist", str(ALLOWLIST)], cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_uses_the_stubs(tmp_path):
    pytest.importorskip("mypy", reason="mypy is needed for the stub check (pip install mypy)")
    (tmp_path / "client.py").write_text(
        "import uwsgi\n"
        "vars = uwsgi.parsefile('/tmp/job')\n"
        "reveal_type(vars)\n"
        "reveal_type(uwsgi.version)\n"
        "reveal_type(uwsgi.SPOOL_OK)\n"
        "x: str = uwsgi.hostname\n"
    )
    result = run(["mypy", "--no-incremental", "client.py"], cwd=tmp_path)
    # mypy versions spell types differently ("builtins.bytes", "Union[..]", "X | None").
    out = result.stdout.replace("builtins.", "")
    assert re.search(
        r'Revealed type is "(dict\[bytes, bytes\] \| None|Union\[dict\[bytes, bytes\], None\])"',
        out,
    ), out
    assert 'Revealed type is "bytes"' in out, out
    assert "Literal[-2]" in out, out
    # The wrong annotation is caught, so the stubs are really in use.
    assert 'Incompatible types in assignment (expression has type "bytes"' in out, out
    assert result.returncode == 1, out


def test_every_public_name_is_in_the_stub():
    # A quick check that needs no mypy: names and parsefile's parameters.
    spec = importlib.util.find_spec("uwsgi")
    stub = pathlib.Path(spec.origin).with_suffix(".pyi").read_text()
    for name in uwsgi.__all__:
        assert (
            f"\n{name}:" in stub or f"\ndef {name}(" in stub or f"\nclass {name}(" in stub
        ), name
    params = list(inspect.signature(uwsgi.parsefile).parameters.values())
    assert [(p.name, p.kind) for p in params] == [
        ("filename", inspect.Parameter.POSITIONAL_ONLY)
    ]
