# The application real uWSGI 2.0 loads for the client and CLI tests
# (tests/src/uwsgi_peer.rs starts it).
#
# RPC functions, a signal handler, a spooler function and a WSGI app. The signal handler
# and the spooler leave marker files in $CLIENT_TEST_MARKS so a test can see they ran.
import os

import uwsgi

MARKS = os.environ["CLIENT_TEST_MARKS"]


def mark(name, data):
    # write then rename, so the test never sees a half-written file
    # The temporary name is the process's own: a signal to "workers" runs this in
    # every worker at once, and a shared name let one truncate another's finished file.
    tmp = os.path.join(MARKS, ".%s.%d" % (name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(MARKS, name))


def hello(*args):
    return b"HELLO:" + b"|".join(args)


def big(n=b"70000"):
    return b"x" * int(n)


def empty(*args):
    return b""


uwsgi.register_rpc("hello", hello)
uwsgi.register_rpc("big", big)
uwsgi.register_rpc("empty", empty)


def on_signal(num):
    mark("signal-%d" % num, b"ok")


uwsgi.register_signal(17, "workers", on_signal)


def spooler(env):
    def var(key):
        value = env.get(key.encode(), env.get(key, b""))
        return value if isinstance(value, bytes) else str(value).encode()

    mark("spool-" + var("job").decode(), var("payload") + var("body"))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(env, start_response):
    body = env["wsgi.input"].read()
    path = env.get("PATH_INFO", "")
    if path == "/hello-world":
        # the benchmark's hello world: no body reading, no formatting
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, World!"]
    if path == "/warn":
        uwsgi.set_warning_message("WARN!")
    status = "200 OK"
    if path.startswith("/status/"):
        status = path[len("/status/"):] + " Custom"
    start_response(status, [("Content-Type", "text/plain"),
                            ("X-Body-Len", str(len(body)))])
    lines = ["%s %s %d" % (env.get("REQUEST_METHOD", "-"), path, len(body))]
    for key in ("QUERY_STRING", "CONTENT_TYPE", "HTTP_X_TEST", "HTTP_HOST", "X_EXTRA"):
        if env.get(key):
            lines.append("%s=%s" % (key, env[key]))
    return [("\n".join(lines) + "\n").encode(), body]
