//! End-to-end: `concord agent -dev` driven by the `concord kv` CLI (Consul's flags and messages)
//! and by curl for the HTTP API's request validation.

use std::process::Command;
use std::time::Duration;

use tests::cluster::AgentProcess;
use tests::http::must;
use tests::{concord_bin, free_ports, run_with_timeout, serial, wait_until, Finished};

/// How long a dev agent may take to listen and elect itself.
const DEV_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for one CLI invocation.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the agent may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A `concord agent -dev` on free ports, with its log in a temp dir.
struct DevAgent {
    agent: AgentProcess,
    _dir: tempfile::TempDir,
}

impl DevAgent {
    fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("concord-dev-").tempdir().expect("tempdir");
        let p = free_ports(5);
        let args = vec![
            "agent".to_string(),
            "-dev".to_string(),
            format!("-http-port={}", p[0]),
            format!("-server-port={}", p[1]),
            format!("-dns-port={}", p[2]),
            format!("-serf-lan-port={}", p[3]),
            format!("-serf-wan-port={}", p[4]),
        ];
        let agent = AgentProcess::spawn("dev", args, p[0], p[1], &dir.path().join("agent.log"));
        wait_until(DEV_READY_TIMEOUT, "the dev agent to elect itself", || agent.leader());
        Self { agent, _dir: dir }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.agent.http_port)
    }

    /// Runs `concord <args>` with `CONSUL_HTTP_ADDR` pointing at this agent.
    fn cli(&self, args: &[&str]) -> Finished {
        cli(args, Some(&self.addr()))
    }
}

/// Runs `concord <args>`, with `CONSUL_HTTP_ADDR` set to `env_addr` or removed.
fn cli(args: &[&str], env_addr: Option<&str>) -> Finished {
    let mut cmd = Command::new(concord_bin());
    cmd.args(args);
    match env_addr {
        Some(addr) => cmd.env("CONSUL_HTTP_ADDR", addr),
        None => cmd.env_remove("CONSUL_HTTP_ADDR"),
    };
    run_with_timeout(&mut cmd, CLI_TIMEOUT)
}

fn assert_ok(out: &Finished, what: &str) {
    assert!(out.status.success(), "{what} failed ({}): stdout {:?} stderr {:?}", out.status, out.stdout, out.stderr);
}

fn assert_fails_with(out: &Finished, what: &str, stderr_has: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: expected exit 1: {out:?}");
    assert!(out.stderr.contains(stderr_has), "{what}: stderr {:?} lacks {stderr_has:?}", out.stderr);
}

