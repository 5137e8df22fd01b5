"""uwsgi.get_option / set_option over HTTP, to check they share the admin packet's
option slots (server/tests/management.rs)."""

import urllib.parse

import uwsgi


def application(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    index = int(query["i"][0])
    if environ["PATH_INFO"] == "/set":
        uwsgi.set_option(index, int(query["v"][0]))
    body = str(uwsgi.get_option(index)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
