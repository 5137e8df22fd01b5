"""Sets uWSGI's hooks and `uwsgi.applications` instead of an `application`."""
import os

import uwsgi

STATE_DIR = os.environ["TEST_STATE_DIR"]


def post_fork():
    with open(os.path.join(STATE_DIR, "post_fork"), "w") as f:
        f.write("worker %d" % uwsgi.worker_id())


def at_exit():
    with open(os.path.join(STATE_DIR, "atexit"), "w") as f:
        f.write("bye")


uwsgi.post_fork_hook = post_fork
uwsgi.atexit = at_exit


def first(environ, start_response):
    start_response("200 OK", [])
    return [b"first app"]


def second(environ, start_response):
    start_response("200 OK", [])
    return [b"second app"]


uwsgi.applications = {"": first, "/second": second}
