"""The async functions of the uwsgi module, with and without --async: what each returns
and how long it waits, one line each."""

import os
import time

import uwsgi


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    lines = []
    started = time.monotonic()
    result = uwsgi.async_sleep(1)
    lines.append("sleep=%r waited=%d" % (result, time.monotonic() - started >= 0.9))
    read_end, write_end = os.pipe()
    try:
        lines.append("wait=%r" % uwsgi.wait_fd_write(write_end, 1))
    except OSError as err:
        lines.append("wait=OSError: %s" % str(err).replace(str(write_end), "FD"))
    finally:
        os.close(read_end)
        os.close(write_end)
    lines.append("suspend=%r" % uwsgi.suspend())
    lines.append("cores=%d" % uwsgi.cores)
    return ["\n".join(lines).encode()]
