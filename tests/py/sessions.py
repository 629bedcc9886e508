"""py-consul's session and lock calls against a Concord agent.

Usage: sessions.py HOST:PORT
Creates two sessions with `session.create`, takes a lock with `kv.put(acquire=...)`, checks that
the other session is refused, renews with `session.renew`, releases with `kv.put(release=...)`,
destroys with `session.destroy`, and checks `session.info` and `session.list`.
Exits non-zero with a message on the first mismatch.
"""

import sys
import time

import consul


def check(cond, message):
    if not cond:
        sys.exit(f"sessions: FAILED: {message}")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))
    deadline = time.time() + 20
    while not c.catalog.nodes()[1] and time.time() < deadline:
        time.sleep(0.2)
    a = c.session.create(name="a", lock_delay=0, ttl=30)
    b = c.session.create(name="b", lock_delay=0, behavior="delete")
    check(isinstance(a, str) and len(a) == 36, f"session.create returned {a!r}")
    check(c.kv.put("svc/leader", "a", acquire=a) is True, "a could not acquire")
    check(c.kv.put("svc/leader", "b", acquire=b) is False, "b acquired a held lock")
    _, entry = c.kv.get("svc/leader")
    check(entry["Session"] == a and entry["LockIndex"] == 1, f"entry after acquire: {entry!r}")
    renewed = c.session.renew(a)
    check(renewed is not None and renewed["ID"] == a, f"session.renew returned {renewed!r}")
    check(c.kv.put("svc/leader", "free", release=a) is True, "a could not release")
    check(c.kv.put("svc/leader", "b", acquire=b) is True, "b could not acquire a released lock")
    _, info = c.session.info(a)
    check(info is not None and info["Name"] == "a" and info["TTL"] == "30s", f"session.info returned {info!r}")
    _, sessions = c.session.list()
    check(sorted(s["Name"] for s in sessions) == ["a", "b"], f"session.list returned {sessions!r}")
    check(c.session.destroy(b) is True, "session.destroy failed")
    _, gone = c.kv.get("svc/leader")
    check(gone is None, f"behavior=delete left the key: {gone!r}")
    _, info = c.session.info(b)
    check(info is None, f"a destroyed session is still there: {info!r}")
    print("sessions: ok")


if __name__ == "__main__":
    main()
