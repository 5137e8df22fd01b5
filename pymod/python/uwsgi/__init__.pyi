"""uWSGI's Python API, implemented in Rust by uwsgi-rs.

Type stubs for the extension module. pymod/tests/test_stubs.py checks them against the
built module with mypy's stubtest. docs/python.md describes every name.
"""

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, NoReturn, Protocol, final, overload

from . import testing as testing

_Bytes = bytes | bytearray | memoryview | str
"""What uWSGI's `s#` arguments take: bytes-like, or str (sent as UTF-8)."""
_Address = str | bytes
"""host:port, [v6]:port, a unix socket path, unix:PATH or @abstract."""
_Number = int | float | bool

__all__ = [
    "SPOOL_OK",
    "SPOOL_RETRY",
    "SPOOL_IGNORE",
    "version",
    "version_info",
    "buffer_size",
    "numproc",
    "started_on",
    "hostname",
    "cores",
    "has_threads",
    "loop",
    "opt",
    "magic_table",
    "unbit",
    "is_a_reload",
    "sockets",
    "applications",
    "message_manager_marshal",
    "start_response",
    "env",
    "queue_size",
    "spoolers",
    "UwsgiError",
    "ProtocolError",
    "UwsgiConnectionError",
    "UwsgiTimeoutError",
    "RejectedError",
    "UwsgiValueError",
    "NoServerError",
    "RequestContext",
    "parsefile",
    "send_message",
    "send_multi_message",
    "send_multicast_message",
    "spool_remote",
    "register_rpc",
    "rpc",
    "call",
    "rpc_list",
    "cache_get",
    "cache_exists",
    "cache_set",
    "cache_update",
    "cache_del",
    "cache_clear",
    "cache_inc",
    "cache_dec",
    "cache_mul",
    "cache_div",
    "cache_num",
    "cache_keys",
    "queue_push",
    "queue_set",
    "queue_pull",
    "queue_pop",
    "queue_get",
    "queue_last",
    "queue_slot",
    "queue_pull_slot",
    "sharedarea_read",
    "sharedarea_write",
    "sharedarea_read8",
    "sharedarea_readbyte",
    "sharedarea_write8",
    "sharedarea_writebyte",
    "sharedarea_read16",
    "sharedarea_write16",
    "sharedarea_read32",
    "sharedarea_write32",
    "sharedarea_read64",
    "sharedarea_readlong",
    "sharedarea_write64",
    "sharedarea_writelong",
    "sharedarea_inc32",
    "sharedarea_inc64",
    "sharedarea_inclong",
    "sharedarea_dec32",
    "sharedarea_dec64",
    "sharedarea_update",
    "sharedarea_rlock",
    "sharedarea_wlock",
    "sharedarea_unlock",
    "sharedarea_memoryview",
    "sharedarea_object",
    "SharedAreaMemory",
    "lock",
    "unlock",
    "is_locked",
    "register_signal",
    "signal",
    "signal_registered",
    "signal_wait",
    "signal_received",
    "add_timer",
    "add_ms_timer",
    "add_rb_timer",
    "add_cron",
    "add_file_monitor",
    "add_probe",
    "spool",
    "send_to_spooler",
    "spooler_jobs",
    "spooler_get_task",
    "set_spooler_frequency",
    "spooler_pid",
    "spooler_pids",
    "i_am_the_spooler",
    "worker_id",
    "mule_id",
    "masterpid",
    "total_requests",
    "request_id",
    "mem",
    "workers",
    "log",
    "logsize",
    "log_this_request",
    "set_logvar",
    "get_logvar",
    "set_warning_message",
    "alarm",
    "setprocname",
    "micros",
    "ready",
    "accepting",
    "set_user_harakiri",
    "sorry_i_need_to_block",
    "has_hook",
    "get_option",
    "getoption",
    "set_option",
    "setoption",
    "async_sleep",
    "suspend",
    "green_schedule",
    "wait_fd_read",
    "wait_fd_write",
    "extract",
    "embedded_data",
    "mule_msg",
    "mule_get_msg",
    "farm_msg",
    "farm_get_msg",
    "in_farm",
    "listen_queue",
    "ready_fd",
    "i_am_the_lord",
    "lord_scroll",
    "scrolls",
    "metric_get",
    "metric_set",
    "metric_inc",
    "metric_dec",
    "metric_mul",
    "metric_div",
    "metric_set_max",
    "metric_set_min",
    "cluster",
    "cluster_nodes",
    "cluster_best_node",
    "cluster_node_name",
    "snmp_set_community",
    "snmp_set_counter32",
    "snmp_set_counter64",
    "snmp_set_gauge",
    "snmp_incr_counter32",
    "snmp_incr_counter64",
    "snmp_incr_gauge",
    "snmp_decr_counter32",
    "snmp_decr_counter64",
    "snmp_decr_gauge",
    "reload",
    "stop",
    "grunt",
    "disconnect",
    "connection_fd",
    "cl",
    "sendfile",
    "offload",
    "route",
    "add_var",
    "chunked_read",
    "chunked_read_nb",
    "websocket_handshake",
    "websocket_recv",
    "websocket_recv_nb",
    "websocket_send",
    "websocket_send_binary",
    "request_context",
    "connect",
    "async_connect",
    "send",
    "recv",
    "recv_block",
    "recv_frame",
    "is_connected",
    "close",
    "async_send_message",
    "fcgi",
    "testing",
]

