"""Process facts, logging, and the functions that need a server (NoServerError)."""

import os
import socket
import time

import pytest

import uwsgi


def test_single_process_answers():
    assert uwsgi.worker_id() == 1
    assert uwsgi.mule_id() == 0
    assert uwsgi.masterpid() == 0
    assert uwsgi.total_requests() == 0
    assert uwsgi.request_id() == 0
    assert uwsgi.ready() is True
    assert uwsgi.numproc == 1 and uwsgi.cores == 1 and uwsgi.has_threads == 1
    assert uwsgi.loop is None and uwsgi.unbit is None and uwsgi.is_a_reload is False
    assert uwsgi.sockets == [] and uwsgi.magic_table == {}
    assert uwsgi.applications is None and uwsgi.message_manager_marshal is None
    assert uwsgi.env is None and uwsgi.start_response is None
    (worker,) = uwsgi.workers()
    assert worker["id"] == 1 and worker["pid"] == os.getpid()
    assert worker["status"] == b"idle" and worker["apps"] == ()
    rss, vsz = uwsgi.mem()
    assert 0 < rss <= vsz
    assert abs(uwsgi.micros() / 1e6 - time.time()) < 5


def test_opt_is_configured_in_place():
    opt = uwsgi.opt
    assert opt == {}
    uwsgi.testing.configure(opt={"socket": b"127.0.0.1:3031", "master": True})
    assert uwsgi.opt is opt
    assert opt == {"socket": b"127.0.0.1:3031", "master": True}
    uwsgi.testing.configure()
    assert opt == {}


def test_log_goes_to_stderr(capsys):
    assert uwsgi.log("hello log") is True
    assert uwsgi.log(b"bytes line") is True
    err = capsys.readouterr().err
    assert err == "hello log\nbytes line\n"
    assert uwsgi.logsize() == len(err)
    assert uwsgi.log_this_request() is None


def test_logvars():
    assert uwsgi.get_logvar("user") is None
    uwsgi.set_logvar("user", "alice")
    uwsgi.set_logvar(b"user", b"bob")
    assert uwsgi.get_logvar("user") == b"bob"
    uwsgi.testing.reset()
    assert uwsgi.get_logvar("user") is None


def test_warning_message_and_alarm(caplog):
    assert uwsgi.set_warning_message("disk almost full") is True
    assert uwsgi.testing.info()["warning_message"] == b"disk almost full"
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.set_warning_message("x" * 81)
    uwsgi.alarm("pager", "it broke")
    assert "alarm pager: it broke" in caplog.text


def test_options_slots():
    assert uwsgi.get_option(5) == 0
    assert uwsgi.set_option(5, 30) == 30
    assert uwsgi.getoption(5) == 30
    assert uwsgi.setoption(6, 1) == 1
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.get_option(256)
    uwsgi.testing.reset()
    assert uwsgi.get_option(5) == 0


def test_snmp_values_are_kept():
    assert uwsgi.snmp_set_counter32(1, 10) is True
    assert uwsgi.snmp_incr_counter32(1, 5) is True
    assert uwsgi.testing.snmp_value(1) == 15
    uwsgi.snmp_set_counter64(2, 2**40)
    uwsgi.snmp_decr_counter64(2)
    assert uwsgi.testing.snmp_value(2) == 2**40 - 1
    uwsgi.snmp_set_gauge(3, 7)
    uwsgi.snmp_incr_gauge(3)
    uwsgi.snmp_decr_gauge(3, 3)
    assert uwsgi.testing.snmp_value(3) == 5
    uwsgi.snmp_incr_counter64(4)
    uwsgi.snmp_decr_counter32(5)
    # uWSGI keeps 64 bits whatever the type (an SNMP Counter32 answer carries the low
    # 32 bits): 0 - 1 is stored as 2**64 - 1.
    assert uwsgi.testing.snmp_value(5) == 2**64 - 1
    assert uwsgi.snmp_set_community("public") is True
    # A slot outside 1..=100 is refused with None, as in uWSGI.
    assert uwsgi.snmp_set_gauge(101, 1) is None


def test_harmless_single_process_answers():
    assert uwsgi.accepting() is None
    assert uwsgi.accepting(0) is None and uwsgi.accepting(True) is None
    assert uwsgi.set_user_harakiri(30) is None and uwsgi.set_user_harakiri(0) is None
    assert uwsgi.sorry_i_need_to_block() is None
    assert uwsgi.has_hook(1) is None
    assert uwsgi.suspend() is True and uwsgi.green_schedule() is True
    start = time.monotonic()
    assert uwsgi.async_sleep(0.05) == b""
    assert time.monotonic() - start >= 0.04
    assert uwsgi.farm_get_msg() is None and uwsgi.in_farm() is None
    assert uwsgi.cluster() is None
    assert uwsgi.cluster_nodes() == []
    assert uwsgi.cluster_best_node() is None
    assert uwsgi.cluster_node_name() == socket.gethostname().encode()
    assert uwsgi.cluster_node_name("127.0.0.1:3031") is None


def test_setprocname():
    before = open("/proc/self/comm", "rb").read()
    try:
        uwsgi.setprocname("pymod-test-name-long")
        assert open("/proc/self/comm", "rb").read() == b"pymod-test-name\n"
    finally:
        uwsgi.setprocname(before.strip())


def test_wait_fd():
    read_end, write_end = os.pipe()
    try:
        assert uwsgi.wait_fd_write(write_end, 1) == b""
        os.write(write_end, b"x")
        assert uwsgi.wait_fd_read(read_end, 1) == b""
    finally:
        os.close(read_end)
        os.close(write_end)