/// The `ModifyIndex` row of `kv get -detailed` output.
fn detailed_modify_index(detailed: &str) -> u64 {
    detailed
        .lines()
        .find_map(|l| l.strip_prefix("ModifyIndex"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ModifyIndex in {detailed:?}"))
}

#[test]
fn dev_agent_kv_put_then_get_prints_value() {
    let _serial = serial();
    let dev = DevAgent::start();
    let flag = format!("-http-addr={}", dev.addr());

    // -http-addr with no env; then the env alone; then the http:// form.
    let out = cli(&["kv", "put", &flag, "foo", "bar"], None);
    assert_ok(&out, "kv put");
    assert_eq!(out.stdout, "Success! Data written to: foo\n");
    let out = dev.cli(&["kv", "get", "foo"]);
    assert_ok(&out, "kv get");
    assert_eq!(out.stdout, "bar\n");
    let out = cli(&["kv", "get", &format!("-http-addr=http://{}", dev.addr()), "foo"], None);
    assert_eq!(out.stdout, "bar\n", "{out:?}");

    // -flags and -detailed, aligned like Consul's tabwriter output.
    assert_ok(&dev.cli(&["kv", "put", "-flags=42", "foo", "bar"]), "kv put -flags");
    let out = dev.cli(&["kv", "get", "-detailed", "foo"]);
    assert_ok(&out, "kv get -detailed");
    let labels: Vec<&str> = out.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(labels, ["CreateIndex", "Flags", "Key", "LockIndex", "ModifyIndex", "Session", "Value"], "{}", out.stdout);
    for row in ["Flags            42", "Key              foo", "Session          -", "Value            bar"] {
        assert!(out.stdout.lines().any(|l| l == row), "missing {row:?} in\n{}", out.stdout);
    }
    let index = detailed_modify_index(&out.stdout);

    // -recurse and -keys.
    assert_ok(&dev.cli(&["kv", "put", "dir/a", "1"]), "kv put dir/a");
    assert_ok(&dev.cli(&["kv", "put", "dir/sub/b", "2"]), "kv put dir/sub/b");
    let out = dev.cli(&["kv", "get", "-recurse", "dir/"]);
    assert_eq!(out.stdout, "dir/a:1\ndir/sub/b:2\n", "{out:?}");
    let out = dev.cli(&["kv", "get", "-keys", "dir/"]);
    assert_eq!(out.stdout, "dir/a\ndir/sub/\n", "{out:?}");

    // CAS: the current index wins once; the same index then fails with Consul's message.
    let cas_flag = format!("-modify-index={index}");
    let out = dev.cli(&["kv", "put", "-cas", &cas_flag, "foo", "baz"]);
    assert_ok(&out, "kv put -cas with current index");
    let out = dev.cli(&["kv", "put", "-cas", &cas_flag, "foo", "qux"]);
    assert_fails_with(&out, "kv put -cas with stale index", "Error! Did not write to foo: CAS failed");
    assert_eq!(dev.cli(&["kv", "get", "foo"]).stdout, "baz\n");

    // Delete, then the key is gone (exit 1, Consul's message).
    let out = dev.cli(&["kv", "delete", "foo"]);
    assert_ok(&out, "kv delete");
    assert_eq!(out.stdout, "Success! Deleted key: foo\n");
    assert_fails_with(&dev.cli(&["kv", "get", "foo"]), "kv get of a deleted key", "Error! No key exists at: foo");
    assert_fails_with(&dev.cli(&["kv", "get", "never-written"]), "kv get of a missing key", "Error! No key exists at:");
    let out = dev.cli(&["kv", "delete", "-recurse", "dir/"]);
    assert_eq!(out.stdout, "Success! Deleted keys with prefix: dir/\n", "{out:?}");
    assert_eq!(dev.cli(&["kv", "get", "-recurse", "dir/"]).stdout, "", "an empty prefix lists nothing");

    // Server-side errors are printed with status and body.
    assert_fails_with(&dev.cli(&["kv", "put", "a/../b", "x"]), "kv put of a '..' key", "400");
}

#[test]
fn kv_cli_reports_an_unreachable_agent_and_exits_1() {
    let closed = free_ports(1)[0];
    let out = cli(&["kv", "get", &format!("-http-addr=127.0.0.1:{closed}"), "foo"], None);
    assert_fails_with(&out, "kv get against a closed port", "Error querying Concord agent");
}

#[test]
fn agent_flags_are_validated_with_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = format!("-data-dir={}", dir.path().display());
    let cases: [(&[&str], &str); 3] = [
        (&["agent", "-server", "-bind=127.0.0.1", "-bootstrap-expect=1"], "-data-dir"),
        (&["agent", "-bind=127.0.0.1", "-bootstrap-expect=1", &data_dir], "-server"),
        (&["agent", "-server", "-bind=127.0.0.1", &data_dir], "-bootstrap-expect"),
    ];
    for (args, mention) in cases {
        assert_fails_with(&cli(args, None), &format!("concord {args:?}"), mention);
    }
}

#[test]
fn agent_that_cannot_bind_its_port_exits_1_with_the_reason() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let http_port = held.local_addr().expect("local_addr").port();
    let p = free_ports(1);
    let args = ["agent", "-dev", &format!("-http-port={http_port}"), &format!("-server-port={}", p[0])];
    let out = cli(&args, None);
    assert_fails_with(&out, "agent on a taken port", "Error starting agent");
    assert!(out.stderr.contains(&format!("127.0.0.1:{http_port}")), "the error names the address: {:?}", out.stderr);
}

#[test]
fn dev_agent_exits_zero_on_sigterm() {
    let _serial = serial();
    let mut dev = DevAgent::start();
    let status = dev.agent.terminate(SHUTDOWN_TIMEOUT);
    assert!(status.success(), "agent exited with {status} after SIGTERM\n{}", dev.agent.log_tail());
    assert!(dev.agent.log_tail().contains("shutting down"), "{}", dev.agent.log_tail());
}

#[test]
fn http_rejects_dotdot_keys_with_400_and_oversized_values_with_413() {
    let _serial = serial();
    let dev = DevAgent::start();
    let r = must("PUT", &dev.agent.url("/v1/kv/a/../b"), Some(b"x"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains(".."), "400 body should say why: {:?}", r.text());
    let r = must("GET", &dev.agent.url("/v1/kv/b?stale"), None);
    assert_eq!(r.status, 404, "the rejected write must not land under a normalised key");

    let big = vec![b'v'; 600 * 1024];
    let r = must("PUT", &dev.agent.url("/v1/kv/big"), Some(&big));
    assert_eq!(r.status, 413, "{:?} {:?}", r.status, r.text());
    let r = must("GET", &dev.agent.url("/v1/kv/big"), None);
    assert_eq!(r.status, 404, "an oversized value must not be stored");
}
