"""Captures cache dumps (modifier1 111, modifier2 6) from real uWSGI 2.0 into
tests/vectors/cache-dump/. Run from the repository root after `cargo build -p uwsgi-cli`,
with the pyuwsgi venv at target/peers/uwsgi-venv."""
import socket, struct, subprocess, sys, time, os
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
U = os.path.join(ROOT, "target/peers/uwsgi-venv/bin/uwsgi")
CLI = os.path.join(ROOT, "target/debug/uwsgi-cli")
OUT = os.path.join(ROOT, "tests/vectors/cache-dump")
def dump(port, name):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("<BHB", 111, len(name), 6) + name)
    out = b""
    while True:
        c = s.recv(65536)
        if not c: break
        out += c
    return out
def run(port, cache2, ops, outname):
    p = subprocess.Popen([U, "--socket", f"127.0.0.1:{port}", "--cache2", cache2, "--master", "--processes", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        for op in ops:
            subprocess.run([CLI, "cache", f"127.0.0.1:{port}", *op], check=True)
        d = dump(port, b"c")
        open(os.path.join(OUT, outname), "wb").write(d)
        print(outname, len(d), d[:40].hex())
    finally:
        p.terminate(); p.wait()
run(19501, "name=c,items=4,blocksize=16,keysize=16",
    [["--cache","c","set","k1","v1"], ["--cache","c","set","key2","value-two"], ["--cache","c","--expires","3600","set","exp","soon"]], "uwsgi-2.0.30-plain.bin")
run(19502, "name=c,items=4,blocks=8,blocksize=8,keysize=8,bitmap=1",
    [["--cache","c","set","a","0123456789abc"], ["--cache","c","set","b","x"]], "uwsgi-2.0.30-bitmap.bin")
