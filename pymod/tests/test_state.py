"""The in-process parts: cache, queue, shared areas, locks, RPC registry."""

import struct
import threading
import time

import pytest

import uwsgi


# --- cache -------------------------------------------------------------------------


def test_default_cache():
    assert uwsgi.cache_get(b"k") is None
    assert uwsgi.cache_exists("k") is None
    assert uwsgi.cache_set(b"k", b"v") is True
    assert uwsgi.cache_set(b"k", b"other") is None  # set does not overwrite
    assert uwsgi.cache_get("k") == b"v"
    assert uwsgi.cache_exists(b"k") is True
    assert uwsgi.cache_update(b"k", b"v2", 10) is True
    assert uwsgi.cache_get(b"k", "default") == b"v2"
    assert uwsgi.cache_keys() == [b"k"]
    assert uwsgi.cache_del(b"k") is True
    assert uwsgi.cache_del(b"k") is None
    assert uwsgi.cache_keys("default") == []


def test_cache_refusals_are_none():
    assert uwsgi.cache_set(b"empty", b"") is None
    assert uwsgi.cache_set(b"", b"v") is None
    assert uwsgi.cache_set(b"big", b"x" * 65537) is None
    assert uwsgi.cache_update(b"big", b"x" * 65536) is True


def test_named_caches_and_clear():
    uwsgi.testing.configure(
        caches=["name=one,items=10,blocksize=64", "name=two,items=3,blocksize=64"]
    )
    assert uwsgi.cache_set(b"a", b"1") is True  # the first cache is the default
    assert uwsgi.cache_get(b"a", "one") == b"1"
    assert uwsgi.cache_get(b"a", "two") is None
    assert uwsgi.cache_set(b"a", b"2", 0, "two") is True
    # items=3: slot 0 is reserved, two keys fit
    assert uwsgi.cache_set(b"b", b"2", 0, "two") is True
    assert uwsgi.cache_set(b"c", b"2", 0, "two") is None
    assert uwsgi.cache_clear("two") is True
    assert uwsgi.cache_keys("two") == []
    assert uwsgi.cache_get(b"a", "one") == b"1"
    with pytest.raises(uwsgi.UwsgiValueError, match="no local cache named"):
        uwsgi.cache_get(b"a", "three")


def test_no_cache_at_all():
    uwsgi.testing.configure(caches=[])
    with pytest.raises(uwsgi.UwsgiValueError, match="no local uWSGI cache"):
        uwsgi.cache_get(b"a")


def test_cache_math():
    assert uwsgi.cache_inc(b"n") is True
    assert uwsgi.cache_inc(b"n", 5) is True
    assert uwsgi.cache_num(b"n") == 6
    assert uwsgi.cache_get(b"n") == struct.pack("=q", 6)
    assert uwsgi.cache_dec(b"n", 2) is True
    assert uwsgi.cache_mul(b"n", 10) is True
    assert uwsgi.cache_div(b"n", 3) is True
    assert uwsgi.cache_num(b"n") == 13
    assert uwsgi.cache_mul(b"n") is True and uwsgi.cache_num(b"n") == 26
    assert uwsgi.cache_div(b"n", 0) is True and uwsgi.cache_num(b"n") == 0
    assert uwsgi.cache_num(b"missing") == 0
    uwsgi.cache_set(b"text", b"abc")
    assert uwsgi.cache_num(b"text") == 0  # not 8 bytes


def test_cache_expiry_with_the_manual_clock():
    uwsgi.testing.configure(clock=1_700_000_000)
    assert uwsgi.testing.now() == 1_700_000_000
    uwsgi.cache_set(b"short", b"v", 10)
    uwsgi.cache_set(b"forever", b"v")
    uwsgi.testing.advance_time(5)
    assert uwsgi.cache_get(b"short") == b"v"
    uwsgi.testing.advance_time(6)
    assert uwsgi.cache_get(b"short") is None
    assert uwsgi.cache_get(b"forever") == b"v"


def test_cache_argument_types():
    with pytest.raises(TypeError):
        uwsgi.cache_get(42)
    with pytest.raises(TypeError):
        uwsgi.cache_set(b"k", 42)
    assert uwsgi.cache_set(bytearray(b"k"), memoryview(b"v")) is True
    assert uwsgi.cache_get(b"k") == b"v"


# --- queue -------------------------------------------------------------------------


def test_queue_fifo_lifo_and_slots():
    assert uwsgi.queue_size == 100
    assert uwsgi.queue_pull() is None
    assert uwsgi.queue_push(b"one") is True
    assert uwsgi.queue_push("two") is True
    assert uwsgi.queue_slot() == 2
    assert uwsgi.queue_last() == b"two"
    assert uwsgi.queue_last(3) == [b"two", b"one", None]
    assert uwsgi.queue_get(0) == b"one"
    assert uwsgi.queue_pull() == b"one"
    assert uwsgi.queue_pull_slot() == 1
    assert uwsgi.queue_pop() == b"two"
    assert uwsgi.queue_pop() is None
    assert uwsgi.queue_set(5, b"five") is True
    assert uwsgi.queue_get(5) == b"five"
    assert uwsgi.queue_get(100) is None
    assert uwsgi.queue_get(-1) is None
    assert uwsgi.queue_set(100, b"x") is None
    assert uwsgi.queue_push(b"") is None
    assert uwsgi.queue_push(b"x" * 8177) is None  # blocksize 8192 - 16


