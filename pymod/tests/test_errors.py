"""The exception hierarchy."""

import errno
import pickle

import pytest

import uwsgi


def test_hierarchy():
    assert issubclass(uwsgi.UwsgiError, Exception)
    assert not issubclass(uwsgi.UwsgiError, OSError)
    assert issubclass(uwsgi.ProtocolError, uwsgi.UwsgiError)
    assert not issubclass(uwsgi.ProtocolError, OSError)
    assert issubclass(uwsgi.UwsgiConnectionError, uwsgi.UwsgiError)
    assert issubclass(uwsgi.UwsgiConnectionError, OSError)
    # The builtin name stays the builtin.
    assert uwsgi.UwsgiConnectionError is not ConnectionError


@pytest.mark.parametrize(
    "name", ["UwsgiError", "ProtocolError", "UwsgiConnectionError"]
)
def test_classes_live_in_the_uwsgi_module(name):
    cls = getattr(uwsgi, name)
    assert cls.__module__ == "uwsgi"
    assert cls.__name__ == name
    assert cls.__doc__


def test_connection_error_behaves_like_oserror():
    err = uwsgi.UwsgiConnectionError(
        errno.ECONNREFUSED, "Connection refused", "127.0.0.1:3031"
    )
    assert err.errno == errno.ECONNREFUSED
    assert err.strerror == "Connection refused"
    assert err.filename == "127.0.0.1:3031"
    with pytest.raises(OSError):
        raise err
    with pytest.raises(uwsgi.UwsgiError):
        raise err


def test_protocol_error_carries_a_message():
    with pytest.raises(uwsgi.UwsgiError, match="empty vars key"):
        raise uwsgi.ProtocolError("invalid packet: empty vars key at offset 4")


@pytest.mark.parametrize(
    "err",
    [
        uwsgi.UwsgiError("base"),
        uwsgi.ProtocolError("invalid packet"),
        uwsgi.UwsgiConnectionError(errno.ETIMEDOUT, "timed out", "/tmp/app.sock"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_pickle(err):
    # Exceptions cross process boundaries (multiprocessing, mules): they must pickle.
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert back.args == err.args
