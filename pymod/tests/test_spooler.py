"""spool, spooler_jobs and running jobs through uwsgi.spooler, standalone."""

import os
import pathlib
import time

import pytest

import uwsgi


@pytest.fixture
def spool_dir(tmp_path):
    directory = tmp_path / "spool"
    uwsgi.testing.configure(spooler=directory)
    return directory


def test_spool_writes_uwsgi_job_files(spool_dir):
    path = uwsgi.spool({b"task": b"resize", "size": "640x480", "n": 3, "body": b"BODY"})
    assert isinstance(path, bytes)
    path = pathlib.Path(os.fsdecode(path))
    assert path.parent == spool_dir.resolve()
    assert path.name.startswith("uwsgi_spoolfile_on_")
    # the file uWSGI writes: 11 LLLL 00 | vars | body
    data = path.read_bytes()
    assert data[0] == 17 and data.endswith(b"BODY")
    assert uwsgi.parsefile(str(path)) == {b"task": b"resize", b"size": b"640x480", b"n": b"3"}
    assert uwsgi.spooler_jobs() == [os.fsencode(path)]
    # keyword form, and the alias
    uwsgi.spool(job=b"kw")
    uwsgi.send_to_spooler({b"job": b"alias"})
    assert len(uwsgi.spooler_jobs()) == 3
    assert uwsgi.spoolers == (os.fsencode(spool_dir.resolve()),)


def test_run_spooler(spool_dir):
    seen = []

    def spooler(env):
        seen.append(env)
        assert uwsgi.i_am_the_spooler() is True
        return uwsgi.SPOOL_OK if env[b"job"] != b"again" else uwsgi.SPOOL_RETRY

    uwsgi.spooler = spooler
    uwsgi.spool({b"job": b"one", "body": b"payload"})
    uwsgi.spool({b"job": b"again"})
    assert uwsgi.i_am_the_spooler() is None
    report = uwsgi.testing.run_spooler()
    assert report == {"done": 1, "retried": 1, "ignored": 0, "malformed": 0, "skipped": 0}
    by_job = {env[b"job"]: env for env in seen}
    assert by_job[b"one"]["body"] == b"payload"
    assert by_job[b"one"]["spooler_task_name"].startswith(b"uwsgi_spoolfile_on_")
    assert "body" not in by_job[b"again"]
    assert len(uwsgi.spooler_jobs()) == 1  # the retried job stays
    # SPOOL_IGNORE keeps the file as well
    uwsgi.spooler = lambda env: uwsgi.SPOOL_IGNORE
    assert uwsgi.testing.run_spooler()["ignored"] == 1
    assert len(uwsgi.spooler_jobs()) == 1


def test_spooler_exceptions_propagate(spool_dir):
    def spooler(env):
        raise KeyError("bad job")

    uwsgi.spooler = spooler
    uwsgi.spool({b"a": b"1"})
    uwsgi.spool({b"a": b"2"})
    with pytest.raises(KeyError, match="bad job"):
        uwsgi.testing.run_spooler()
    assert len(uwsgi.spooler_jobs()) == 2  # kept, to retry
    uwsgi.spooler = lambda env: "not an int"  # counts as a retry
    assert uwsgi.testing.run_spooler()["retried"] == 2


def test_malformed_jobs_are_removed(spool_dir):
    (spool_dir / "uwsgi_spoolfile_on_x_1_2_3_4_5").write_bytes(b"\x11\x10\x00\x00\x05\x00ab")
    uwsgi.spooler = lambda env: uwsgi.SPOOL_OK
    assert uwsgi.testing.run_spooler()["malformed"] == 1
    assert uwsgi.spooler_jobs() == []


def test_delayed_jobs_with_the_manual_clock(tmp_path):
    uwsgi.testing.configure(spooler=tmp_path / "s", clock=int(time.time()))
    uwsgi.spooler = lambda env: uwsgi.SPOOL_OK
    uwsgi.spool({b"job": b"later", b"at": str(int(time.time()) + 3600).encode()})
    assert uwsgi.testing.run_spooler()["done"] == 0
    assert len(uwsgi.spooler_jobs()) == 1
    uwsgi.testing.advance_time(3601)
    assert uwsgi.testing.run_spooler()["done"] == 1


def test_spooler_get_task(spool_dir):
    path = uwsgi.spool({b"k": b"v", "body": b"b"})
    task = uwsgi.spooler_get_task(path)
    assert task[b"k"] == b"v" and task["body"] == b"b"
    assert uwsgi.spooler_get_task(b"/nonexistent") is None


def test_spool_errors(spool_dir):
    with pytest.raises(uwsgi.UwsgiValueError, match="dictionary"):
        uwsgi.spool()
    with pytest.raises(uwsgi.UwsgiValueError, match="dictionary"):
        uwsgi.spool([1, 2])
    with pytest.raises(TypeError):
        uwsgi.spool({b"k": object()})
    with pytest.raises(TypeError):
        uwsgi.spool({1: b"v"})
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to spool job"):
        uwsgi.spool({b"spooler": b"/not/a/spooler", b"k": b"v"})
    with pytest.raises(uwsgi.UwsgiValueError, match="priority"):
        uwsgi.spool({b"priority": b"../etc", b"k": b"v"})
    with pytest.raises(uwsgi.UwsgiError, match="uwsgi.spooler is not set"):
        uwsgi.testing.run_spooler()


def test_no_spooler():
    with pytest.raises(uwsgi.UwsgiValueError, match="no spooler configured"):
        uwsgi.spool({b"k": b"v"})
    assert uwsgi.spooler_jobs() == []
    assert uwsgi.spoolers == ()
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.testing.run_spooler()


def test_spooler_process_facts(spool_dir):
    assert uwsgi.spooler_pid() == 0
    assert uwsgi.spooler_pids() == [0]
    assert uwsgi.set_spooler_frequency(5) is True
    assert uwsgi.testing.info()["spooler_frequency"] == 5
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.set_spooler_frequency(0)


def test_jobs_spooled_here_run_in_real_uwsgi(real_uwsgi_server):
    # The same file format: point the standalone spooler at uWSGI's spool directory.
    uwsgi.testing.configure(spooler=real_uwsgi_server.spool)
    uwsgi.spool({b"job": b"from-pymod", b"payload": b"standalone"})
    assert real_uwsgi_server.wait_for_mark("spool-from-pymod") == b"standalone"
