#!/usr/bin/env python3
"""Regenerates the seed corpus fuzz/seeds/<target>/ from the golden vectors.

Sources: tests/vectors/nginx-requests.jsonl, uwsgi-2.0-replies.jsonl and marshal.jsonl
(captured from real nginx, uWSGI 2.0 and CPython; see tests/vectors/README.md), plus a
few hand-encoded MessagePack payloads and deterministic byte strings for the targets
that build values from the fuzzer's bytes. Every seed is cut to 4096 bytes so that
libFuzzer's default -max_len stays 4096.

    python3 fuzz/seed.py          # rewrites fuzz/seeds/ (owned entirely by this script)

The output is deterministic; commit it. tests/tests/regressions.rs replays it in every
`cargo test`.
"""

import hashlib
import json
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
OUT = ROOT / "fuzz" / "seeds"
MAX_LEN = 4096

APP_SLOTS = {0, 5, 6, 7, 8, 9, 11, 14, 15, 18, 19, 23, 24, 25, 27, 28, 30, 35}


def load(name):
    with open(VECTORS / name) as f:
        return [json.loads(line) for line in f if line.strip()]


def unhex(text):
    return bytes.fromhex("".join((text or "").split()))


def header(data):
    return data[0], data[1] | data[2] << 8, data[3]


def is_vars_block(m1, m2):
    return (
        m1 in APP_SLOTS
        or m1 in (17, 95, 99, 224)
        or (m1 == 111 and m2 in (3, 4, 17))
        or (m1 == 173 and m2 in (2, 3))
        or (m1 == 173 and m2 == 5)  # reply: big RPC result
    )


def is_array_block(m1, m2):
    return (m1 == 173 and m2 not in (2, 3, 5)) or (m1 == 111 and m2 == 1)


class Seeds:
    def __init__(self):
        self.by_target = {}

    def add(self, target, name, data):
        data = bytes(data[:MAX_LEN])
        files = self.by_target.setdefault(target, {})
        if data in files.values():
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        if safe in files:
            safe += "-" + hashlib.sha1(data).hexdigest()[:8]
        files[safe] = data

    def write(self):
        if OUT.exists():
            shutil.rmtree(OUT)
        total = 0
        for target, files in sorted(self.by_target.items()):
            d = OUT / target
            d.mkdir(parents=True)
            for name, data in sorted(files.items()):
                (d / name).write_bytes(data)
                total += len(data)
            print(f"{target:18} {len(files):4} seeds")
        print(f"total {total} bytes")


# --- a minimal MessagePack encoder for the msgpack seeds --------------------------------


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, (list, tuple)):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def lcg_bytes(seed, n):
    out = bytearray()
    x = seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(x >> 56)
    return bytes(out)


