"""Shared state across forked workers (server/tests/shared_state.rs): the queue, a user
lock guarding a read-modify-write of a shared area, and the server controls
`uwsgi.reload()` / `uwsgi.stop()` called from a request."""

import os
import time
import urllib.parse

import uwsgi


def answer(start_response, body):
    body = body if isinstance(body, bytes) else str(body).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/worker":
        return answer(start_response, f"{uwsgi.worker_id()} {os.getpid()}")
    if path == "/queue_push":
        return answer(start_response, repr(uwsgi.queue_push(query["v"][0].encode())))
    if path == "/queue_pull":
        return answer(start_response, repr(uwsgi.queue_pull()))
    if path == "/increment":
        # A read-modify-write with a pause inside: without the lock, two workers doing
        # it at once lose an increment.
        uwsgi.lock(1)
        try:
            value = uwsgi.sharedarea_readlong(0, 0)
            time.sleep(0.02)
            uwsgi.sharedarea_writelong(0, 0, value + 1)
        finally:
            uwsgi.unlock(1)
        return answer(start_response, f"{uwsgi.worker_id()}")
    if path == "/counter":
        return answer(start_response, uwsgi.sharedarea_readlong(0, 0))
    if path == "/reload":
        uwsgi.reload()
        return answer(start_response, "reloading")
    if path == "/stop":
        uwsgi.stop()
        return answer(start_response, "stopping")
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]
