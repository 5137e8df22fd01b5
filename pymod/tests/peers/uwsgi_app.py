# The application real uWSGI 2.0 loads for pymod's client tests (conftest.py starts it).
#
# Its RPC functions answer like the built-in example app of uwsgi-server (`hello`,
# `upper`), so one test runs unchanged against both servers; `big` and `empty` cover
# uWSGI 2.0's big-result and no-result replies. The signal handler and the spooler
# leave marker files in $PYMOD_TEST_MARKS. uwsgi-rs also hosts this app
# (conftest.uwsgi_rs_python_server), for the marshal message handler: uWSGI 2.0 never
# calls it (it has no modifier1 33 handler), uwsgi-rs does.
import os

import uwsgi

MARKS = os.environ["PYMOD_TEST_MARKS"]


def mark(name, data):
    # write then rename, so the test never sees a half-written file
    # The temporary name is the process's own: a signal to "workers" runs this in
    # every worker at once, and a shared name let one truncate another's finished file.
    tmp = os.path.join(MARKS, ".%s.%d" % (name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(MARKS, name))


def hello(*args):
    who = b", ".join(args) if args else b"world"
    return b"Hello, " + who + b"!"


def upper(*args):
    return args[0].upper() if args else b""


def big(n=b"70000"):
    return b"x" * int(n)


def empty(*args):
    return b""


uwsgi.register_rpc("hello", hello)
uwsgi.register_rpc("upper", upper)
uwsgi.register_rpc("big", big)
uwsgi.register_rpc("empty", empty)


def on_signal(num):
    mark("signal-%d" % num, b"ok")


uwsgi.register_signal(17, "workers", on_signal)


def spooler(env):
    job = env.get(b"job", b"none").decode()
    mark("spool-" + job, env.get(b"payload", b""))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def on_marshal(obj, modifier2):
    mark("marshal-%d" % modifier2, b"ok")
    return ("handled", obj, modifier2)


uwsgi.message_manager_marshal = on_marshal


def application(env, start_response):
    body = env["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s %d\n" % (env.get("REQUEST_METHOD"), env.get("PATH_INFO"), len(body))).encode(), body]