# --- constants and globals ---------------------------------------------------------

SPOOL_OK: Final = -2
"""-2: the job is done; its file is deleted."""
SPOOL_RETRY: Final = -1
"""-1: keep the file and run the job again at the next scan."""
SPOOL_IGNORE: Final = 0
"""0: this handler passes; the next language's spooler hook is tried."""

version: bytes
"""The uwsgi-rs version, as bytes (b"0.1.0"), like uWSGI 2.0 on Python 3."""
version_info: tuple[int, int, int, int, str]
"""(major, minor, patch, revision, release tag)."""
buffer_size: int
"""Largest request block accepted, in bytes (uWSGI's --buffer-size; 4096 standalone)."""
numproc: int
"""Number of worker processes (1 standalone)."""
started_on: int
"""When the instance started (standalone: when the module was imported), Unix seconds."""
hostname: bytes
"""The machine's host name."""
cores: int
"""Cores (threads) per worker (1 standalone)."""
has_threads: int
"""1 when Python threads are enabled (always, standalone)."""
loop: str | None
"""The loop engine (None standalone)."""
opt: dict[str, Any]
"""The server's options (uwsgi.testing.configure(opt=...) fills it standalone)."""
magic_table: dict[bytes, bytes]
"""uWSGI's magic variables: embedded, v h t T V and, from the config file, o b p s d c e n
i 0-9 (capitals from the first file); empty standalone."""
unbit: None
"""True on Unbit's builds; None."""
is_a_reload: bool
"""Whether the server was reloaded (False standalone)."""
sockets: list[int]
"""File descriptors of the server's sockets (none standalone)."""
applications: dict[str, Any] | None
"""The dynamic applications dictionary (None until set)."""
message_manager_marshal: Callable[[Any, int], Any] | None
"""The embedded server calls it for marshal messages (modifier1 33); None."""
start_response: Callable[..., Any] | None
"""Embedded: calls the current request's start_response (SystemError outside a request);
None standalone."""
env: dict[str, Any] | None
"""Embedded: the running request's environ, one-thread mode only, absent otherwise (as
uWSGI); None standalone."""
pidfile: bytes
"""Embedded with --pidfile: its path (absent otherwise)."""
queue_size: int
"""Slots of the queue (0: no queue)."""
spoolers: tuple[bytes, ...]
"""The spool directories."""

spooler: Callable[[dict[str | bytes, bytes]], int]
"""Assign the spooler function: uwsgi.spooler = f (absent until assigned)."""

# --- exceptions --------------------------------------------------------------------

class UwsgiError(Exception):
    """Base class of every exception raised by the uwsgi module."""

class ProtocolError(UwsgiError):
    """Bytes that are not valid uwsgi protocol, or a reply of the wrong kind."""

