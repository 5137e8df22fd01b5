"""Signals, timers, crons and file monitors in one process."""

import logging
import os
import threading
import time

import pytest

import uwsgi


def test_register_and_raise():
    got = []
    assert uwsgi.signal_registered(9) is None
    assert uwsgi.register_signal(9, "workers", got.append) is None
    assert uwsgi.signal_registered(9) is True
    assert uwsgi.signal(9) is None
    assert got == [9]  # delivered at once, in this thread
    # every target is this process, standalone
    uwsgi.register_signal(10, "spooler", got.append)
    uwsgi.register_signal(11, "", got.append)
    uwsgi.signal(10)
    uwsgi.signal(11)
    assert got == [9, 10, 11]
    assert uwsgi.testing.info()["signals"] == [9, 10, 11]


def test_reregistering_replaces_the_handler():
    got = []
    uwsgi.register_signal(3, "worker", lambda n: got.append(("first", n)))
    uwsgi.register_signal(3, "worker", lambda n: got.append(("second", n)))
    uwsgi.signal(3)
    assert got == [("second", 3)]


def test_handler_exceptions_propagate():
    def handler(num):
        raise RuntimeError(f"handler saw {num}")

    uwsgi.register_signal(4, "", handler)
    with pytest.raises(RuntimeError, match="handler saw 4"):
        uwsgi.signal(4)


def test_unregistered_and_unsupported_signals_are_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="uwsgi"):
        uwsgi.signal(200)
    assert "error managing signal 200" in caplog.text
    got = []
    uwsgi.register_signal(201, "cluster", got.append)
    with caplog.at_level(logging.WARNING, logger="uwsgi"):
        uwsgi.signal(201)
    assert got == []
    assert "unsupported signal target" in caplog.text


def test_register_signal_errors():
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to register signal"):
        uwsgi.register_signal(1, "x" * 64, print)
    with pytest.raises(TypeError):
        uwsgi.register_signal(1, "", "not callable")
    with pytest.raises(OverflowError):
        uwsgi.register_signal(256, "", print)


def test_signal_wait_and_received():
    assert uwsgi.signal_received() == -1
    uwsgi.register_signal(20, "", lambda n: None)
    uwsgi.register_signal(21, "", lambda n: None)

    def raiser():
        time.sleep(0.1)
        uwsgi.signal(20)
        time.sleep(0.05)
        uwsgi.signal(21)

    thread = threading.Thread(target=raiser)
    thread.start()
    assert uwsgi.signal_wait(21, timeout=5) == b""
    thread.join()
    assert uwsgi.signal_received() == 21
    with pytest.raises(uwsgi.UwsgiTimeoutError):
        uwsgi.signal_wait(timeout=0.1)
    assert uwsgi.signal_received() == -1


def test_timers_with_the_manual_clock():
    uwsgi.testing.configure(clock=1_700_000_000)
    got = []
    for num in (1, 2, 3):
        uwsgi.register_signal(num, "", got.append)
    uwsgi.add_timer(1, 10)
    uwsgi.add_ms_timer(2, 2500)
    uwsgi.add_rb_timer(3, 5, 2)
    assert uwsgi.testing.run_timers() == []
    assert uwsgi.testing.advance_time(5) == [2, 3]
    assert uwsgi.testing.advance_time(5) == [1, 2, 3]
    # the rb timer stopped after 2 iterations
    assert uwsgi.testing.advance_time(10) == [1, 2]
    assert got == [2, 3, 1, 2, 3, 1, 2]


def test_cron():
    # 2023-11-14 22:13:20 UTC is a Tuesday
    uwsgi.testing.configure(clock=1_700_000_000)
    got = []
    uwsgi.register_signal(30, "", got.append)
    local = time.localtime(1_700_000_000)
    assert uwsgi.add_cron(30, local.tm_min + 1 if local.tm_min < 59 else 0, -1, -1, -1, -1) is True
    assert uwsgi.testing.run_timers() == []
    assert uwsgi.testing.advance_time(60) == [30]
    assert got == [30]


def test_timer_errors():
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to add timer"):
        uwsgi.add_timer(1, 0)
    for _ in range(64):
        uwsgi.add_timer(1, 1)
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.add_timer(1, 1)
    with pytest.raises(uwsgi.UwsgiValueError, match="probe"):
        uwsgi.add_probe(1, "probeconnect", "addr=127.0.0.1:80")
    with pytest.raises(uwsgi.UwsgiValueError, match="manual clock"):
        uwsgi.testing.advance_time(1)


def test_file_monitor(tmp_path):
    path = tmp_path / "watched"
    path.write_text("one")
    got = []
    uwsgi.register_signal(40, "", got.append)
    assert uwsgi.add_file_monitor(40, str(path)) is None
    assert uwsgi.testing.run_timers() == []
    os.utime(path, (1, 1))
    assert uwsgi.testing.run_timers() == [40]
    assert uwsgi.testing.run_timers() == []
    path.unlink()
    assert uwsgi.testing.run_timers() == [40]
    assert got == [40, 40]
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.add_file_monitor(40, "/" + "x" * 300)


def test_reset_forgets_handlers_and_timers():
    uwsgi.register_signal(5, "", print)
    uwsgi.add_timer(5, 1)
    uwsgi.testing.reset()
    assert uwsgi.signal_registered(5) is None
    assert uwsgi.testing.info()["signals"] == []
