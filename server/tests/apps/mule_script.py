"""A mule script: answers every message it gets with mule_get_msg, answers b'timeout' with a 1 s wait's result."""

import os
import time

import uwsgi

OUT = os.environ["MULE_OUT"]

while True:
    message = uwsgi.mule_get_msg()
    if message == b"timeout":
        # Nothing else is sent meanwhile: the wait ends empty-handed.
        message = repr(uwsgi.mule_get_msg(timeout=1)).encode()
    name = "script%d-%d-%d" % (uwsgi.mule_id(), os.getpid(), time.monotonic_ns())
    with open(os.path.join(OUT, name + ".tmp"), "wb") as f:
        f.write(message)
    os.rename(os.path.join(OUT, name + ".tmp"), os.path.join(OUT, name))