class UwsgiConnectionError(UwsgiError, OSError):
    """A network operation failed; errno, strerror and filename are set as on OSError."""

class UwsgiTimeoutError(UwsgiConnectionError, TimeoutError):
    """A connect, write or read timed out (errno ETIMEDOUT)."""

class RejectedError(UwsgiError, ValueError):
    """The peer refused (ff 0000 00): signal queue full, no spooler, ..."""

class UwsgiValueError(UwsgiError, ValueError):
    """A value the operation cannot take (bad lock number, bounds, oversized item, ...)."""

class NoServerError(UwsgiError, RuntimeError):
    """The function needs a running uWSGI server; the module is standalone."""

# --- files -------------------------------------------------------------------------

def parsefile(
    filename: str | bytes | os.PathLike[str] | os.PathLike[bytes], /
) -> dict[bytes, bytes] | None:
    """The vars of the uwsgi request (modifier1 0) or spool job (17) in a file.

    Keys and values are bytes; a repeated key keeps its last value. Returns None when
    the file cannot be read or holds no such packet, as uWSGI does (the reason is logged
    to the "uwsgi" logger at DEBUG level).
    """

# --- messages ----------------------------------------------------------------------

def send_message(
    destination: _Address,
    modifier1: int,
    modifier2: int,
    payload: Any,
    timeout: float | None = None,
    fd: int = -1,
    cl: int = 0,
) -> Any:
    """Sends one packet and reads the reply.

    modifier1 33: the payload is marshalled (whatever its type) and the unmarshalled reply
    returned (None when the server answered nothing). Other modifiers: a dict payload is
    sent as vars, bytes as they are; the result is an iterator over the reply's bytes.
    """

def send_multi_message(
    cluster: Sequence[tuple[str | bytes, int, Any] | tuple[_Address, Any]],
    modifier1: int,
    modifier2: int,
    timeout: float | None = None,
) -> tuple[Any, ...]:
    """Sends to every node at once; the replies in node order (failures as exception
    values), within `timeout` seconds in all."""

def send_multicast_message(
    group: _Address,
    message: _Bytes,
    *,
    ttl: int | None = None,
    loop: bool | None = None,
    interface: str | None = None,
) -> bool:
    """One datagram 4a LLLL 00 | message to a multicast group (or any UDP/unix address)."""

def spool_remote(
    address: _Address, job: Mapping[_Bytes, _Bytes], /, *, timeout: float | None = None
) -> bool:
    """Enqueues a job on the spooler of the server at `address` (uwsgi-rs)."""

# --- RPC ---------------------------------------------------------------------------

def register_rpc(
    name: _Bytes, function: Callable[..., bytes | str | None], argc: int = 0
) -> Literal[True]:
    """Registers `function` as RPC function `name`."""

def rpc(
    node: _Address | None, function: _Bytes, *args: _Bytes, timeout: float | None = None
) -> bytes | None:
    """Calls an RPC function locally (node None or empty) or on the server at `node`."""

def call(function: _Bytes, *args: _Bytes) -> bytes | None:
    """Calls a local RPC function."""

def rpc_list() -> tuple[bytes, ...]:
    """The names of the local RPC functions."""

# --- cache -------------------------------------------------------------------------

def cache_get(
    key: _Bytes, cache: _Bytes | None = None, *, timeout: float | None = None
) -> bytes | None:
    """The value of `key`, or None. `cache`: a local name, or name@address / @address."""

def cache_exists(
    key: _Bytes, cache: _Bytes | None = None, *, timeout: float | None = None
) -> Literal[True] | None: ...
def cache_set(
    key: _Bytes,
    value: _Bytes,
    expires: int = 0,
    cache: _Bytes | None = None,
    *,
    timeout: float | None = None,
) -> Literal[True] | None:
    """Stores `value` unless `key` exists."""

def cache_update(
    key: _Bytes,
    value: _Bytes,
    expires: int = 0,
    cache: _Bytes | None = None,
    *,
    timeout: float | None = None,
) -> Literal[True] | None:
    """Stores `value`, replacing any existing one."""

