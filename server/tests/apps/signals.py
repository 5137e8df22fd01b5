"""uWSGI signals test app: records, as one file per delivery in $SIGNAL_OUT, which
process ran which handler ("<signum>-<pid>", content: who registered the handler).

Registered at import, in the master before the fork (uWSGI's worker 0):
20 workers, 21 worker (any one), 22 worker2, 23 mules, 24 spooler, 25 mule1,
26 farm_pair, 27 farm1, 28 active-workers, 33 workers (raised by a timer a worker adds
after the fork), 34 worker1 (raised by a file monitor a worker adds after the fork).

Registered after the fork, in every worker's post_fork_hook: 30 workers. The master has
no registration for it, so it goes to one worker only (uWSGI 2.0 routes by the
master's table).
"""

import os
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ["SIGNAL_OUT"]
WATCHED = os.environ.get("SIGNAL_WATCHED", "")


def record(name, text):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def handler(registrant):
    def run(num):
        record("%d-%d-%d" % (num, os.getpid(), time.monotonic_ns()), registrant)

    return run


at_import = handler("master")
for num, target in [
    (20, "workers"),
    (21, "worker"),
    (22, "worker2"),
    (23, "mules"),
    (24, "spooler"),
    (25, "mule1"),
    (26, "farm_pair"),
    (27, "farm1"),
    (28, "active-workers"),
    (33, "workers"),
    (34, "worker1"),
]:
    uwsgi.register_signal(num, target, at_import)
record("registered-import", repr(uwsgi.signal_registered(20)))


def after_fork():
    if uwsgi.mule_id() > 0:
        who = "mule%d" % uwsgi.mule_id()
    elif uwsgi.worker_id() > 0:
        who = "worker%d" % uwsgi.worker_id()
    else:
        who = "spooler"
    try:
        uwsgi.register_signal(30, "workers", handler(who))
        outcome = "ok"
    except ValueError as err:
        outcome = "ValueError: %s" % err
    record("hook-%d" % os.getpid(), "%s %s" % (who, outcome))
    if who == "worker1":
        uwsgi.add_timer(33, 1)
    if who == "worker2" and WATCHED:
        uwsgi.add_file_monitor(34, WATCHED)


uwsgi.post_fork_hook = after_fork


def application(environ, start_response):
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    if path == "/raise":
        num = int(query["num"])
        body = "%r %d" % (uwsgi.signal(num), os.getpid())
    elif path == "/registered":
        num = int(query["num"])
        body = "%r" % (uwsgi.signal_registered(num),)
    else:
        body = "%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
