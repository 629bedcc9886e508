"""KV load for measuring one agent's memory: N puts of VALUE_BYTES values over KEYS keys, plus
reads, over one keep-alive HTTP connection. Prints ops/s. Usage: kv_load.py HOST PORT [N]"""
import http.client
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
KEYS, VALUE_BYTES = 1000, 1024
conn = http.client.HTTPConnection(host, port, timeout=10)
value = b"x" * VALUE_BYTES
start = time.time()
for i in range(n):
    conn.request("PUT", f"/v1/kv/load/{i % KEYS}", body=value)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or body != b"true":
        sys.exit(f"put {i}: {r.status} {body!r}")
    if i % 10 == 0:
        conn.request("GET", f"/v1/kv/load/{i % KEYS}")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"get {i}: {r.status}")
elapsed = time.time() - start
print(f"{n} puts (+{n // 10} gets) of {VALUE_BYTES} B over {KEYS} keys in {elapsed:.1f}s: {n / elapsed:.0f} puts/s")
