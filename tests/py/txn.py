"""py-consul's transaction call against a Concord agent.

Usage: txn.py HOST:PORT
Sets two keys atomically with `txn.put`, reads them back with get verbs in a read-only
transaction, then sends a transaction whose last check fails and checks that py-consul raises
on the 409 and that none of its writes were applied.
Exits non-zero with a message on the first mismatch.
"""

import base64
import sys

import consul


def check(cond, message):
    if not cond:
        sys.exit(f"txn: FAILED: {message}")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))
    ok = c.txn.put([
        {"KV": {"Verb": "set", "Key": "bank/alice", "Value": b64("100")}},
        {"KV": {"Verb": "set", "Key": "bank/bob", "Value": b64("50")}},
    ])
    check(ok["Errors"] is None and len(ok["Results"]) == 2, f"txn.put returned {ok!r}")
    check(ok["Results"][0]["KV"]["Key"] == "bank/alice" and ok["Results"][0]["KV"]["Value"] is None, f"set result {ok!r}")
    index = ok["Results"][0]["KV"]["ModifyIndex"]
    read = c.txn.put([{"KV": {"Verb": "get-tree", "Key": "bank/"}}])
    values = {r["KV"]["Key"]: base64.b64decode(r["KV"]["Value"]).decode() for r in read["Results"]}
    check(values == {"bank/alice": "100", "bank/bob": "50"}, f"get-tree returned {read!r}")
    try:
        c.txn.put([
            {"KV": {"Verb": "set", "Key": "bank/alice", "Value": b64("0")}},
            {"KV": {"Verb": "set", "Key": "bank/bob", "Value": b64("150")}},
            {"KV": {"Verb": "check-index", "Key": "bank/alice", "Index": index + 1000}},
        ])
        sys.exit("txn: FAILED: a failing transaction did not raise")
    except consul.ConsulException as e:
        check("409" in str(e) and "failed index check" in str(e), f"unexpected error {e!r}")
    _, alice = c.kv.get("bank/alice")
    _, bob = c.kv.get("bank/bob")
    check(alice["Value"] == b"100" and bob["Value"] == b"50", f"rolled-back txn changed values: {alice!r} {bob!r}")
    print("txn: ok")


if __name__ == "__main__":
    main()
