"""Answers what a request could have changed if magic vars were obeyed: the working
directory, whether a module named `evil` was imported, and the magic vars as the
application sees them (server/tests/config_and_vars.rs)."""

import json
import os
import sys

MAGIC = (
    "UWSGI_FILE",
    "UWSGI_SCRIPT",
    "UWSGI_MODULE",
    "UWSGI_CALLABLE",
    "UWSGI_CHDIR",
    "UWSGI_PYHOME",
    "UWSGI_APPID",
)


def application(environ, start_response):
    body = json.dumps(
        {
            "app": "inert",
            "cwd": os.getcwd(),
            "evil_imported": "evil" in sys.modules,
            "vars": {name: environ.get(name) for name in MAGIC},
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
