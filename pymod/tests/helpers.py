"""In-test peers: tiny TCP responders for the failure cases real servers do not produce."""

import contextlib
import socket
import struct
import threading


@contextlib.contextmanager
def responder(reply=b"", *, read=65536, silent=False, count=100):
    """Listens on 127.0.0.1; for each connection reads once (up to `read` bytes), then sends
    `reply` and closes — or, `silent`, keeps the connection open without a byte.
    Yields "127.0.0.1:PORT"."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        served = 0
        while not stop.is_set() and served < count:
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            served += 1
            if silent:
                held.append(conn)
                continue
            with conn:
                conn.settimeout(2)
                try:
                    if read:
                        conn.recv(read)
                    conn.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1:%d" % listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def packet(modifier1, block, modifier2=0):
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block


def vars_block(pairs):
    out = b""
    for key, value in pairs:
        out += struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    return out


def array_block(items):
    return b"".join(struct.pack("<H", len(item)) + item for item in items)


def refused_address():
    """A TCP address nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]
