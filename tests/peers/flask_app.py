# A Flask application served by both uwsgi-rs and real uWSGI 2.0 behind nginx in the
# interop tests (server/tests/nginx_flask.rs): the same requests go to both servers and
# the answers are compared.
#
# Routes: a plain page, the WSGI environ keys the app saw, a form post, an upload
# (size + sha256), a streamed response, a 404, an exception (500), and a round trip
# through the `uwsgi` module's cache, which both servers provide.
import hashlib

import uwsgi
from flask import Flask, Response, jsonify, request

application = Flask(__name__)


@application.get("/")
def index():
    return "hello from flask\n"


@application.get("/environ")
def environ():
    env = request.environ
    keys = [
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_PROTOCOL",
        "SCRIPT_NAME",
        "CONTENT_TYPE",
        "HTTP_HOST",
        "HTTP_X_TEST",
        "wsgi.url_scheme",
    ]
    return jsonify(
        {
            # PEP 3333 lets a server leave out an empty SCRIPT_NAME (uWSGI does).
            "vars": {k: env.get(k, "" if k == "SCRIPT_NAME" else None) for k in keys},
            "version": list(env["wsgi.version"]),
            "args": request.args.to_dict(),
        }
    )


@application.post("/form")
def form():
    fields = request.form.to_dict()
    return jsonify({"fields": fields, "count": len(fields)})


@application.post("/upload")
def upload():
    digest = hashlib.sha256()
    size = 0
    stream = request.stream
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return jsonify({"size": size, "sha256": digest.hexdigest()})


@application.get("/stream")
def stream():
    count = request.args.get("n", 5, type=int)

    def generate():
        for i in range(count):
            yield "chunk %d\n" % i

    return Response(generate(), mimetype="text/plain")


@application.get("/boom")
def boom():
    raise RuntimeError("boom: an application error the test expects")


@application.get("/cache/<key>")
def cache_roundtrip(key):
    value = request.args.get("value", "").encode()
    uwsgi.cache_update(key, value)
    got = uwsgi.cache_get(key)
    return jsonify(
        {"key": key, "stored": got.decode() if got is not None else None}
    )
