"""The Python host's main test application: one route per behaviour under test
(server/tests/python.rs). Written like a uWSGI application: it imports `uwsgi`,
registers an RPC function, a signal handler, a spooler and a marshal handler."""

import json
import os
import sys
import threading
import time
import urllib.parse
import wsgiref.validate

import uwsgi

STATE_DIR = os.environ.get("TEST_STATE_DIR", "/tmp")
PER_THREAD = threading.local()


def hello_py(*args):
    return b"py:" + b"|".join(args)


uwsgi.register_rpc("hello_py", hello_py)


def calls_on_this_thread():
    """`thread id:calls so far on this thread`: threading.local lasts between RPC calls."""
    PER_THREAD.rpc_calls = getattr(PER_THREAD, "rpc_calls", 0) + 1
    return f"{threading.get_ident()}:{PER_THREAD.rpc_calls}"


uwsgi.register_rpc("calls_on_this_thread", calls_on_this_thread)


def on_signal(num):
    with open(os.path.join(STATE_DIR, "signal"), "w") as f:
        f.write(str(num))


uwsgi.register_signal(17, "", on_signal)


def spooler(env):
    with open(os.path.join(STATE_DIR, "spooled"), "wb") as f:
        f.write(env[b"payload"])
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def marshal_handler(obj, modifier2):
    return {"got": obj, "modifier2": modifier2}


uwsgi.message_manager_marshal = marshal_handler


def after_request():
    if uwsgi.opt.get("cache2"):
        uwsgi.cache_set("after_req", b"yes")


uwsgi.after_req_hook = after_request


def testing_reset():
    try:
        uwsgi.testing.reset()
    except uwsgi.UwsgiError as err:
        return str(err)
    return "reset worked"


