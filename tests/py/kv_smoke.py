"""KV smoke test with py-consul (PyPI `py-consul`, module `consul`) against Concord servers.

Usage: kv_smoke.py HOST:PORT [HOST:PORT ...]
Writes through the first address and reads back through every address (consistent and stale
reads). Exits non-zero with a message on the first mismatch.
"""

import sys
import time

import consul

PREFIX = "py-smoke/"
# Stale reads on a follower may lag the leader briefly; poll this long before calling it a failure.
STALE_CATCH_UP_S = 10.0


def check(cond, message):
    if not cond:
        sys.exit(f"kv_smoke: FAILED: {message}")


def client(addr):
    host, port = addr.rsplit(":", 1)
    return consul.Consul(host=host, port=int(port))


def stale_value(c, key):
    deadline = time.monotonic() + STALE_CATCH_UP_S
    while True:
        _, data = c.kv.get(key, consistency="stale")
        if data is not None or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def main(addrs):
    check(addrs, "no addresses given")
    writer = client(addrs[0])
    readers = [client(a) for a in addrs]

    check(writer.kv.put(PREFIX + "a", "1") is True, "put a")
    check(writer.kv.put(PREFIX + "b", b"\x00binary\xff", flags=7) is True, "put b")

    for addr, r in zip(addrs, readers):
        index, data = r.kv.get(PREFIX + "a", consistency="consistent")
        check(data is not None and data["Value"] == b"1", f"{addr}: consistent get a -> {data!r}")
        check(int(index) >= 1, f"{addr}: index {index!r} < 1")
        data = stale_value(r, PREFIX + "b")
        check(data is not None and data["Value"] == b"\x00binary\xff", f"{addr}: stale get b -> {data!r}")
        check(data["Flags"] == 7, f"{addr}: flags {data['Flags']!r} != 7")
        _, entries = r.kv.get(PREFIX, recurse=True, consistency="consistent")
        keys = [e["Key"] for e in entries or []]
        check(keys == [PREFIX + "a", PREFIX + "b"], f"{addr}: recurse keys {keys!r}")
        _, names = r.kv.get(PREFIX, keys=True, consistency="consistent")
        check(names == [PREFIX + "a", PREFIX + "b"], f"{addr}: keys {names!r}")

    _, data = writer.kv.get(PREFIX + "a")
    idx = data["ModifyIndex"]
    check(writer.kv.put(PREFIX + "a", "2", cas=idx) is True, f"cas put with current index {idx}")
    check(writer.kv.put(PREFIX + "a", "3", cas=idx) is False, f"cas put with stale index {idx} succeeded")
    check(writer.kv.put(PREFIX + "a", "4", cas=0) is False, "cas=0 put on an existing key succeeded")
    check(writer.kv.put(PREFIX + "new", "x", cas=0) is True, "cas=0 put on a missing key")
    _, data = readers[-1].kv.get(PREFIX + "a", consistency="consistent")
    check(data["Value"] == b"2", f"after cas: {data!r}")

    check(writer.kv.delete(PREFIX + "a") is True, "delete a")
    for addr, r in zip(addrs, readers):
        _, data = r.kv.get(PREFIX + "a", consistency="consistent")
        check(data is None, f"{addr}: a still present after delete: {data!r}")
    check(writer.kv.delete(PREFIX, recurse=True) is True, "delete prefix")
    _, entries = readers[-1].kv.get(PREFIX, recurse=True, consistency="consistent")
    check(entries is None, f"prefix not empty after recursive delete: {entries!r}")
    print(f"kv_smoke: OK against {', '.join(addrs)}")


if __name__ == "__main__":
    main(sys.argv[1:])
