"""Control of the standalone uwsgi instance, for tests (see docs/python.md)."""

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

__all__ = [
    "configure",
    "reset",
    "run_spooler",
    "run_timers",
    "advance_time",
    "now",
    "info",
    "snmp_value",
    "marshal_dumps",
    "marshal_loads",
    "encode_vars",
]

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

class _RunReport(TypedDict):
    done: int
    retried: int
    ignored: int
    malformed: int
    skipped: int

def configure(
    *,
    caches: str | Sequence[str] | None = None,
    queue: int | None = None,
    queue_blocksize: int = 8192,
    sharedareas: int | str | Sequence[int | str] | None = None,
    locks: int = 0,
    rpc_max: int = 64,
    spooler: _Path | Sequence[_Path] | None = None,
    spooler_ordered: bool = False,
    socket_timeout: float | None = None,
    clock: int | None = None,
    opt: Mapping[str, Any] | None = None,
) -> None:
    """A fresh instance with these settings; keywords left out take the defaults.

    caches: --cache2 option strings ([] for none; default "name=default,items=1000,
    blocksize=65536"); queue: slots (0 for none; default 100); sharedareas: pages or
    --sharedarea strings ([] for none; default one page); locks: locks beyond lock 0;
    spooler: spool directories (default none); clock: unix time to start a manual clock
    at (default: the system clock); opt: what uwsgi.opt shows.
    """

def reset() -> None:
    """A fresh instance with the current settings: every item, registration and handler
    is gone."""

def run_spooler() -> _RunReport:
    """Runs the ready spool jobs through uwsgi.spooler."""

def run_timers() -> list[int]:
    """Raises the signals of due timers, crons and changed monitored files."""

def advance_time(seconds: float) -> list[int]:
    """Moves the manual clock, expires cache items, and runs what is due."""

def now() -> int:
    """The instance's clock, unix seconds."""

def info() -> dict[str, Any]:
    """What the current instance holds."""

def snmp_value(oid: int) -> int | None:
    """The value the snmp_* functions keep in slot `oid`."""

def marshal_dumps(obj: Any, version: int = 1) -> bytes:
    """`obj` in marshal format, written by the protocol crate's codec."""

def marshal_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The object in marshal bytes, read by the protocol crate's codec."""

def encode_vars(vars: Mapping[Any, Any]) -> bytes:
    """The uwsgi vars block of a dict."""
