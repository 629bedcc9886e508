//! Shared helpers for end-to-end tests: the real `concord` binary on loopback, driven by real
//! clients (curl, the `concord` CLI itself, and py-consul).
//!
//! Owns: locating (and building once) the binary ([`concord_bin`]), free loopback ports
//! ([`free_ports`]), bounded polling ([`wait_until`]), a curl wrapper ([`http`]), and agent
//! processes that are always SIGKILLed when dropped ([`cluster`]). Every wait here has a deadline;
//! nothing here ever leaves a process behind.

pub mod cluster;
pub mod dev;
pub mod dns;
pub mod http;
pub mod kvbench;
pub mod python;
pub mod tiny_http;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable naming a prebuilt `concord` binary (skips the build).
pub const CONCORD_BIN_ENV: &str = "CONCORD_BIN";
/// Pause between polls in [`wait_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests crate has a parent directory").to_path_buf()
}

/// The target directory and cargo profile this test binary was built in, read from its own path
/// (`<target>/<profile-dir>/deps/<test>-<hash>`, or `<target>/<profile-dir>/<bin>` for this
/// crate's benchmark binaries).
fn target_dir_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let parent = exe.parent().expect("a binary lives in a directory");
    let in_deps = parent.file_name().is_some_and(|n| n == "deps");
    let profile_dir = if in_deps { parent.parent().expect("test binary lives in <target>/<profile>/deps") } else { parent };
    let target_dir = profile_dir.parent().expect("profile dir has a parent").to_path_buf();
    let dir_name = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let profile = if dir_name == "debug" { "dev" } else { dir_name };
    (target_dir, profile.to_string())
}

/// The `concord` binary: `$CONCORD_BIN` if set, else built once per test process with
/// `cargo build --workspace --bins` in this test's target directory and profile. Building the
/// whole workspace keeps cargo's feature unification the same as `cargo test --workspace` (the
/// simulator turns on node's `buggify` feature), so the binary that run already built is reused;
/// `-p node` alone resolved different features and rebuilt node (60–80 s) on every first test.
/// Panics with cargo's output if the build fails.
pub fn concord_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os(CONCORD_BIN_ENV).filter(|v| !v.is_empty()) {
            let bin = PathBuf::from(bin);
            assert!(bin.is_file(), "{CONCORD_BIN_ENV}={} is not a file", bin.display());
            return bin;
        }
        let (target_dir, profile) = target_dir_and_profile();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(workspace_root())
            .args(["build", "--workspace", "--bins", "--profile", &profile, "--target-dir"])
            .arg(&target_dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build concord: {e}"));
        assert!(
            out.status.success(),
            "cargo build --workspace --bins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let profile_dir = if profile == "dev" { "debug" } else { profile.as_str() };
        let bin = target_dir.join(profile_dir).join("concord");
        assert!(bin.is_file(), "built concord but {} does not exist", bin.display());
        bin
    })
    .clone()
}

/// `n` distinct ports on 127.0.0.1, each free for both TCP and UDP (an agent binds its gossip
/// and DNS ports for UDP, and a port free for TCP may be another process's UDP socket: CI once
/// failed on "Address already in use" that way). All sockets are held until every port is
/// chosen, so the ports are distinct; another process could still grab one before the agent
/// binds it.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held: Vec<(TcpListener, UdpSocket)> = Vec::with_capacity(n);
    // Ports taken for UDP: their TCP listeners are kept until the end so none is drawn again.
    let mut rejected = Vec::new();
    while held.len() < n {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        match UdpSocket::bind(("127.0.0.1", port)) {
            Ok(udp) => held.push((tcp, udp)),
            Err(_) => rejected.push(tcp),
        }
    }
    drop(rejected);
    held.iter().map(|(l, _)| l.local_addr().expect("local_addr").port()).collect()
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Some`, or panics after `timeout` with
/// `what` and the last reason `probe` gave for not being ready.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(reason) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {reason}")
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// A JSON document's shape: every leaf replaced by its JSON type, arrays by their first element's
/// shape. Values vary between runs (ports, ids, indexes); keys and types are the contract that the
/// insta snapshots pin.
pub fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::String(_) => Value::String("<string>".into()),
        Value::Number(_) => Value::String("<number>".into()),
        Value::Bool(_) => Value::String("<bool>".into()),
        Value::Null => Value::Null,
    }
}

/// Serialises tests that start agents, so concurrent clusters do not starve each other's Raft
/// timers on a small machine. A poisoned lock (a failed test) is taken over, not propagated.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with piped output, killing it (and panicking) after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Finished {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} did not finish within {timeout:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}
