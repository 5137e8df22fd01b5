# The application real uWSGI 2.0 runs in the server benchmark (scripts/bench_server.py):
# the same RPC function and WSGI page as uwsgi-server's built-in example app.
import uwsgi


def hello(*args):
    who = b", ".join(args) if args else b"world"
    return b"Hello, " + who + b"!"


uwsgi.register_rpc("hello", hello)


def application(environ, start_response):
    body = b"Hello from uwsgi-rs!\nGET / (0 body bytes)\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
