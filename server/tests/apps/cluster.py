"""The cluster functions in forked workers (server/tests/cluster.rs): what the process
reading the --udp socket learnt from cluster announcements (modifier1 95)."""

import json
import urllib.parse

import uwsgi


def answer(start_response, body):
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/nodes":
        return answer(start_response, json.dumps(sorted(node.decode() for node in uwsgi.cluster_nodes())))
    if path == "/best":
        best = uwsgi.cluster_best_node()
        return answer(start_response, json.dumps(None if best is None else best.decode()))
    if path == "/name":
        name = uwsgi.cluster_node_name(query["addr"][0])
        return answer(start_response, json.dumps(None if name is None else name.decode()))
    if path == "/own_name":
        return answer(start_response, json.dumps(uwsgi.cluster_node_name() == uwsgi.hostname))
    return answer(start_response, "unknown path")
