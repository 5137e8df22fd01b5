"""uWSGI's Python API, implemented in Rust by uwsgi-rs.

Type stubs for the extension module. pymod/tests/test_stubs.py checks them against the
built module with mypy's stubtest.
"""

import os
from typing import Final

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
    "UwsgiError",
    "ProtocolError",
    "UwsgiConnectionError",
    "parsefile",
]

# Spooler return codes.
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

def parsefile(
    filename: str | bytes | os.PathLike[str] | os.PathLike[bytes], /
) -> dict[bytes, bytes] | None:
    """The vars of the uwsgi request (modifier1 0) or spool job (17) in a file.

    Keys and values are bytes; a repeated key keeps its last value. Returns None when
    the file cannot be read or holds no such packet, as uWSGI does (the reason is logged
    to the "uwsgi" logger at DEBUG level). Raises TypeError for a filename that is not
    str, bytes or os.PathLike, and ValueError for one containing a NUL character.
    """

class UwsgiError(Exception):
    """Base class of every exception raised by the uwsgi module."""

class ProtocolError(UwsgiError):
    """Bytes that are not valid uwsgi protocol; the message is the codec's reason."""

class UwsgiConnectionError(UwsgiError, OSError):
    """A network operation failed; errno, strerror and filename are set as on OSError."""
