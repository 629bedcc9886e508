//! End-to-end: `concord watch` against `concord agent -dev`. Without a handler it prints the
//! current result and exits; with one, the handler runs once at start and once per change, with
//! the JSON on stdin and `CONSUL_INDEX` set, and not for writes elsewhere.

use std::process::{Command, Stdio};
use std::time::Duration;

use tests::dev::DevAgent;
use tests::{serial, wait_until};

/// How long a handler run may take to show up.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(15);

#[test]
fn watch_prints_once_without_a_handler_and_runs_the_handler_on_each_change() {
    let _serial = serial();
    let dev = DevAgent::start();
    let put = |k: &str, v: &str| assert!(dev.cli(&["kv", "put", k, v]).status.success());

    // No handler: the key's current entry (null when absent), then exit 0.
    let absent = dev.cli(&["watch", "-type=key", "-key=cfg/db"]);
    assert_eq!((absent.status.code(), absent.stdout.trim()), (Some(0), "null"), "{absent:?}");
    put("cfg/db", "one");
    let present = dev.cli(&["watch", "-type=key", "-key=cfg/db"]);
    let v: serde_json::Value = serde_json::from_str(&present.stdout).expect("JSON");
    assert_eq!(v[0]["Key"], "cfg/db", "{v}");
    let bad = dev.cli(&["watch", "-type=key"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stderr.contains("Must specify a single key to watch"), "{bad:?}");

    // A handler: appends CONSUL_INDEX and the stdin JSON's value to a file per run.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("runs");
    let handler = format!("(echo \"$CONSUL_INDEX\"; cat; echo) >> {}", out.display());
    let mut watch = Command::new(tests::concord_bin())
        .args(["watch", &format!("-http-addr={}", dev.addr()), "-type=key", "-key=cfg/db", &handler])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start concord watch");
    let runs = || std::fs::read_to_string(&out).unwrap_or_default();
    let count = |text: &str| text.lines().filter(|l| l.starts_with('[')).count();
    wait_until(HANDLER_TIMEOUT, "the handler's first run", || (count(&runs()) == 1).then_some(()).ok_or_else(runs));
    put("other/key", "x");
    put("cfg/db", "two");
    let text = wait_until(HANDLER_TIMEOUT, "the handler's run for the change", || {
        let t = runs();
        (count(&t) == 2).then_some(t.clone()).ok_or(t)
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "two runs of index + JSON: {text}");
    let (i1, i2): (u64, u64) = (lines[0].parse().expect("index"), lines[2].parse().expect("index"));
    assert!(i2 > i1, "CONSUL_INDEX grows: {text}");
    let second: serde_json::Value = serde_json::from_str(lines[3]).expect("JSON on stdin");
    assert_eq!(second[0]["Value"], "dHdv", "the handler saw the new value (base64 of \"two\"): {text}");
}
