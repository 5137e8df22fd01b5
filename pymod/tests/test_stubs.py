"""The shipped type stubs (__init__.pyi, testing.pyi, py.typed) against the built module."""

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
    # cwd outside pymod/, so mypy reads the *installed* stubs, not pymod/python/uwsgi.
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True
    )


PACKAGE = pathlib.Path(uwsgi.__file__).parent


def test_stubs_and_marker_are_installed():
    assert (PACKAGE / "__init__.pyi").is_file()
    assert (PACKAGE / "testing.pyi").is_file()
    assert (PACKAGE / "py.typed").is_file()


def test_stubtest(tmp_path):
    pytest.importorskip("mypy", reason="mypy is needed for the stub check (pip install mypy)")
    result = run(
        ["mypy.stubtest", "uwsgi", "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
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
        "import uwsgi.testing\n"
        "uwsgi.testing.configure(caches=['name=a,items=2'], queue=0)\n"
        "reveal_type(uwsgi.testing.run_timers())\n"
        "reveal_type(uwsgi.cache_get(b'k', '@127.0.0.1:3031', timeout=1.5))\n"
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
    assert 'Revealed type is "list[int]"' in out, out
    assert 'Revealed type is "bytes | None"' in out or "Union[bytes, None]" in out, out
    assert "Literal[-2]" in out, out
    # The wrong annotation is caught, so the stubs are really in use.
    assert 'Incompatible types in assignment (expression has type "bytes"' in out, out
    assert result.returncode == 1, out


def test_every_public_name_is_in_the_stub():
    # A quick check that needs no mypy: names and parsefile's parameters.
    stub = (PACKAGE / "__init__.pyi").read_text()
    public = [name for name in dir(uwsgi) if not name.startswith("_")]
    assert sorted(public) == sorted(uwsgi.__all__)
    for name in uwsgi.__all__:
        if name == "testing":
            assert "from . import testing as testing" in stub
            continue
        assert (
            f"\n{name}:" in stub
            or f"\ndef {name}(" in stub
            or f"\nclass {name}(" in stub
            or f"\nclass {name}:" in stub
        ), name
    params = list(inspect.signature(uwsgi.parsefile).parameters.values())
    assert [(p.name, p.kind) for p in params] == [
        ("filename", inspect.Parameter.POSITIONAL_ONLY)
    ]
