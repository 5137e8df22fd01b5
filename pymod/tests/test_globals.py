"""Module globals: values and types as uWSGI 2.0 gives them on Python 3."""

import re
import subprocess
import sys
import time

import uwsgi


def test_spooler_return_codes():
    assert (uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE) == (-2, -1, 0)
    for value in (uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE):
        assert type(value) is int


def test_version_is_bytes_and_matches_version_info():
    assert type(uwsgi.version) is bytes
    assert re.fullmatch(rb"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", uwsgi.version)
    info = uwsgi.version_info
    assert type(info) is tuple and len(info) == 5
    major, minor, patch, revision, tag = info
    assert all(type(n) is int for n in (major, minor, patch, revision))
    assert revision == 0
    assert type(tag) is str
    text = f"{major}.{minor}.{patch}" + (f"-{tag}" if tag else "")
    assert text.encode() == uwsgi.version


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    # PEP 440 spells a pre-release differently; a plain release must match exactly.
    if not uwsgi.version_info[4]:
        assert version("uwsgi-rs") == uwsgi.version.decode()


def test_standalone_instance_values():
    assert uwsgi.buffer_size == 4096 and type(uwsgi.buffer_size) is int
    assert uwsgi.numproc == 1 and type(uwsgi.numproc) is int


def test_hostname_is_the_machines():
    import socket

    assert type(uwsgi.hostname) is bytes
    assert uwsgi.hostname == socket.gethostname().encode()


def test_started_on_is_the_import_time():
    # A fresh interpreter, so the import happens inside the measured window.
    code = "import time, uwsgi; print(int(time.time()), uwsgi.started_on)"
    before = int(time.time())
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    after = int(time.time())
    now_in_child, started_on = int(out[0]), int(out[1])
    assert before <= started_on <= now_in_child <= after
    assert type(uwsgi.started_on) is int


def test_module_is_the_rust_extension():
    # The package's __init__.py puts the extension itself in sys.modules["uwsgi"]: the
    # very object an embedding server registers, with no Python wrapper around it.
    assert sys.modules["uwsgi"] is uwsgi
    assert sys.modules["uwsgi.uwsgi"] is uwsgi
    assert uwsgi.__file__.endswith(".so")
    assert uwsgi.__doc__ and "uwsgi-rs" in uwsgi.__doc__
    # Attributes the application sets are seen by the Rust code (uwsgi.spooler).
    uwsgi.spooler = print
    assert sys.modules["uwsgi"].spooler is print
    del uwsgi.spooler
