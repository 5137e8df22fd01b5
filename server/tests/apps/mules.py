"""Mules and farms test app: records what each mule receives as files in $MULE_OUT."""

import os
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ["MULE_OUT"]


def record(kind, data):
    name = "%s-%d-%d" % (kind, os.getpid(), time.monotonic_ns())
    with open(os.path.join(OUT, name + ".tmp"), "wb") as f:
        f.write(data)
    os.rename(os.path.join(OUT, name + ".tmp"), os.path.join(OUT, name))


def hook(message):
    farms = b"farm" if uwsgi.in_farm() else b"nofarm"
    record("hook%d" % uwsgi.mule_id(), message + b" " + farms)


uwsgi.mule_msg_hook = hook


def on_signal(num):
    record("signal%d" % uwsgi.mule_id(), str(num).encode())


uwsgi.register_signal(17, "mules", on_signal)


def application(environ, start_response):
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    try:
        if path == "/send":
            target = query.get("target")
            if target is not None and target.isdigit():
                target = int(target)
            body = repr(uwsgi.mule_msg(query["msg"].encode(), target))
        elif path == "/farm":
            body = repr(uwsgi.farm_msg(query["name"], query["msg"]))
        elif path == "/big":
            uwsgi.mule_msg(b"x" * (64 * 1024 + 1), 1)
            body = "sent"
        elif path == "/signal":
            uwsgi.signal(17)
            body = "raised"
        elif path == "/ids":
            body = "%d %r" % (uwsgi.mule_id(), uwsgi.in_farm())
        else:
            body = "?"
    except Exception as err:  # noqa: BLE001 - the test reads the error
        body = "%s: %s" % (type(err).__name__, err)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
