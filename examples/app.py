# The example application scripts/demo.sh serves (examples/demo.ini loads it): a plain
# WSGI app that uses the `uwsgi` module the server builds in — RPC functions callable over
# the network, a counter in the server's cache, a spooler function — so one command shows
# the whole path: uwsgi protocol in, Python, the server's shared state, answer out.
import sys

import uwsgi


def hello(*names):
    who = b", ".join(names) if names else b"world"
    return b"Hello, " + who + b"!"


def upper(text=b""):
    return text.upper()


uwsgi.register_rpc("hello", hello)
uwsgi.register_rpc("upper", upper)


def spooler(job):
    task = job.get(b"task", b"?").decode()
    uwsgi.log("example spooler: ran task %s (id %s)" % (task, job.get(b"id", b"-").decode()))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(environ, start_response):
    # Every request bumps a counter in the server's cache, shared by all workers.
    uwsgi.cache_inc("visits", 1, 0, "demo")
    visits = uwsgi.cache_num("visits", "demo")
    body = (
        "Hello from Python %s inside uwsgi-rs %s\n"
        "path %s, worker %d of %d, visit %d\n"
        % (
            sys.version.split()[0],
            uwsgi.version.decode(),
            environ.get("PATH_INFO", "/"),
            uwsgi.worker_id(),
            uwsgi.numproc,
            visits,
        )
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
