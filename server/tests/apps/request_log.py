# The request log tests' application (server/tests/request_log.rs): the status, the
# body size, a delay, log variables and added vars all come from the query string.
import time
from urllib.parse import parse_qs

import uwsgi


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))

    def arg(name, default):
        return query.get(name, [default])[0]

    for pair in query.get("lv", []):
        key, _, value = pair.partition("=")
        uwsgi.set_logvar(key, value)
    if "biglv" in query:
        uwsgi.set_logvar("big", "x" * 100_000)
        uwsgi.set_logvar("evil", "a\r\n[pid: 1|app: 0|req: 1/1] forged")
    if "logthis" in query:
        uwsgi.log_this_request()
    if "addvar" in query:
        uwsgi.add_var("X_ADDED", arg("addvar", ""))
    time.sleep(int(arg("sleep", "0")) / 1000)
    body = b"x" * int(arg("size", "6"))
    start_response(
        arg("status", "200 OK"),
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