def cache_del(
    key: _Bytes, cache: _Bytes | None = None, *, timeout: float | None = None
) -> Literal[True] | None: ...
def cache_clear(
    cache: _Bytes | None = None, *, timeout: float | None = None
) -> Literal[True] | None: ...
def cache_inc(
    key: _Bytes, value: int = 1, expires: int = 0, cache: _Bytes | None = None
) -> Literal[True] | None: ...
def cache_dec(
    key: _Bytes, value: int = 1, expires: int = 0, cache: _Bytes | None = None
) -> Literal[True] | None: ...
def cache_mul(
    key: _Bytes, value: int = 2, expires: int = 0, cache: _Bytes | None = None
) -> Literal[True] | None: ...
def cache_div(
    key: _Bytes, value: int = 2, expires: int = 0, cache: _Bytes | None = None
) -> Literal[True] | None: ...
def cache_num(
    key: _Bytes, cache: _Bytes | None = None, *, timeout: float | None = None
) -> int: ...
def cache_keys(cache: _Bytes | None = None) -> list[bytes]: ...

# --- queue -------------------------------------------------------------------------

def queue_push(message: _Bytes) -> Literal[True] | None: ...
def queue_set(index: int, message: _Bytes) -> Literal[True] | None: ...
def queue_pull() -> bytes | None: ...
def queue_pop() -> bytes | None: ...
def queue_get(index: int) -> bytes | None: ...
@overload
def queue_last() -> bytes | None: ...
@overload
def queue_last(num: int) -> bytes | list[bytes | None] | None: ...
def queue_slot() -> int: ...
def queue_pull_slot() -> int: ...

# --- shared areas ------------------------------------------------------------------

def sharedarea_read(id: int, pos: int, len: int = 0) -> bytes: ...
def sharedarea_write(id: int, pos: int, data: _Bytes) -> None: ...
def sharedarea_read8(id: int, pos: int) -> int: ...
def sharedarea_readbyte(id: int, pos: int) -> int: ...
def sharedarea_write8(id: int, pos: int, value: int) -> None: ...
def sharedarea_writebyte(id: int, pos: int, value: int) -> None: ...
def sharedarea_read16(id: int, pos: int) -> int: ...
def sharedarea_write16(id: int, pos: int, value: int) -> None: ...
def sharedarea_read32(id: int, pos: int) -> int: ...
def sharedarea_write32(id: int, pos: int, value: int) -> None: ...
def sharedarea_read64(id: int, pos: int) -> int: ...
def sharedarea_readlong(id: int, pos: int) -> int: ...
def sharedarea_write64(id: int, pos: int, value: int) -> None: ...
def sharedarea_writelong(id: int, pos: int, value: int) -> None: ...
def sharedarea_inc32(id: int, pos: int, value: int = 1) -> None: ...
def sharedarea_inc64(id: int, pos: int, value: int = 1) -> None: ...
def sharedarea_inclong(id: int, pos: int, value: int = 1) -> None: ...
def sharedarea_dec32(id: int, pos: int, value: int = 1) -> None: ...
def sharedarea_dec64(id: int, pos: int, value: int = 1) -> None: ...
def sharedarea_update(id: int) -> None: ...
def sharedarea_rlock(id: int) -> None: ...
def sharedarea_wlock(id: int) -> None: ...
def sharedarea_unlock(id: int) -> None: ...
def sharedarea_memoryview(id: int) -> memoryview:
    """A writable memoryview over the whole area (UwsgiValueError for an unknown id)."""

@final
class SharedAreaMemory:
    """The area's memory behind sharedarea_memoryview's view (buffer protocol)."""

def sharedarea_object(id: int) -> NoReturn:
    """Raises UwsgiValueError: uwsgi-rs areas are bytes only."""

# --- locks -------------------------------------------------------------------------

def lock(num: int = 0) -> None: ...
def unlock(num: int = 0) -> None: ...
def is_locked(num: int = 0) -> bool: ...

# --- signals and timers ------------------------------------------------------------