def test_queue_configuration():
    uwsgi.testing.configure(queue=2, queue_blocksize=4096 + 16 * 0)
    assert uwsgi.queue_size == 2
    uwsgi.queue_push(b"a")
    uwsgi.queue_push(b"b")
    uwsgi.queue_push(b"c")  # overwrites the oldest
    assert uwsgi.queue_last(5) == [b"c", b"b"]
    uwsgi.testing.configure(queue=0)
    assert uwsgi.queue_size == 0
    assert uwsgi.queue_push(b"a") is None
    assert uwsgi.queue_pull() is None
    assert uwsgi.queue_last() is None
    assert uwsgi.queue_slot() == 0
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.testing.configure(queue=3, queue_blocksize=100)


# --- shared areas ------------------------------------------------------------------


def test_sharedarea_bytes_and_integers():
    assert uwsgi.sharedarea_read(0, 0, 4) == b"\0\0\0\0"
    assert uwsgi.sharedarea_write(0, 10, b"hello") is None
    assert uwsgi.sharedarea_read(0, 10, 5) == b"hello"
    assert len(uwsgi.sharedarea_read(0, 4000)) == 96  # len 0: to the end
    uwsgi.sharedarea_write8(0, 0, -5)
    assert uwsgi.sharedarea_read8(0, 0) == -5
    assert uwsgi.sharedarea_readbyte(0, 0) == -5
    uwsgi.sharedarea_writebyte(0, 1, 7)
    assert uwsgi.sharedarea_read8(0, 1) == 7
    uwsgi.sharedarea_write16(0, 2, 1234)
    assert uwsgi.sharedarea_read16(0, 2) == 1234
    uwsgi.sharedarea_write32(0, 100, -70000)
    assert uwsgi.sharedarea_read32(0, 100) == -70000
    uwsgi.sharedarea_write64(0, 200, 2**40)
    assert uwsgi.sharedarea_read64(0, 200) == 2**40
    assert uwsgi.sharedarea_readlong(0, 200) == 2**40
    uwsgi.sharedarea_writelong(0, 300, 5)
    uwsgi.sharedarea_inc64(0, 300)
    uwsgi.sharedarea_inclong(0, 300, 10)
    assert uwsgi.sharedarea_read64(0, 300) == 16
    uwsgi.sharedarea_dec64(0, 300, 6)
    assert uwsgi.sharedarea_read64(0, 300) == 10
    uwsgi.sharedarea_write32(0, 400, 1)
    uwsgi.sharedarea_inc32(0, 400, 2)
    uwsgi.sharedarea_dec32(0, 400)
    assert uwsgi.sharedarea_read32(0, 400) == 2
    assert struct.unpack("=i", uwsgi.sharedarea_read(0, 400, 4))[0] == 2
    assert uwsgi.sharedarea_update(0) is None
    # the last byte is reachable (2.0's bounds)
    uwsgi.sharedarea_write(0, 4095, b"z")
    assert uwsgi.sharedarea_read(0, 4095, 1) == b"z"


@pytest.mark.parametrize(
    "call",
    [
        lambda: uwsgi.sharedarea_read(0, 4096, 1),
        lambda: uwsgi.sharedarea_read(0, 4090, 10),
        lambda: uwsgi.sharedarea_write(0, 4095, b"zz"),
        lambda: uwsgi.sharedarea_read64(0, 4090),
        lambda: uwsgi.sharedarea_read(1, 0, 1),
        lambda: uwsgi.sharedarea_read(-1, 0, 1),
        lambda: uwsgi.sharedarea_read(0, -1, 1),
        lambda: uwsgi.sharedarea_inc64(0, 4092),
        lambda: uwsgi.sharedarea_memoryview(1),
        lambda: uwsgi.sharedarea_memoryview(-1),
        lambda: uwsgi.sharedarea_object(0),
        lambda: uwsgi.sharedarea_unlock(0),
    ],
)
def test_sharedarea_errors_are_value_errors(call):
    with pytest.raises(uwsgi.UwsgiValueError) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_sharedarea_configuration_and_locks():
    uwsgi.testing.configure(sharedareas=[1, "size=10000"])
    assert uwsgi.testing.info()["sharedareas"] == [4096, 12288]
    uwsgi.sharedarea_write(1, 12287, b"!")
    uwsgi.sharedarea_rlock(1)
    uwsgi.sharedarea_rlock(1)
    uwsgi.sharedarea_unlock(1)
    uwsgi.sharedarea_unlock(1)
    uwsgi.sharedarea_wlock(1)
    order = []

    def reader():
        uwsgi.sharedarea_rlock(1)
        order.append("read")
        uwsgi.sharedarea_unlock(1)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    order.append("write done")
    uwsgi.sharedarea_unlock(1)
    thread.join(5)
    assert order == ["write done", "read"]


