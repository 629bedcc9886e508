"""py-consul's agent and status calls against a Concord agent.

Usage: agent_self.py HOST:PORT
Checks that `agent.self()` has the keys Consul returns (clients read `Config.Version` and
`Stats.consul.leader_addr`), and that `status.leader()` and `status.peers()` agree with it.
Exits non-zero with a message on the first mismatch.
"""

import sys
import uuid

import consul


def check(cond, message):
    if not cond:
        sys.exit(f"agent_self: FAILED: {message}")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))
    me = c.agent.self()
    for key in ("Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"):
        check(key in me, f"agent.self() lacks {key}: {sorted(me)}")
    config = me["Config"]
    for key in ("Datacenter", "NodeName", "NodeID", "Server", "Version", "Revision"):
        check(key in config, f"Config lacks {key}")
    uuid.UUID(config["NodeID"])
    check(config["Version"] == "1.20.0", f"Config.Version {config['Version']!r}")
    for section in ("agent", "build", "consul", "raft", "runtime"):
        check(section in me["Stats"], f"Stats lacks {section}")
    consul_stats = me["Stats"]["consul"]
    for key in ("server", "leader", "leader_addr", "bootstrap", "known_datacenters"):
        check(key in consul_stats, f"Stats.consul lacks {key}")
    leader = c.status.leader()
    check(leader and leader == consul_stats["leader_addr"], f"status.leader() {leader!r} vs leader_addr {consul_stats['leader_addr']!r}")
    peers = c.status.peers()
    check(isinstance(peers, list) and leader in peers, f"status.peers() {peers!r} lacks the leader")
    check(me["Member"]["Name"] == config["NodeName"], "Member.Name is the node name")
    print("agent_self: ok")


if __name__ == "__main__":
    main()
