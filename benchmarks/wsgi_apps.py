# The WSGI application every server gets in scripts/bench_wsgi.py: the same file, the
# same callable, no framework, so the figures measure the servers.
#
#   /      "Hello, World!" (13 bytes)
#   /10k   10 KB of text
HELLO = b"Hello, World!"
TEN_KB = b"x" * 10 * 1024


def application(environ, start_response):
    body = TEN_KB if environ.get("PATH_INFO") == "/10k" else HELLO
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