def main():
    s = Seeds()
    nginx = load("nginx-requests.jsonl")
    uwsgi = load("uwsgi-2.0-replies.jsonl")
    marshal = load("marshal.jsonl")

    requests = [(v["name"], unhex(v["request_hex"])) for v in nginx + uwsgi]
    small = []
    for name, req in requests:
        s.add("packet", name, req)
        s.add("packet_roundtrip", name, req)
        if len(req) < 4:
            continue
        s.add("header", name, req[:4])
        m1, size, m2 = header(req)
        block = req[4 : 4 + size]
        if len(block) == size:
            s.add("datagram", name, req[: 4 + size])
            if is_vars_block(m1, m2):
                s.add("vars", name, block)
            if is_array_block(m1, m2):
                s.add("array", name, block)
        # stream: flags (limits, feeding), chunk sizes, then the bytes
        s.add("stream", name, bytes([0x00, 3, 1, 7, 64]) + req)
        s.add("stream", name + "-inplace-permissive", bytes([0x05, 2, 0, 13]) + req)
        if len(req) <= 600:
            small.append(req)
        # cli_decode: a flags byte (bit 0 JSON, bit 1 marshal, bit 2 pcap, bit 3 4 KiB
        # buffer), then the input; server_connection: the bytes of one connection.
        s.add("cli_decode", name, bytes([0x00]) + req)
        s.add("cli_decode", name + "-json", bytes([0x01]) + req)
        s.add("server_connection", name, req)
    s.add("stream", "pipelined", bytes([0x01, 4, 5, 0, 200, 3]) + b"".join(small[:12]))
    s.add("stream", "pipelined-tight", bytes([0x02, 1, 9]) + b"".join(small[12:20]))

    for v in uwsgi:
        req, resp = unhex(v["request_hex"]), unhex(v["response_hex"])
        s.add("reply", v["name"], req[:4] + resp)
        if len(resp) >= 4:
            s.add("header", v["name"] + "-reply", resp[:4])
            m1, size, m2 = header(resp)
            block = resp[4 : 4 + size]
            if len(block) == size and m1 == 111 and m2 == 17:
                s.add("vars", v["name"] + "-reply", block)
            if len(block) == size and m1 == 173 and m2 == 5:
                s.add("vars", v["name"] + "-reply", block)
    for v in nginx:
        s.add("reply", v["name"], unhex(v["request_hex"])[:4] + unhex(v["response_hex"]))

    for v in marshal:
        data = unhex(v["hex"])
        s.add("marshal", f"{v['name']}-v{v['version']}", data)
        if v["version"] in (1, 4):
            s.add("marshal_roundtrip", f"{v['name']}-v{v['version']}", data)

    for i in range(8):
        s.add("marshal_roundtrip", f"random-{i}", lcg_bytes(i + 1, 64 << (i % 4)))
        s.add("packet_roundtrip", f"random-{i}", lcg_bytes(100 + i, 64 << (i % 4)))

    job = {
        "id": 7,
        "name": "resize",
        "tags": ["a", "bb"],
        "weight": 1.5,
        "kind": "Plain",
        "counters": {"x": 1, "y": -2},
        "data": [1, 2, 255],
    }
    kinds = {
        "plain": "Plain",
        "tagged": {"Tagged": -5},
        "pair": {"Pair": [3, True]},
        "resize-map": {"Resize": {"width": 640, "height": 480}},
        "resize-array": {"Resize": [640, 480]},
    }
    for name, kind in kinds.items():
        named = dict(job, kind=kind)
        s.add("msgpack", f"job-named-{name}", mp(named))
        s.add("msgpack", f"job-compact-{name}", mp(list(named.values())))
    values = {
        "nil": None,
        "true": True,
        "int": 42,
        "negative": -1000,
        "u64-max": 2**64 - 1,
        "i64-min": -(2**63),
        "float": 0.1,
        "nan": float("nan"),
        "str": "hello",
        "long-str": "x" * 40,
        "bin": b"\x00\x01\xff",
        "array": [1, "two", [3.0, None]],
        "map": {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "n": [1, 2]},
        "nested": {"a": {"b": {"c": [True, False]}}},
        "array16": list(range(20)),
        "trailing": None,
    }
    for name, v in values.items():
        data = mp(v)
        if name == "trailing":
            data += b"\x01\x02"
        s.add("msgpack", name, data)
    s.add("msgpack", "float32", b"\xca" + struct.pack(">f", 2.5))
    s.add("msgpack", "ext", b"\xd4\x01\x02")

    for v in marshal[::7]:
        s.add("cli_decode", "marshal-%s-v%d" % (v["name"], v["version"]), bytes([0x03]) + unhex(v["hex"]))
    # server_config: ini files as deployments write them.
    s.add("server_config", "demo", (ROOT / "examples" / "demo.ini").read_bytes()
          .replace(b"%(spooldir)", b"/tmp/spool"))
    s.add("server_config", "typical", b"""[uwsgi]
socket = 127.0.0.1:3031
socket = /run/app/%n.sock
chmod-socket = 660
master = true
processes = 4
threads = 2
buffer-size = 32768
limit-post = 1048576
cache2 = name=main,items=1000,blocksize=4096,keysize=64
queue = 16
sharedarea = 4
locks = 2
base = /srv/app
pidfile = %(base)/app.pid
logto = %d%n.log
vacuum = yes
management-allow-from = 10.0.0.0/8,unix
plugins = python3
""")
    s.add("server_config", "http", b"""[uwsgi]
http-socket = :8000
http-socket = /run/app/http.sock
http-keepalive = 2
http-socket-modifier1 = 30
""")
    # server_http: the bytes of one --http-socket connection.
    h = b"Host: example.org\r\n"
    http = {
        "get": b"GET /a%20b/./c?x=1 HTTP/1.1\r\n" + h + b"Cookie: a=1\r\nCookie: b=2\r\n\r\n",
        "head-then-get": b"HEAD / HTTP/1.1\r\n" + h + b"\r\nGET /next HTTP/1.1\r\n" + h + b"\r\n",
        "post": b"POST /up HTTP/1.1\r\n" + h + b"Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n" + h + b"\r\n",
        "chunked": b"POST /c HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n"
                   + b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        "expect": b"PUT /e HTTP/1.1\r\n" + h + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        "http10-keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
        "absolute-form": b"GET http://example.org/p?q HTTP/1.1\r\n" + h + b"\r\n",
        "options-star": b"OPTIONS * HTTP/1.1\r\n" + h + b"\r\n",
        "cl-and-te": b"POST / HTTP/1.1\r\n" + h + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "differing-cl": b"POST / HTTP/1.1\r\n" + h + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "obs-fold": b"GET / HTTP/1.1\r\n" + h + b"X: a\r\n b\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\n" + h[:-2] + b"\n\n",
        "bad-chunk": b"POST / HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n\r\n",
        "dot-dot": b"GET /a/../../b HTTP/1.1\r\n" + h + b"\r\n",
        "no-host": b"GET / HTTP/1.1\r\n\r\n",
        "truncated": b"GET / HTTP/1.1\r\nHost: a",
    }
    for name, data in http.items():
        s.add("server_http", name, data)
    # snmp: GetRequests as uWSGI's agent reads them (spec §7.6) and near misses.
    base = bytes.fromhex("2b06010401829254 11".replace(" ", ""))

    def snmp_get(version, community, request_id, suffix, tail=b"\x05\x00"):
        oid = base + bytes(suffix)
        varbind = b"\x06" + bytes([len(oid)]) + oid + tail
        varbind = b"\x30" + bytes([len(varbind)]) + varbind
        vlist = b"\x30" + bytes([len(varbind)]) + varbind
        pdu = b"\x02" + bytes([len(request_id)]) + request_id + b"\x02\x01\x00\x02\x01\x00" + vlist
        pdu = b"\xa0" + bytes([len(pdu)]) + pdu
        body = b"\x02\x01" + bytes([version]) + b"\x04" + bytes([len(community)]) + community + pdu
        return b"\x30" + bytes([len(body)]) + body

    snmp = {
        "spec-v14-slot6": unhex("302902010004067075626c6963a01c020101020100020100301130"
                                "0f060b2b06010401829254110206 0500"),
        "v2c-total-requests": snmp_get(1, b"public", b"\x12\x34\x56\x78", [1, 1]),
        "v1-worker-1": snmp_get(0, b"public", b"\x01", [1, 31]),
        "slot-100": snmp_get(1, b"public", b"\x00", [2, 100]),
        "slot-101": snmp_get(1, b"public", b"\x00", [2, 101]),
        "community-72": snmp_get(1, b"c" * 72, b"\x07", [2, 1]),
        "empty-request-id": snmp_get(1, b"x", b"", [2, 5]),
        "metric-oid": snmp_get(1, b"public", b"\x01", [3, 1, 5]),
        "longer-oid": snmp_get(1, b"public", b"\x01", [1, 1, 5, 0]),
        "version-3": snmp_get(3, b"public", b"\x01", [2, 6]),
        "foreign-oid": snmp_get(1, b"public", b"\x01", [2, 6])[:30] + b"\x07" + snmp_get(1, b"public", b"\x01", [2, 6])[31:],
        "response-gauge": unhex("302d02010004067075626c6963a220020101020100020100301530"
                                "13060b2b060104018292541102064204 0000002a"),
    }
    for name, data in snmp.items():
        s.add("snmp", name, data)
    # cache_dump: 4 geometry bytes (items-1, blocksize-1, blocks-items, keysize-1, each
    # reduced by the harness) + a dump reply captured from uWSGI 2.0.30.
    dumps = VECTORS / "cache-dump"
    s.add("cache_dump", "uwsgi-plain", bytes([3, 15, 0, 15]) + (dumps / "uwsgi-2.0.30-plain.bin").read_bytes())
    s.add("cache_dump", "uwsgi-bitmap", bytes([3, 7, 4, 7]) + (dumps / "uwsgi-2.0.30-bitmap.bin").read_bytes())
    s.add("cache_dump", "wrong-items", bytes([4, 15, 0, 15]) + (dumps / "uwsgi-2.0.30-plain.bin").read_bytes())
    s.write()


if __name__ == "__main__":
    main()
