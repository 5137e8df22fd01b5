"""Round trips through the module with hypothesis: the marshal codec (modifier1 33), vars,
RPC arrays and cache values — locally and over the network."""

import marshal
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uwsgi

NETWORK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.binary(max_size=64)
    | st.text(max_size=32)
    | st.just(...)
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4), max_leaves=8
)
objects = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6)
    | st.tuples(inner, inner)
    | st.dictionaries(hashables, inner, max_size=6)
    | st.sets(hashables, max_size=4)
    | st.frozensets(hashables, max_size=4),
    max_leaves=25,
)


def same(a, b):
    """Equality that also holds for -0.0 vs 0.0 signs and nested floats."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


@given(objects)
def test_marshal_round_trip(obj):
    ours = uwsgi.testing.marshal_dumps(obj)
    back = uwsgi.testing.marshal_loads(ours)
    assert back == obj and type(back) is type(obj)
    # CPython reads what the codec writes, and the codec reads what CPython writes
    assert marshal.loads(ours) == obj
    for version in range(5):
        assert uwsgi.testing.marshal_loads(marshal.dumps(obj, version)) == obj


@given(st.binary(max_size=64))
def test_marshal_loads_never_crashes(data):
    try:
        uwsgi.testing.marshal_loads(data)
    except uwsgi.ProtocolError:
        pass


@given(st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=40), max_size=20))
def test_vars_round_trip(pairs):
    block = uwsgi.testing.encode_vars(pairs)
    parsed, offset = {}, 0
    while offset < len(block):
        (klen,) = struct.unpack_from("<H", block, offset)
        key = block[offset + 2 : offset + 2 + klen]
        offset += 2 + klen
        (vlen,) = struct.unpack_from("<H", block, offset)
        parsed[key] = block[offset + 2 : offset + 2 + vlen]
        offset += 2 + vlen
    assert parsed == pairs


@settings(deadline=None, max_examples=50)
@given(
    st.dictionaries(
        st.binary(min_size=1, max_size=30).filter(lambda k: k != b"body" and b"\0" not in k[:1]),
        st.binary(max_size=30),
        min_size=1,
        max_size=10,
    ).filter(lambda d: not ({b"spooler", b"priority", b"at"} & d.keys())),
    st.binary(max_size=100),
)
def test_spool_then_parsefile(tmp_path_factory, job, body):
    uwsgi.testing.configure(spooler=tmp_path_factory.mktemp("spool"))
    path = uwsgi.spool(dict(job, body=body))
    assert uwsgi.parsefile(path) == job
    env = uwsgi.spooler_get_task(path)
    assert env.pop("spooler_task_name")
    assert env.pop("body", b"") == body
    assert env == job


@given(st.lists(st.binary(max_size=100), max_size=20))
def test_local_rpc_arguments_round_trip(args):
    uwsgi.register_rpc("count", lambda *a: b"%d:" % len(a) + b"\x00".join(a))
    assert uwsgi.call("count", *args) == b"%d:" % len(args) + b"\x00".join(args)


@given(st.binary(min_size=1, max_size=2048), st.binary(min_size=1, max_size=65536))
def test_local_cache_round_trip(key, value):
    uwsgi.cache_update(key, value)
    assert uwsgi.cache_get(key) == value
    assert uwsgi.cache_del(key) is True


@NETWORK
@given(st.lists(st.binary(min_size=1, max_size=200), max_size=10))
def test_rpc_binary_arguments_through_uwsgi(real_uwsgi_server, args):
    # uWSGI's test function joins its arguments byte for byte.
    who = b", ".join(args) if args else b"world"
    assert uwsgi.rpc(real_uwsgi_server.tcp, b"hello", *args) == b"Hello, " + who + b"!"


@NETWORK
@given(st.binary(min_size=1, max_size=300), st.binary(min_size=1, max_size=4096))
def test_remote_cache_binary_round_trip(uwsgi_rs_server, real_uwsgi_server, key, value):
    for server in (uwsgi_rs_server, real_uwsgi_server):
        cache = "@" + server.tcp
        assert uwsgi.cache_update(key, value, 0, cache) is True
        assert uwsgi.cache_get(key, cache) == value
        assert uwsgi.cache_del(key, cache) is True


@NETWORK
@given(objects)
def test_marshal_message_round_trip(uwsgi_rs_server, obj):
    # uwsgi-rs's example app answers a marshal message with the object it received.
    assert uwsgi.send_message(uwsgi_rs_server.tcp, 33, 0, obj) == obj


@pytest.mark.parametrize("obj", [2**1000, -(2**65), float("inf"), -0.0])
def test_marshal_edge_values(obj):
    back = uwsgi.testing.marshal_loads(uwsgi.testing.marshal_dumps(obj))
    assert same(back, obj)
    nan = uwsgi.testing.marshal_loads(uwsgi.testing.marshal_dumps(float("nan")))
    assert math.isnan(nan)


def test_marshal_refuses_deep_and_foreign_objects():
    deep = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="deeply"):
        uwsgi.testing.marshal_dumps(deep)
    with pytest.raises(ValueError, match="unmarshallable"):
        uwsgi.testing.marshal_dumps({1: object()})
    with pytest.raises(uwsgi.ProtocolError):
        uwsgi.testing.marshal_loads(b"[\x01\x00\x00\x00[")
