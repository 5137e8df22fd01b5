"""For the fork test: a Python thread keeps taking and dropping the GIL while the server
forks, and the application answers with the pid it runs in."""
import os
import threading
import time

import uwsgi

ticks = 0


def ticker():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.0005)


TICKER = threading.Thread(target=ticker, daemon=True)
TICKER.start()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    # After a fork done right (PyOS_AfterFork_Child), the child knows the ticker thread
    # did not come along.
    alive = "alive" if TICKER.is_alive() else "gone"
    return [("pid=%d worker=%d ticker=%s" % (os.getpid(), uwsgi.worker_id(), alive)).encode()]