def register_signal(num: int, target: str, handler: Callable[[int], object]) -> None: ...
def signal(
    num: int, remote: _Address | None = None, *, timeout: float | None = None
) -> None:
    """Raises signal `num`: locally (the handler runs now) or on the server at `remote`."""

def signal_registered(num: int) -> Literal[True] | None: ...
def signal_wait(num: int | None = None, *, timeout: float | None = None) -> bytes: ...
def signal_received() -> int: ...
def add_timer(num: int, seconds: int) -> None: ...
def add_ms_timer(num: int, milliseconds: int) -> None: ...
def add_rb_timer(num: int, seconds: int, iterations: int = 0) -> None: ...
def add_cron(
    num: int, minute: int, hour: int, day: int, month: int, weekday: int
) -> Literal[True]: ...
def add_file_monitor(num: int, path: _Bytes) -> None: ...
def add_probe(*args: object) -> NoReturn:
    """Raises UwsgiValueError: probes were removed in uWSGI 2.0."""

# --- spooler -----------------------------------------------------------------------

def spool(job: Mapping[_Bytes, _Bytes | _Number] = ..., /, **vars: _Bytes | _Number) -> bytes:
    """Writes a spool job; returns its full path. The `body` item becomes the body."""

def send_to_spooler(
    job: Mapping[_Bytes, _Bytes | _Number] = ..., /, **vars: _Bytes | _Number
) -> bytes: ...
def spooler_jobs() -> list[bytes]: ...
def spooler_get_task(path: _Bytes) -> dict[str | bytes, bytes] | None: ...
def set_spooler_frequency(seconds: int) -> Literal[True]: ...
def spooler_pid() -> int: ...
def spooler_pids() -> list[int]: ...
def i_am_the_spooler() -> Literal[True] | None: ...

# --- the process -------------------------------------------------------------------

def worker_id() -> int: ...
def mule_id() -> int: ...
def masterpid() -> int: ...
def total_requests() -> int: ...
def request_id() -> int: ...
def mem() -> tuple[int, int]: ...
def workers() -> tuple[dict[str, Any], ...]: ...
def log(message: str | bytes) -> Literal[True]: ...
def logsize() -> int: ...
def log_this_request() -> None: ...
def set_logvar(key: _Bytes, value: _Bytes) -> None: ...
def get_logvar(key: _Bytes) -> bytes | None: ...
def set_warning_message(message: _Bytes) -> Literal[True]: ...
def alarm(name: str, message: _Bytes) -> None: ...
def setprocname(name: _Bytes) -> None:
    """Sets the process name (/proc/self/comm); OSError when the system refuses it."""
