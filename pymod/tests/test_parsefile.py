"""uwsgi.parsefile: one uwsgi packet in a file -> dict of bytes, or None like uWSGI."""

import logging
import os
import pathlib
import struct

import pytest

import uwsgi


def vars_block(pairs):
    out = b""
    for key, value in pairs:
        out += struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    return out


def packet(modifier1, block, modifier2=0):
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block


@pytest.fixture
def write(tmp_path):
    counter = iter(range(1_000_000))

    def write(data: bytes) -> str:
        path = tmp_path / f"file{next(counter)}"
        path.write_bytes(data)
        return str(path)

    return write


def test_spool_file_as_uwsgi_writes_it(write):
    # uWSGI stores spool({'x': '1'}) as exactly these bytes.
    path = write(bytes.fromhex("11 0600 00 0100 78 0100 31"))
    assert uwsgi.parsefile(path) == {b"x": b"1"}


def test_spool_file_with_a_body(write):
    block = vars_block([(b"task", b"resize"), (b"size", b"640x480"), (b"empty", b"")])
    path = write(packet(17, block) + b"\x00\x01binary body that is not vars")
    result = uwsgi.parsefile(path)
    assert result == {b"task": b"resize", b"size": b"640x480", b"empty": b""}
    assert all(type(k) is bytes and type(v) is bytes for k, v in result.items())


def test_request_file(write):
    block = vars_block(
        [
            (b"REQUEST_METHOD", b"POST"),
            (b"PATH_INFO", b"/upload"),
            (b"CONTENT_LENGTH", b"5"),
            (b"HTTP_X", b"first"),
            (b"HTTP_X", b"last"),
        ]
    )
    path = write(packet(0, block) + b"hello")
    result = uwsgi.parsefile(path)
    # A repeated key keeps its last value, in first-seen position (a dict filled in order).
    assert list(result) == [b"REQUEST_METHOD", b"PATH_INFO", b"CONTENT_LENGTH", b"HTTP_X"]
    assert result[b"HTTP_X"] == b"last"
    assert result[b"CONTENT_LENGTH"] == b"5"


def test_modifier2_is_ignored(write):
    assert uwsgi.parsefile(write(packet(17, vars_block([(b"a", b"b")]), 99))) == {
        b"a": b"b"
    }


def test_empty_packet_is_an_empty_dict(write):
    assert uwsgi.parsefile(write(packet(0, b""))) == {}
    assert uwsgi.parsefile(write(packet(17, b""))) == {}


def test_no_buffer_size_or_var_count_limit(write):
    pairs = [(f"key{i}".encode(), b"v" * 20) for i in range(300)]
    block = vars_block(pairs)
    assert len(block) > uwsgi.buffer_size
    assert uwsgi.parsefile(write(packet(17, block))) == dict(pairs)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty-file"),
        pytest.param(b"\x11\x06", id="short-header"),
        pytest.param(bytes.fromhex("11 0600 00 0100 78"), id="short-block"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-text"),
        pytest.param(packet(100, b""), id="ping-modifier"),
        pytest.param(packet(111, vars_block([(b"a", b"b")])), id="cache-modifier"),
        pytest.param(packet(5, vars_block([(b"a", b"b")])), id="psgi-modifier"),
        pytest.param(packet(17, bytes.fromhex("0000 0100 31")), id="empty-key"),
        pytest.param(packet(17, bytes.fromhex("0100 78 0100 31 01")), id="stray-byte"),
        pytest.param(packet(17, bytes.fromhex("0500 6162 63")), id="key-past-end"),
        pytest.param(packet(17, bytes.fromhex("0100 78 0500 31")), id="value-past-end"),
        # uWSGI resyncs after this over-long key and finds {b"x": b""}; see docs/python.md.
        pytest.param(packet(17, bytes.fromhex("0500 0100 78 0000")), id="uwsgi-resync-quirk"),
        pytest.param(b"\xff" + os.urandom(64), id="random-bytes"),
    ],
)
def test_not_a_request_or_spool_packet_is_none(write, data):
    assert uwsgi.parsefile(write(data)) is None


def test_unreadable_files_are_none_like_uwsgi(tmp_path):
    # uWSGI logs the open()/read() error and returns None; it raises nothing.
    assert uwsgi.parsefile(str(tmp_path / "missing")) is None
    assert uwsgi.parsefile(str(tmp_path)) is None  # a directory: read() fails
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked"
        locked.write_bytes(bytes.fromhex("11 0600 00 0100 78 0100 31"))
        locked.chmod(0)
        assert uwsgi.parsefile(str(locked)) is None


def test_failure_reason_goes_to_the_uwsgi_logger(tmp_path, caplog):
    missing = str(tmp_path / "missing")
    with caplog.at_level(logging.DEBUG, logger="uwsgi"):
        assert uwsgi.parsefile(missing) is None
    (record,) = [r for r in caplog.records if r.name == "uwsgi"]
    assert record.levelno == logging.DEBUG
    assert "missing" in record.getMessage()
    assert "cannot read the file" in record.getMessage()


def test_filename_types(write):
    path = write(bytes.fromhex("11 0600 00 0100 78 0100 31"))
    expected = {b"x": b"1"}
    assert uwsgi.parsefile(path) == expected
    assert uwsgi.parsefile(os.fsencode(path)) == expected
    assert uwsgi.parsefile(pathlib.Path(path)) == expected


def test_bad_filename_arguments():
    with pytest.raises(TypeError):
        uwsgi.parsefile(42)
    with pytest.raises(TypeError):
        uwsgi.parsefile()
    with pytest.raises(TypeError):
        uwsgi.parsefile(filename="/tmp/x")  # positional only, as in uWSGI
    with pytest.raises(ValueError):
        uwsgi.parsefile("/tmp/a\0b")