def test_extract(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"contents")
    assert uwsgi.extract(str(path)) == b"contents"
    assert uwsgi.extract("file://" + str(path)) == b"contents"
    assert uwsgi.extract(str(tmp_path / "missing")) is None
    assert uwsgi.extract("http://example.invalid/x") is None
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to get symbol"):
        uwsgi.embedded_data("anything")


def test_mules_and_farms_need_configuration():
    with pytest.raises(uwsgi.UwsgiValueError, match="no mule configured"):
        uwsgi.mule_msg(b"hello")
    with pytest.raises(uwsgi.UwsgiValueError, match="only in a mule"):
        uwsgi.mule_get_msg()
    with pytest.raises(uwsgi.UwsgiValueError, match="unknown farm"):
        uwsgi.farm_msg("workers", b"x")
    with pytest.raises(uwsgi.UwsgiValueError, match="unable to find socket 0"):
        uwsgi.listen_queue()
    with pytest.raises(ValueError, match="unable to find socket 3"):
        uwsgi.listen_queue(3)


def test_names_whose_subsystem_is_absent_answer_as_uwsgi():
    # uWSGI 2.0 without --enable-metrics: metric_get reads 0, updates return None.
    assert uwsgi.metric_get("requests") == 0
    for name in ["metric_set", "metric_inc", "metric_dec", "metric_mul", "metric_div",
                 "metric_set_max", "metric_set_min"]:
        assert getattr(uwsgi, name)("requests") is None
        assert getattr(uwsgi, name)("requests", 3) is None
    with pytest.raises(TypeError):
        uwsgi.metric_inc(b"requests")
    # No legion.
    assert uwsgi.i_am_the_lord("legion") is False
    assert uwsgi.lord_scroll("legion") is None and uwsgi.scrolls("legion") is None
    # No async loop wakes anything.
    assert uwsgi.ready_fd() == -1
    assert not hasattr(uwsgi, "pidfile")


@pytest.mark.parametrize(
    "name",
    [
        "reload", "stop", "grunt", "disconnect", "connection_fd", "cl", "sendfile",
        "offload", "route", "add_var", "chunked_read", "chunked_read_nb",
        "websocket_handshake", "websocket_recv", "websocket_recv_nb", "websocket_send",
        "websocket_send_binary", "request_context",
    ],
)
def test_functions_that_need_a_server(name):
    # The request functions take uWSGI 2.0's arguments; standalone they still raise.
    args = {
        "sendfile": ("/dev/null",),
        "route": ("uwsgi", "127.0.0.1:3031,0,0"),
        "add_var": ("KEY", "value"),
        "websocket_send": (b"message",),
        "websocket_send_binary": (b"message",),
    }.get(name, ())
    with pytest.raises(uwsgi.NoServerError) as info:
        getattr(uwsgi, name)(*args)
    err = info.value
    assert isinstance(err, RuntimeError) and isinstance(err, uwsgi.UwsgiError)
    assert f"uwsgi.{name}()" in str(err) and "standalone" in str(err)


def test_testing_info_and_generation():
    info = uwsgi.testing.info()
    assert info["caches"] == ["default"]
    assert info["queue_size"] == 100
    assert info["locks"] == 1
    assert info["socket_timeout"] == 4.0
    assert info["manual_clock"] is False
    generation = info["generation"]
    uwsgi.testing.reset()
    assert uwsgi.testing.info()["generation"] == generation + 1


def test_configure_validates():
    with pytest.raises(uwsgi.UwsgiValueError, match="name"):
        uwsgi.testing.configure(caches=["items=10"])
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.testing.configure(sharedareas=["file=/dev/zero"])
    with pytest.raises(uwsgi.UwsgiValueError):
        uwsgi.testing.configure(socket_timeout=-1)
    with pytest.raises(TypeError):
        uwsgi.testing.configure(unknown=1)
    # a failed configure leaves the previous instance in place
    assert uwsgi.testing.info()["caches"] == ["default"]


def test_reset_keeps_settings_and_drops_data(tmp_path):
    uwsgi.testing.configure(caches=["name=only,items=5,blocksize=16"], locks=2, spooler=tmp_path)
    uwsgi.cache_set(b"a", b"1")
    uwsgi.queue_push(b"q")
    uwsgi.register_rpc("f", lambda: b"")
    uwsgi.testing.reset()
    assert uwsgi.cache_get(b"a") is None
    assert uwsgi.queue_pull() is None
    assert uwsgi.rpc_list() == ()
    info = uwsgi.testing.info()
    assert info["caches"] == ["only"] and info["locks"] == 3
    assert len(info["spoolers"]) == 1


def test_import_forms():
    import importlib

    import uwsgi.testing as testing_module
    from uwsgi import testing

    assert testing is testing_module is uwsgi.testing
    assert importlib.import_module("uwsgi.testing") is testing
    assert testing.__name__ == "uwsgi.testing"


def test_snmp_slots_outside_1_to_100_answer_none_and_values_wrap_like_uwsgi():
    assert uwsgi.snmp_set_counter32(0, 1) is None
    assert uwsgi.snmp_set_gauge(101, 1) is None
    # "I" takes the integer modulo 2**32, as uWSGI's argument parsing does.
    assert uwsgi.snmp_set_counter32(4, -1) is True
    assert uwsgi.testing.snmp_value(4) == 0xFFFFFFFF
    assert uwsgi.snmp_set_community(b"public") is True