def micros() -> int: ...
def ready() -> bool: ...
def accepting(accepting: int = 1) -> None: ...
def set_user_harakiri(seconds: int) -> None: ...
def sorry_i_need_to_block() -> None: ...
def has_hook(num: int) -> None: ...
def get_option(index: int) -> int: ...
def getoption(index: int) -> int: ...
def set_option(index: int, value: int) -> int: ...
def setoption(index: int, value: int) -> int: ...
def async_sleep(seconds: float) -> bytes: ...
def suspend() -> Literal[True]: ...
def green_schedule() -> Literal[True]: ...
def wait_fd_read(fd: int, timeout: int = 0) -> bytes: ...
def wait_fd_write(fd: int, timeout: int = 0) -> bytes: ...
def extract(location: str) -> bytes | None: ...
def embedded_data(name: str) -> NoReturn: ...
def mule_msg(message: _Bytes, target: int | str | None = None) -> bool: ...
def mule_get_msg(
    signals: bool = True, farms: bool = True, buffer_size: int = 65536, timeout: int = -1
) -> bytes | None: ...
def farm_msg(farm: str, message: _Bytes) -> bool: ...
def farm_get_msg() -> bytes | None: ...
def in_farm(name: str | None = None) -> Literal[True] | None: ...
def listen_queue(id: int = 0) -> int: ...
def ready_fd() -> int: ...
def i_am_the_lord(legion: str) -> bool: ...
def lord_scroll(legion: str) -> None: ...
def scrolls(legion: str) -> None: ...
def metric_get(name: str) -> int: ...
def metric_set(name: str, value: int = 1) -> None: ...
def metric_inc(name: str, value: int = 1) -> None: ...
def metric_dec(name: str, value: int = 1) -> None: ...
def metric_mul(name: str, value: int = 1) -> None: ...
def metric_div(name: str, value: int = 1) -> None: ...
def metric_set_max(name: str, value: int = 1) -> None: ...
def metric_set_min(name: str, value: int = 1) -> None: ...
def cluster() -> None: ...
def cluster_nodes() -> list[bytes]: ...
def cluster_best_node() -> bytes | None: ...
def cluster_node_name(name: _Address | None = None) -> bytes | None: ...
def snmp_set_community(community: _Bytes) -> Literal[True] | None: ...
def snmp_set_counter32(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_set_counter64(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_set_gauge(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_incr_counter32(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_incr_counter64(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_incr_gauge(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_decr_counter32(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_decr_counter64(oid: int, value: int = 1) -> Literal[True] | None: ...
def snmp_decr_gauge(oid: int, value: int = 1) -> Literal[True] | None: ...

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

# Need a server or a current request: they raise NoServerError standalone.
def reload() -> bool | None: ...
def stop() -> bool | None: ...
def grunt(*args: object) -> Literal[True] | None: ...
def disconnect() -> None: ...
def connection_fd() -> int: ...
def cl() -> int: ...
def sendfile(
    file: str | bytes | int | _HasFileno, chunk: int = 0, pos: int = 0, filesize: int = 0
) -> Literal[True] | None: ...
def offload(*args: object) -> bytes: ...
def route(router: str, args: str) -> int: ...
def add_var(key: str | bytes, value: str | bytes) -> Literal[True]: ...
def chunked_read(timeout: int = 0) -> bytes: ...
def chunked_read_nb() -> bytes | None: ...
def websocket_handshake(
    key: str | bytes | None = None,
    origin: str | bytes | None = None,
    proto: str | bytes | None = None,
) -> None: ...
def websocket_recv(request_context: RequestContext | None = None) -> bytes: ...
def websocket_recv_nb(request_context: RequestContext | None = None) -> bytes: ...
def websocket_send(
    message: str | bytes, request_context: RequestContext | None = None
) -> None: ...
def websocket_send_binary(
    message: str | bytes, request_context: RequestContext | None = None
) -> None: ...
def request_context() -> RequestContext: ...

@final
class RequestContext:
    """The current request (request_context()), for the websocket functions."""

# --- raw connections ---------------------------------------------------------------

# Every function below but connect/async_connect takes any descriptor number, as uWSGI;
# each wait for it is bounded by the timeout (UwsgiTimeoutError).

def connect(address: _Address, timeout: float | None = None) -> int: ...
def async_connect(address: _Address) -> int:
    """A non-blocking connection under way; send/recv on it still wait up to their timeout."""

@overload
def send(fd: int, data: _Bytes, /, *, timeout: float | None = None) -> Literal[True]: ...
@overload
def send(data: _Bytes, /, *, timeout: float | None = None) -> Literal[True]:
    """Writes to the current request's connection: NoServerError standalone,
    SystemError outside a request."""
def recv(fd: int, max_size: int = 4096, *, timeout: float | None = None) -> bytes | None: ...
def recv_block(fd: int, size: int, timeout: float | None = None) -> bytes | None: ...
def recv_frame(
    fd: int, prefix: bytes = b"\x00", suffix: bytes = b"\xff", *, timeout: float | None = None
) -> bytes: ...
def is_connected(fd: int) -> bool: ...
def async_send_message(fd: int, modifier1: int, modifier2: int, obj: Any) -> None: ...
def fcgi(
    address: _Address,
    env: Mapping[_Bytes, _Bytes],
    stdin_fd: int = -1,
    stdin_size: int = 0,
    *,
    stdin: _Bytes | None = None,
    timeout: float | None = None,
) -> Iterator[bytes]:
    """One FastCGI responder request; an iterator over the FCGI_STDOUT data."""

def close(fd: int) -> None: ...