# --- locks -------------------------------------------------------------------------


def test_locks():
    assert uwsgi.is_locked() is False
    uwsgi.lock()
    assert uwsgi.is_locked(0) is True
    with pytest.raises(uwsgi.UwsgiValueError, match="deadlock"):
        uwsgi.lock()
    uwsgi.unlock()
    assert uwsgi.is_locked() is False
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.unlock()
    with pytest.raises(uwsgi.UwsgiValueError, match="Invalid lock number"):
        uwsgi.lock(1)
    with pytest.raises(ValueError, match="Invalid lock number"):
        uwsgi.is_locked(-1)


def test_locks_between_threads():
    uwsgi.testing.configure(locks=3)
    uwsgi.lock(3)
    got = []

    def contender():
        uwsgi.lock(3)  # waits without the GIL
        got.append(time.monotonic())
        uwsgi.unlock(3)

    thread = threading.Thread(target=contender)
    thread.start()
    time.sleep(0.2)
    released = time.monotonic()
    assert got == []
    uwsgi.unlock(3)
    thread.join(5)
    assert got and got[0] >= released
    # another thread's lock cannot be released from here
    event, done = threading.Event(), threading.Event()

    def holder():
        uwsgi.lock(2)
        event.set()
        done.wait(5)
        uwsgi.unlock(2)

    thread = threading.Thread(target=holder)
    thread.start()
    event.wait(5)
    with pytest.raises(uwsgi.UwsgiValueError, match="another"):
        uwsgi.unlock(2)
    done.set()
    thread.join(5)


# --- RPC registry ------------------------------------------------------------------


def test_register_and_call():
    calls = []

    def add(a, b):
        calls.append((a, b))
        return str(int(a) + int(b))

    assert uwsgi.register_rpc("add", add) is True
    assert uwsgi.register_rpc(b"echo", lambda *args: b"|".join(args), 3) is True
    assert uwsgi.rpc_list() == (b"add", b"echo")
    assert uwsgi.call("add", b"2", "3") == b"5"
    assert calls == [(b"2", b"3")]
    assert uwsgi.rpc(None, "echo", b"a", b"b") == b"a|b"
    assert uwsgi.rpc("", b"echo") == b""
    assert uwsgi.call("missing") is None
    # re-registering replaces
    uwsgi.register_rpc("add", lambda a, b: b"replaced")
    assert uwsgi.call("add", b"1", b"1") == b"replaced"
    assert uwsgi.rpc_list() == (b"add", b"echo")


def test_rpc_function_results_and_exceptions():
    uwsgi.register_rpc("none", lambda: None)
    uwsgi.register_rpc("int", lambda: 5)

    class Boom(Exception):
        pass

    def boom():
        raise Boom("from the rpc function")

    uwsgi.register_rpc("boom", boom)
    assert uwsgi.call("none") == b""
    with pytest.raises(TypeError, match="bytes, str or None"):
        uwsgi.call("int")
    with pytest.raises(Boom, match="from the rpc function"):
        uwsgi.call("boom")


def test_register_rpc_errors():
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to register"):
        uwsgi.register_rpc("", lambda: b"")
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.register_rpc("x" * 256, lambda: b"")
    with pytest.raises(TypeError):
        uwsgi.register_rpc("f", "not callable")
    uwsgi.testing.configure(rpc_max=2)
    uwsgi.register_rpc("a", lambda: b"")
    uwsgi.register_rpc("b", lambda: b"")
    with pytest.raises(uwsgi.UwsgiValueError, match="full"):
        uwsgi.register_rpc("c", lambda: b"")
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.call("a", *([b""] * 255))


def test_rpc_functions_serve_remote_calls_embedded_only():
    # Standalone, a registered function is local: a remote server does not see it.
    uwsgi.register_rpc("local_only", lambda: b"x")
    assert uwsgi.testing.info()["rpc"] == [b"local_only"]


def test_sharedarea_memoryview_is_the_area_itself():
    # uWSGI 2.0: a writable memoryview over the whole area; writes through it are the
    # area's bytes, and the area's writes show through it.
    view = uwsgi.sharedarea_memoryview(0)
    assert isinstance(view, memoryview)
    assert not view.readonly and len(view) == 4096 and view.format == "B"
    view[10:15] = b"hello"
    assert uwsgi.sharedarea_read(0, 10, 5) == b"hello"
    uwsgi.sharedarea_write(0, 100, b"xyz")
    assert bytes(view[100:103]) == b"xyz"
    view[4095] = 7
    assert uwsgi.sharedarea_read8(0, 4095) == 7
    # The view keeps its memory alive after the instance is replaced.
    uwsgi.testing.reset()
    view[0] = 65
    assert bytes(view[0:1]) == b"A"
    assert uwsgi.sharedarea_read(0, 0, 1) == b"\x00", "a new instance, a new area"
