"""Run under usockrun: an unmodified CPython serves files with http.server
and downloads them with urllib, in one process. Every socket is a user-space
socket; the checks are on content, status codes and addresses. Exit 0 on
success."""
import hashlib
import http.server
import os
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request

root = tempfile.mkdtemp()
blob = os.urandom(5 * 1024 * 1024)
with open(os.path.join(root, "blob.bin"), "wb") as f:
    f.write(blob)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
port = srv.server_address[1]
t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
t.start()

base = f"http://127.0.0.1:{port}"
body = urllib.request.urlopen(base + "/blob.bin", timeout=20).read()
assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest(), "download differs"
try:
    urllib.request.urlopen(base + "/missing", timeout=20)
    raise SystemExit("a missing file did not give 404")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code

# A UDP exchange too.
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(("127.0.0.1", 0))
b.sendto(b"ping", a.getsockname())
data, src = a.recvfrom(100)
assert data == b"ping" and src == ("127.0.0.1", b.getsockname()[1]), (data, src)

srv.shutdown()
print(f"preload: http.server + urllib 5 MiB and 404 OK on port {port}, UDP OK")
