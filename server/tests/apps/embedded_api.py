"""The embedded `uwsgi` module's process-level API against the real server
(server/tests/python.rs, `embedded_*` tests): shared-area memoryviews, listen_queue,
user harakiri, spooler pids and frequency, accepting, uwsgi.env/start_response,
magic_table, pidfile and the names uWSGI 2.0 answers without their subsystem."""

import json
import os
import socket
import time

import uwsgi

STATE_DIR = os.environ.get("TEST_STATE_DIR", "/tmp")
# uWSGI sets uwsgi.env only while a request runs.
ENV_AT_IMPORT = hasattr(uwsgi, "env")


def spooler(env):
    if env.get(b"harakiri"):
        # Armed and stuck: the master kills this spooler (it keeps the job).
        with open(os.path.join(STATE_DIR, "spooler_pids"), "a") as f:
            f.write("%d\n" % os.getpid())
        uwsgi.set_user_harakiri(1)
        time.sleep(60)
    # The first attempt asks for a retry: the next one comes a spooler pass later,
    # which shows the frequency set by uwsgi.set_spooler_frequency.
    path = os.path.join(STATE_DIR, "attempts")
    with open(path, "a") as f:
        f.write("%f\n" % time.time())
    with open(path) as f:
        attempts = len(f.read().splitlines())
    return uwsgi.SPOOL_OK if attempts >= 2 else uwsgi.SPOOL_RETRY


uwsgi.spooler = spooler


def reply(start_response, value):
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/mv_write":
        view = uwsgi.sharedarea_memoryview(0)
        data = query.encode()
        view[0 : len(data)] = data
        return reply(start_response, {"worker": uwsgi.worker_id(), "len": len(view),
                                      "readonly": view.readonly})
    if path == "/mv_read":
        return reply(start_response, {"worker": uwsgi.worker_id(),
                                      "data": uwsgi.sharedarea_read(0, 0, 5).decode(),
                                      "view": bytes(uwsgi.sharedarea_memoryview(0)[0:5]).decode()})
    if path == "/listen_queue":
        port = int(query)
        waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)
        queued = uwsgi.listen_queue(0)
        default = uwsgi.listen_queue()
        for s in waiting:
            s.close()
        try:
            uwsgi.listen_queue(7)
            missing = "no error"
        except ValueError as e:
            missing = str(e)
        return reply(start_response, {"queued": queued, "default": default, "missing": missing})
    if path == "/pid":
        return reply(start_response, {"pid": os.getpid(), "worker": uwsgi.worker_id()})
    if path == "/harakiri":
        uwsgi.set_user_harakiri(1)
        time.sleep(15)
        return reply(start_response, {"survived": True})
    if path == "/harakiri_disarmed":
        uwsgi.set_user_harakiri(1)
        uwsgi.set_user_harakiri(0)
        time.sleep(2.5)
        return reply(start_response, {"survived": True})
    if path == "/harakiri_armed_and_left":
        uwsgi.set_user_harakiri(1)
        return reply(start_response, {"pid": os.getpid()})
    if path == "/spooler":
        return reply(start_response, {
            "pid": uwsgi.spooler_pid(),
            "pids": uwsgi.spooler_pids(),
            "me": os.getpid(),
            "frequency": uwsgi.set_spooler_frequency(1),
        })
    if path == "/spool_harakiri":
        uwsgi.spool({b"harakiri": b"1"})
        return reply(start_response, {"spooled": True})
    if path == "/spool":
        uwsgi.spool({b"job": b"1"})
        return reply(start_response, {"spooled": True})
    if path == "/accepting":
        return reply(start_response, [uwsgi.accepting(), uwsgi.accepting(0), uwsgi.accepting(1)])
    if path == "/env":
        same = uwsgi.env is environ
        # uwsgi.start_response is the current request's start_response.
        uwsgi.start_response("202 Accepted", [("X-Via", "uwsgi.start_response")])
        return [json.dumps({"env_is_environ": same, "env_at_import": ENV_AT_IMPORT}).encode()]
    if path == "/globals":
        return reply(start_response, {
            "magic": {k.decode(): v.decode() for k, v in uwsgi.magic_table.items()},
            "key_types": sorted({type(k).__name__ for k in uwsgi.magic_table}),
            "pidfile": uwsgi.pidfile.decode() if hasattr(uwsgi, "pidfile") else None,
        })
    if path == "/absent_subsystems":
        names = ["metric_set", "metric_inc", "metric_dec", "metric_mul", "metric_div",
                 "metric_set_max", "metric_set_min"]
        return reply(start_response, {
            "metric_get": uwsgi.metric_get("requests"),
            "updates": [getattr(uwsgi, name)("requests", 5) for name in names],
            "updates_default": [getattr(uwsgi, name)("requests") for name in names],
            "i_am_the_lord": uwsgi.i_am_the_lord("legion"),
            "lord_scroll": uwsgi.lord_scroll("legion"),
            "scrolls": uwsgi.scrolls("legion"),
            "ready_fd": uwsgi.ready_fd(),
            "async_send_message": uwsgi.async_send_message(-1, 0, 0, {"a": "b"}),
        })
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no route"]