def text(start_response, body, status="200 OK", ctype="text/plain"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def describe(value):
    if isinstance(value, (str, int, bool, float)) or value is None:
        return value
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    return {"type": type(value).__name__}


def validated_inner(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.errors"].write("validated request\n")
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"validated:", body]


validated = wsgiref.validate.validator(validated_inner)


class Closing:
    """An iterable whose close() leaves a mark in the cache."""

    def __init__(self, key, parts):
        self.key = key
        self.parts = parts

    def __iter__(self):
        for part in self.parts:
            if part == b"boom":
                raise RuntimeError("failure while iterating")
            yield part

    def close(self):
        uwsgi.cache_set(self.key, b"closed")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))

    if path == "/environ":
        data = {k: describe(v) for k, v in environ.items()}
        data["wsgi.input.type"] = type(environ["wsgi.input"]).__name__
        data["environ.type"] = type(environ).__name__
        return text(start_response, json.dumps(data).encode(), ctype="application/json")

    if path == "/validate":
        return validated(environ, start_response)

    if path == "/environ_items":
        # The environ in its order, for the tests of consecutive requests.
        items = [[k, describe(v)] for k, v in environ.items()]
        return text(start_response, json.dumps(items).encode(), ctype="application/json")

    if path == "/environ_mutate":
        # What an application does to its environ must not reach the next request's.
        environ["QUERY_STRING"] = "mutated"
        environ["ADDED_BY_APP"] = "yes"
        environ.pop("SERVER_NAME", None)
        environ["wsgi.version"] = (9, 9)
        return text(start_response, b"mutated")

    if path == "/errors_partial":
        # An unfinished line on wsgi.errors, never flushed by the application.
        environ["wsgi.errors"].write("partial line from %s" % environ["QUERY_STRING"])
        return text(start_response, b"wrote")

    if path == "/form":
        if environ["REQUEST_METHOD"] == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            fields = urllib.parse.parse_qs(environ["wsgi.input"].read(size).decode())
        else:
            fields = query
        return text(start_response, json.dumps(fields, sort_keys=True).encode())

    if path == "/upload":
        # Answers "<bytes> <sum of the byte values> <pieces>" for the mode's reads.
        stream = environ["wsgi.input"]
        mode = query.get("mode", ["read"])[0]
        total = checksum = pieces = 0

        def account(block):
            nonlocal total, checksum, pieces
            total += len(block)
            checksum += sum(block)
            pieces += 1

        if mode == "read":
            while True:
                block = stream.read(65536)
                if not block:
                    break
                account(block)
        elif mode == "readall":
            account(stream.read())
        elif mode == "readline":
            while True:
                line = stream.readline(1000)
                if not line:
                    break
                account(line)
        elif mode == "iter":
            for line in stream:
                account(line)
        elif mode == "readlines":
            for line in stream.readlines():
                account(line)
        return text(start_response, ("%d %d %d" % (total, checksum, pieces)).encode())

    if path == "/peek":
        # Reads only the start of the body and answers at once.
        first = environ["wsgi.input"].read(int(query["n"][0]))
        return text(start_response, b"peeked:" + first)

    if path == "/request_facts":
        fd = uwsgi.connection_fd()
        import socket

        peer = socket.socket(fileno=os.dup(fd)).getpeername()
        return text(start_response, ("cl=%d peer=%s" % (uwsgi.cl(), peer[0])).encode())

    if path == "/thread_local":
        PER_THREAD.count = getattr(PER_THREAD, "count", 0) + 1
        ident = threading.get_ident()
        return text(start_response, ("%d %d" % (PER_THREAD.count, ident)).encode())

    if path == "/disconnect":
        # Answer, close the connection, keep working, as uWSGI apps do with disconnect().
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"accepted")
        uwsgi.disconnect()
        time.sleep(1)
        write(b" dropped")
        uwsgi.cache_set("after_disconnect", b"done")
        return [b" dropped too"]

    if path == "/warning":
        uwsgi.set_warning_message(query["m"][0])
        return text(start_response, b"set")

    if path == "/logvar":
        before = uwsgi.get_logvar("who")
        uwsgi.set_logvar("who", query["v"][0])
        after = uwsgi.get_logvar("who")
        return text(start_response, b"%r %r" % (before, after))

    if path == "/stream":
        def chunks():
            for i in range(5):
                yield b"chunk%d;" % i

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-1;")
        write(b"written-2;")
        return [b"returned"]

    if path == "/write_slow":
        # write() must reach the client before the application returns.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"early;")
        time.sleep(1.5)
        return [b"late"]

    if path == "/exc_info_write":
        # After write() sent the head, start_response(exc_info) must re-raise.
        write = start_response("200 OK", [])
        write(b"sent;")
        try:
            raise LookupError("after write")
        except LookupError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except LookupError:
                return [b"re-raised"]
        return [b"not re-raised"]

    if path == "/exc_info":
        # An error before anything was sent: the head is replaced.
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Replaced", "1")], sys.exc_info())
        return [b"replaced"]

    if path == "/exc_info_late":
        # An error after the head went out: start_response must re-raise.
        def late():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first;"
            try:
                raise KeyError("too late")
            except KeyError:
                start_response("500 Oops", [], sys.exc_info())
            yield b"never"

        return late()

    if path == "/double_start":
        start_response("200 OK", [])
        try:
            start_response("201 Created", [])
        except AssertionError:
            return [b"refused second start_response"]
        return [b"accepted second start_response"]

    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(query["key"][0], [b"a", b"b"])

    if path == "/close_error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(query["key"][0], [b"boom"])

    if path == "/file":
        name = query["name"][0]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(name, "rb"), 32768)

    if path == "/not_bytes":
        start_response("200 OK", [])
        return ["a str is not bytes"]

    if path == "/not_bytes_after":
        # The blocks before the refused one go out.
        start_response("200 OK", [])
        return [b"sent;", b"", b"also sent;", "a str is not bytes", b"never"]

    if path == "/not_bytes_after_empty":
        # Only empty blocks before the refused one: nothing went out, a 500 can.
        start_response("200 OK", [])
        return (b"", "a str is not bytes")

    if path == "/raise":
        raise RuntimeError("the application failed on purpose")

    if path == "/bad_header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"should not be sent"]

    if path == "/sleep":
        time.sleep(float(query.get("s", ["1"])[0]))
        return text(start_response, b"slept")

    if path == "/snmp_gauge":
        done = uwsgi.snmp_set_gauge(int(query["slot"][0]), int(query["value"][0]))
        return text(start_response, repr(done).encode())

    if path == "/snmp_community":
        done = uwsgi.snmp_set_community(query["name"][0])
        return text(start_response, repr(done).encode())

    if path == "/cache_set":
        uwsgi.cache_set(query["key"][0], query["value"][0].encode())
        return text(start_response, b"set")

    if path == "/cache_get":
        value = uwsgi.cache_get(query["key"][0])
        return text(start_response, value if value is not None else b"<none>")

    if path == "/uwsgi":
        info = {
            "numproc": uwsgi.numproc,
            "worker_id": uwsgi.worker_id(),
            "masterpid": uwsgi.masterpid(),
            "opt": {k: describe(v) for k, v in uwsgi.opt.items()},
            "version": uwsgi.version.decode(),
            "buffer_size": uwsgi.buffer_size,
            "started_on": uwsgi.started_on,
            "hostname": uwsgi.hostname.decode(),
            "total_requests": uwsgi.total_requests(),
            "request_id": uwsgi.request_id(),
            "sockets": len(uwsgi.sockets),
            "cores": uwsgi.cores,
            "spoolers": [s.decode() for s in uwsgi.spoolers],
            "rpc_list": [n.decode() if isinstance(n, bytes) else n for n in uwsgi.rpc_list()],
            "module_file": getattr(uwsgi, "__file__", None),
            "workers": len(uwsgi.workers()),
            "applist": list(uwsgi.applist),
            "is_a_reload": uwsgi.is_a_reload,
            "queue_size": uwsgi.queue_size,
            "magic_h": uwsgi.magic_table[b"h"].decode(),
            "testing_reset": testing_reset(),
        }
        return text(start_response, json.dumps(info).encode(), ctype="application/json")

    if path == "/python":
        info = {"version": sys.version.split()[0], "prefix": sys.prefix, "path": sys.path}
        return text(start_response, json.dumps(info).encode(), ctype="application/json")

    if path == "/spool":
        uwsgi.spool({b"payload": query["payload"][0].encode()})
        return text(start_response, b"spooled")

    if path == "/signal":
        uwsgi.signal(17)
        return text(start_response, b"signalled")

    return text(start_response, b"no such page: " + path.encode("latin-1"), status="404 Not Found")
