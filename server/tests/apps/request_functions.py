"""The uwsgi module's request functions, for tests/request_functions.rs."""

import os
import time

import uwsgi


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sendfile":
        # uWSGI 2.0: the head, then the file, go out now; the app returns nothing more.
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", environ["QUERY_STRING"].split("&")[1])])
        name = environ["QUERY_STRING"].split("&")[0]
        with open(name, "rb") as f:
            sent = uwsgi.sendfile(f, 0, 0, 0)
        assert sent is True, sent
        return []
    if path == "/sendfile_missing":
        result = uwsgi.sendfile("/nonexistent/file")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(result).encode()]
    if path == "/route" and environ.get("X_ROUTED_BY"):
        # The routed-to node (the forwarded vars carry the var the front added): what
        # it received.
        body = environ["wsgi.input"].read()
        text = "%s %s routed_by=%s offload=%r body=%s" % (
            environ["REQUEST_METHOD"], environ["PATH_INFO"],
            environ.get("X_ROUTED_BY"), uwsgi.offload(), body.decode())
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Node", "echo")])
        return [text.encode()]
    if path == "/route":
        # Forward to the node named in the query, with an added var it will see.
        uwsgi.add_var("X_ROUTED_BY", "front")
        code = uwsgi.route("uwsgi", environ["QUERY_STRING"] + ",0,0")
        assert code == 2, code
        return []
    if path == "/route_extra":
        # Forward to the node named in the query with X_EXTRA added: a var the uWSGI
        # peer app (tests/peers/uwsgi_app.py) echoes.
        uwsgi.add_var("X_EXTRA", "routed")
        code = uwsgi.route("uwsgi", environ["QUERY_STRING"] + ",0,0")
        assert code == 2, code
        return []
    if path == "/route_unknown":
        codes = [uwsgi.route("nosuchrouter", "x"), uwsgi.route("uwsgi", "nocommas")]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(codes).encode()]
    if path == "/chunked":
        parts = []
        while True:
            chunk = uwsgi.chunked_read()
            if not chunk:
                break
            parts.append(chunk)
        body = b"".join(parts)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d bytes: %s" % (len(body), body)]
    if path == "/chunked_wait":
        # A streamed body (CONTENT_LENGTH past 64 KiB): the client sends 1000 bytes,
        # pauses 3 s, then sends the rest.
        first = b""
        deadline = time.monotonic() + 10
        while len(first) < 1000 and time.monotonic() < deadline:
            chunk = uwsgi.chunked_read_nb()
            if chunk is None:
                time.sleep(0.01)
            else:
                first += chunk
        during_pause = uwsgi.chunked_read_nb()
        try:
            uwsgi.chunked_read(1)
            timed_out = False
        except OSError:
            timed_out = True
        total = len(first)
        while True:
            chunk = uwsgi.chunked_read()
            if not chunk:
                break
            total += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"first=%d pause=%r timeout=%r total=%d" % (len(first), during_pause, timed_out, total)]
    if path == "/ws":
        uwsgi.websocket_handshake()
        ctx = uwsgi.request_context()
        while True:
            try:
                msg = uwsgi.websocket_recv(request_context=ctx)
            except IOError:
                break
            if msg == b"binary please":
                uwsgi.websocket_send_binary(b"\x00\x01\x02")
            elif msg == b"nb":
                uwsgi.websocket_send(repr(uwsgi.websocket_recv_nb()))
            else:
                uwsgi.websocket_send(b"echo: " + msg)
        return []
    if path == "/grunt":
        start_response("200 OK", [("Content-Type", "text/plain")])
        me = os.getpid()
        if uwsgi.grunt():
            return [b"from the grunt %d (worker was %d)" % (os.getpid(), me)]
        # The parent: its connection went to the grunt; nothing it sends arrives.
        return [b"from the worker"]
    if path == "/raw":
        # uWSGI 2.0's raw connection functions on the request's own socket: send(data)
        # writes to it as it is, recv and friends read whatever descriptor they get.
        fd = uwsgi.connection_fd()
        uwsgi.send(b"ready\n")
        word = uwsgi.recv_block(fd, 4, 5)
        uwsgi.send(fd, b"got " + word + b"\n")
        frame = uwsgi.recv_frame(fd, timeout=5)
        uwsgi.send(b"frame " + frame + b"\n")
        rest = uwsgi.recv(fd, timeout=5)
        try:
            uwsgi.recv(fd, timeout=0.2)
            waited = "nothing"
        except TimeoutError:
            waited = "timeout"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"rest=%r connected=%r waited=%s" % (rest, uwsgi.is_connected(fd), waited.encode())]
    if path == "/raw_outside":
        # send(data) only has a connection to write to inside a request.
        import threading
        errors = []

        def outside():
            try:
                uwsgi.send(b"x")
            except SystemError as err:
                errors.append(str(err))

        thread = threading.Thread(target=outside)
        thread.start()
        thread.join()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(errors).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
