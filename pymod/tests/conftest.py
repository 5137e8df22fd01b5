"""Fixtures: fresh standalone state for every test, and the servers the client tests talk
to — uwsgi-rs's own `uwsgi-server` and real uWSGI 2.0.

* uwsgi-server: `$UWSGI_RS_SERVER`, else target/release/uwsgi-server, else
  target/debug/uwsgi-server (pymod/test.sh builds the release one).
* uwsgi-server hosting peers/uwsgi_app.py (`uwsgi_rs_python_server`), for what needs a
  Python application on the uwsgi-rs side (`message_manager_marshal`).
* uWSGI 2.0: `$UWSGI_BIN`, else target/peers/uwsgi-venv/bin/uwsgi (made by
  scripts/setup-peers.sh). Missing, the tests that need it fail with a loud message,
  unless UWSGI_SKIP_PEERS=1 turns them into skips.

Both servers start once per session, on a free TCP port of 127.0.0.1 and a unix socket
in a temp directory, with a cache `default` (100 items of 4096 bytes) and a spooler, and
are stopped (their whole process group) when the session ends.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import uwsgi
import uwsgi.testing

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_ping(family, address):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(address)
            s.sendall(b"\x64\x00\x00\x00")
            reply = s.recv(4)
            return len(reply) == 4 and reply[0] == 0x64
    except OSError:
        return False


class Server:
    """A running server: `tcp` ("127.0.0.1:PORT"), `unix` (socket path), `spool` (its
    spool directory), `marks` (where uWSGI's test app leaves marker files)."""

    def __init__(self, name, command, directory, env=None):
        self.name = name
        self.dir = directory
        self.port = free_port()
        self.tcp = f"127.0.0.1:{self.port}"
        self.unix = str(directory / "server.sock")
        self.spool = directory / "spool"
        self.marks = directory / "marks"
        self.spool.mkdir()
        self.marks.mkdir()
        self.log = directory / "server.log"
        full_env = dict(os.environ, **(env or {}))
        self.process = subprocess.Popen(
            command(self),
            stdin=subprocess.DEVNULL,
            stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not (
            raw_ping(socket.AF_INET, ("127.0.0.1", self.port))
            and raw_ping(socket.AF_UNIX, self.unix)
        ):
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} not ready after 30 s:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def wait_for_mark(self, name, timeout=10):
        path = self.marks / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path.read_bytes()
            time.sleep(0.05)
        return None

    def wait_for_log(self, text, count=1, timeout=10):
        """Whether the server's log holds `text` at least `count` times within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text(errors="replace").count(text) >= count:
                return True
            time.sleep(0.05)
        return False

    def log_count(self, text):
        return self.log.read_text(errors="replace").count(text)

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __repr__(self):
        return f"<{self.name} {self.tcp}>"


def find_uwsgi_rs():
    for candidate in (
        os.environ.get("UWSGI_RS_SERVER"),
        ROOT / "target/release/uwsgi-server",
        ROOT / "target/debug/uwsgi-server",
    ):
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    return None


def find_uwsgi():
    for candidate in (
        os.environ.get("UWSGI_BIN"),
        ROOT / "target/peers/uwsgi-venv/bin/uwsgi",
    ):
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    return None


def unavailable(what, how):
    message = (
        f"\n{'!' * 72}\n!! {what} is not available: {how}\n"
        f"!! Set UWSGI_SKIP_PEERS=1 to skip these tests instead.\n{'!' * 72}\n"
    )
    if os.environ.get("UWSGI_SKIP_PEERS") == "1":
        sys.stderr.write(message)
        pytest.skip(f"{what} unavailable (UWSGI_SKIP_PEERS=1)")
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def uwsgi_rs_server():
    binary = find_uwsgi_rs()
    if binary is None:
        unavailable("uwsgi-server", "build it with `cargo build --release -p uwsgi-server`")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="pymod-uwsgi-rs-"))

    def command(server):
        return [
            binary,
            "--socket", server.tcp,
            "--socket", server.unix,
            "--processes", "4",
            "--cache2", "name=default,items=100,blocksize=4096",
            "--cache2", "name=second,items=10,blocksize=64",
            "--spooler", str(server.spool),
            "--spooler-frequency", "1",
        ]

    server = Server("uwsgi-rs", command, directory)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def real_uwsgi_server():
    binary = find_uwsgi()
    if binary is None:
        unavailable("real uWSGI 2.0", "run `bash scripts/setup-peers.sh` or set UWSGI_BIN")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="pymod-uwsgi-"))
    fastcgi = free_port()

    def command(server):
        return [
            binary,
            "--master", "--processes", "2",
            "--socket", server.unix,
            "--socket", server.tcp,
            "--fastcgi-socket", f"127.0.0.1:{fastcgi}",
            "--wsgi-file", str(HERE / "peers" / "uwsgi_app.py"),
            "--cache2", "name=default,items=100,blocksize=4096",
            "--cache2", "name=second,items=10,blocksize=64",
            "--spooler", str(server.spool),
            "--spooler-frequency", "1",
        ]

    server = Server(
        "uWSGI",
        command,
        directory,
        env={"PYMOD_TEST_MARKS": str(directory / "marks")},
    )
    server.fastcgi = f"127.0.0.1:{fastcgi}"
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def uwsgi_rs_python_server():
    """uwsgi-rs hosting peers/uwsgi_app.py, the Python application real uWSGI loads."""
    binary = find_uwsgi_rs()
    if binary is None:
        unavailable("uwsgi-server", "build it with `cargo build --release -p uwsgi-server`")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="pymod-uwsgi-rs-python-"))

    def command(server):
        return [
            binary,
            "--socket", server.tcp,
            "--socket", server.unix,
            "--wsgi-file", str(HERE / "peers" / "uwsgi_app.py"),
        ]

    server = Server(
        "uwsgi-rs+python",
        command,
        directory,
        env={"PYMOD_TEST_MARKS": str(directory / "marks")},
    )
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["uwsgi-rs", "uWSGI"])
def server(request):
    """Each client test runs against both servers."""
    if request.param == "uwsgi-rs":
        return request.getfixturevalue("uwsgi_rs_server")
    return request.getfixturevalue("real_uwsgi_server")


@pytest.fixture(params=["tcp", "unix"])
def address(request, server):
    """Both sockets of both servers."""
    return server.tcp if request.param == "tcp" else server.unix


@pytest.fixture(autouse=True)
def fresh_uwsgi():
    """Every test starts on the standalone defaults, with nothing registered."""
    uwsgi.testing.configure()
    yield
    uwsgi.testing.configure()
    for hook in ("spooler", "post_fork_hook"):
        if hook in uwsgi.__dict__:
            delattr(uwsgi, hook)
