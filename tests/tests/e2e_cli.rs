//! End-to-end: `concord agent -dev` driven by the `concord kv` CLI (Consul's flags and messages)
//! and by curl for the HTTP API's request validation.

use std::time::Duration;

use tests::dev::{cli, DevAgent};
use tests::http::must;
use tests::{free_ports, serial, Finished};

/// How long the agent may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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

#[test]
fn unknown_flags_and_commands_get_consuls_messages_and_exit_codes() {
    let out = cli(&["agent", "-dev", "-ui"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.starts_with("flag provided but not defined: -ui\n"), "{:?}", out.stderr);
    assert!(out.stderr.contains("Usage: concord agent"), "the agent command's usage follows: {:?}", out.stderr);
    let out = cli(&["kv", "get", "-consistent", "k"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.starts_with("flag provided but not defined: -consistent\n"), "{:?}", out.stderr);
    assert!(out.stderr.contains("Usage: concord kv get"), "{:?}", out.stderr);
    let out = cli(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(127), "an unknown command exits 127 like Consul's: {out:?}");
    let out = cli(&["version"], None);
    assert_ok(&out, "version");
    assert!(out.stdout.starts_with("Concord v") && out.stdout.contains("Consul API v1.20.0"), "{:?}", out.stdout);
}

#[test]
fn a_bad_data_dir_is_one_line_and_exit_1_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let p = free_ports(2);
    for (data_dir, says) in [(file.display().to_string(), "is not a directory"), ("/proc/self".to_string(), "is not writable")] {
        let out = cli(
            &["agent", "-server", "-bootstrap", "-bind=127.0.0.1", &format!("-data-dir={data_dir}"),
              &format!("-http-port={}", p[0]), &format!("-server-port={}", p[1])],
            None,
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("Error")).collect();
        assert_eq!(errors.len(), 1, "exactly one error line: {:?}", out.stderr);
        assert!(errors[0].contains(says) && errors[0].contains(&data_dir), "{:?}", errors[0]);
        assert!(!out.stdout.contains("agent running"), "nothing started: {:?}", out.stdout);
        assert!(!out.stderr.contains("openraft"), "no openraft errors: {:?}", out.stderr);
    }
}

#[test]
fn the_token_flag_and_env_are_sent_as_x_consul_token() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            seen.push(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        seen
    });
    let flag = cli(&["kv", "get", &format!("-http-addr={addr}"), "-token=from-flag", "k"], None);
    assert_eq!(flag.status.code(), Some(1), "{flag:?}");
    let mut cmd = std::process::Command::new(tests::concord_bin());
    cmd.args(["kv", "get", &format!("-http-addr={addr}"), "k"]).env("CONSUL_HTTP_TOKEN", "from-env");
    tests::run_with_timeout(&mut cmd, Duration::from_secs(20));
    let seen = server.join().expect("server thread");
    assert!(seen[0].contains("x-consul-token: from-flag"), "{:?}", seen[0]);
    assert!(seen[1].contains("x-consul-token: from-env"), "{:?}", seen[1]);
}

/// `concord monitor -log-json` streams Consul's JSON log objects, one per line: the agent's own
/// debug line announcing the stream is the first thing a debug-level monitor sees.
#[test]
fn monitor_log_json_streams_one_json_object_per_line() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let dev = DevAgent::start();
    let mut monitor = std::process::Command::new(tests::concord_bin())
        .args(["monitor", "-log-level=debug", "-log-json", &format!("-http-addr={}", dev.addr())])
        .env_remove("CONSUL_HTTP_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start monitor");
    let stdout = monitor.stdout.take().expect("monitor stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let first = first.expect("monitor printed a line within 20 s");
    let v: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first:?}"));
    assert_eq!(v["@level"], "debug", "{first}");
    assert_eq!(v["@message"], "monitor stream opened", "{first}");
    assert!(v["@module"].as_str().is_some_and(|m| m.contains("monitor")), "{first}");
    assert!(v["@timestamp"].as_str().is_some_and(|t| t.starts_with("20")), "{first}");
}
