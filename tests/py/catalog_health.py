"""py-consul's catalog and health calls against a Concord agent.

Usage: catalog_health.py HOST:PORT
Registers two instances of `web` through `catalog.register` (one passing, one critical), then checks
`catalog.service`, `catalog.services`, `health.service(passing=True)`, a blocking
`health.service(index=...)` that returns when a check changes, and `catalog.deregister`.
Exits non-zero with a message on the first mismatch.
"""

import sys
import threading
import time

import consul


def check(cond, message):
    if not cond:
        sys.exit(f"catalog_health: FAILED: {message}")


def register(c, node, status, tags):
    ok = c.catalog.register(
        node,
        "10.0.0.%d" % (len(node) + 1),
        service={"Service": "web", "ID": f"web-{node}", "Port": 8080, "Tags": tags},
        check={"CheckID": f"alive-{node}", "Name": "alive", "ServiceID": f"web-{node}", "Status": status},
    )
    check(ok is True, f"catalog.register returned {ok!r}")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))
    register(c, "a", "passing", ["primary"])
    register(c, "bb", "critical", ["secondary"])

    index, nodes = c.catalog.service("web")
    check(sorted(n["Node"] for n in nodes) == ["a", "bb"], f"catalog.service nodes {nodes}")
    check(all(n["ServicePort"] == 8080 for n in nodes), "ServicePort")
    _, tagged = c.catalog.service("web", tag="primary")
    check([n["Node"] for n in tagged] == ["a"], f"catalog.service tag=primary {tagged}")
    _, services = c.catalog.services()
    check(sorted(services.get("web", [])) == ["primary", "secondary"], f"catalog.services {services}")

    _, passing = c.health.service("web", passing=True)
    check([e["Node"]["Node"] for e in passing] == ["a"], f"health.service passing {passing}")
    _, everyone = c.health.service("web")
    check(len(everyone) == 2, f"health.service {everyone}")

    # A blocking query returns once the critical instance recovers.
    index, _ = c.health.service("web", passing=True)
    result = {}

    def block():
        result["answer"] = c.health.service("web", passing=True, index=index, wait="20s")

    t = threading.Thread(target=block)
    started = time.monotonic()
    t.start()
    time.sleep(0.5)
    register(c, "bb", "passing", ["secondary"])
    t.join(timeout=25)
    elapsed = time.monotonic() - started
    check("answer" in result, "the blocking query never returned")
    new_index, woke = result["answer"]
    check(int(new_index) > int(index), f"index did not move: {index} -> {new_index}")
    check(sorted(e["Node"]["Node"] for e in woke) == ["a", "bb"], f"blocking answer {woke}")
    check(elapsed < 10, f"the blocking query returned after {elapsed:.1f}s, not when the check changed")

    check(c.catalog.deregister("bb") is True, "catalog.deregister")
    _, after = c.health.service("web")
    check([e["Node"]["Node"] for e in after] == ["a"], f"after deregister {after}")
    print("catalog_health: ok")


if __name__ == "__main__":
    main()
