//! Service-discovery benchmark: DNS queries/s and `/v1/health/service` reads/s on one
//! `concord agent -dev` holding 1,000 registered instances, and, in the same run, the queries/s of
//! NSD (an authoritative DNS server from Debian) serving a static zone with the same answers.
//! Figures are printed with the Concord/NSD ratio; only ratios from one run compare (the machines
//! are noisy).
//!
//! Needs `dnsperf` and `nsd` (Debian packages of those names); install them with
//! `apt-get install dnsperf nsd`. Usage: `cargo run --release -p tests --bin service-bench
//! [-- SECONDS]` (default 10 s per measurement).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::dev::DevAgent;
use tests::free_ports;
use tests::http::must;

/// Services × instances per service = 1,000 instances, spread over `NODES` nodes.
const SERVICES: usize = 100;
const INSTANCES_PER_SERVICE: usize = 10;
const NODES: usize = 100;
/// Answers per UDP reply without EDNS0 (Consul's default, and what the NSD zone holds per name).
const UDP_ANSWERS: usize = 3;
/// dnsperf's outstanding queries and client sockets.
const DNSPERF_ARGS: [&str; 4] = ["-c", "4", "-q", "200"];
/// Concurrent HTTP clients (keep-alive, closed loop).
const HTTP_CLIENTS: usize = 4;

fn ip(node: usize) -> String {
    format!("10.0.{}.{}", node / 250, node % 250 + 1)
}

fn register_instances(dev: &DevAgent) {
    for k in 0..SERVICES * INSTANCES_PER_SERVICE {
        let (svc, node) = (k / INSTANCES_PER_SERVICE, k % NODES);
        let body = serde_json::json!({
            "Node": format!("n{node}"), "Address": ip(node),
            "Service": {"Service": format!("s{svc}"), "ID": format!("s{svc}-{k}"), "Port": 8000 + k % 1000},
            "Check": {"CheckID": format!("c{k}"), "Name": "alive", "ServiceID": format!("s{svc}-{k}"), "Status": "passing"},
        });
        must("PUT", &dev.agent.url("/v1/catalog/register"), Some(body.to_string().as_bytes()));
    }
}

/// dnsperf's query file: every service name (A and SRV) and every node name.
fn query_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut q = String::new();
    for s in 0..SERVICES {
        let _ = writeln!(q, "s{s}.service.consul A");
        let _ = writeln!(q, "s{s}.service.consul SRV");
    }
    for n in 0..NODES {
        let _ = writeln!(q, "n{n}.node.consul A");
    }
    let path = dir.join("queries.txt");
    std::fs::write(&path, q).expect("write queries");
    path
}

/// A static zone with the same answers Concord gives over UDP: three A and three SRV records per
/// service name (with the targets' A records), one A record per node.
fn nsd_zone(dir: &std::path::Path) -> std::path::PathBuf {
    let mut z = String::from("$ORIGIN consul.\n$TTL 0\n@ IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 0\n@ IN NS ns.consul.\nns IN A 127.0.0.1\n");
    for s in 0..SERVICES {
        for i in 0..UDP_ANSWERS {
            let k = s * INSTANCES_PER_SERVICE + i;
            let _ = writeln!(z, "s{s}.service IN A {}", ip(k % NODES));
            let _ = writeln!(z, "s{s}.service IN SRV 1 1 {} n{}.node.dc1.consul.", 8000 + k % 1000, k % NODES);
        }
    }
    for n in 0..NODES {
        let _ = writeln!(z, "n{n}.node IN A {}", ip(n));
        let _ = writeln!(z, "n{n}.node.dc1 IN A {}", ip(n));
    }
    let path = dir.join("consul.zone");
    std::fs::write(&path, z).expect("write zone");
    path
}

/// Runs dnsperf for `secs` against 127.0.0.1:`port`; returns queries/s and the share answered.
fn dnsperf(port: u16, queries: &std::path::Path, secs: u64) -> (f64, String) {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(["-l", &secs.to_string()])
        .args(DNSPERF_ARGS)
        .output()
        .expect("run dnsperf (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let qps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("dnsperf printed no rate:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    let completed = text.lines().find(|l| l.contains("Queries completed:")).unwrap_or_default().trim().to_string();
    (qps, completed)
}

/// Starts NSD in the foreground on `port` serving `zone`; killed by the caller.
fn start_nsd(dir: &std::path::Path, zone: &std::path::Path, port: u16) -> std::process::Child {
    let conf = dir.join("nsd.conf");
    let text = format!(
        "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         server-count: 1\n  verbosity: 0\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\nzone:\n  name: consul.\n  zonefile: \"{z}\"\n",
        d = dir.display(),
        z = zone.display()
    );
    std::fs::write(&conf, text).expect("write nsd.conf");
    let child = Command::new("nsd").args(["-d", "-c"]).arg(&conf).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run nsd (apt-get install nsd)");
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Closed-loop keep-alive GETs of `path` from `HTTP_CLIENTS` threads for `secs`; reads/s.
fn http_reads_per_sec(port: u16, path: &str, secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let threads: Vec<_> = (0..HTTP_CLIENTS)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                // One write per request, no Nagle: otherwise delayed ACKs, not the server, set the pace.
                stream.set_nodelay(true).expect("nodelay");
                let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    writer.write_all(&request).expect("send");
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).expect("read header");
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().expect("content-length");
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).expect("read body");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = DevAgent::start();
    let t = Instant::now();
    register_instances(&dev);
    println!("registered {} instances of {SERVICES} services on {NODES} nodes in {:.1}s", SERVICES * INSTANCES_PER_SERVICE, t.elapsed().as_secs_f64());
    let queries = query_file(dir.path());

    let (concord_qps, concord_done) = dnsperf(dev.dns_port, &queries, secs);
    let nsd_port = free_ports(1)[0];
    let mut nsd = start_nsd(dir.path(), &nsd_zone(dir.path()), nsd_port);
    let (nsd_qps, nsd_done) = dnsperf(nsd_port, &queries, secs);
    let _ = nsd.kill();
    let _ = nsd.wait();

    let port: u16 = dev.agent.base_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("http port");
    let health = http_reads_per_sec(port, "/v1/health/service/s7", secs);
    let health_stale = http_reads_per_sec(port, "/v1/health/service/s7?stale", secs);

    println!("DNS, dnsperf {} for {secs}s, {} query names:", DNSPERF_ARGS.join(" "), SERVICES * 2 + NODES);
    println!("  concord  {concord_qps:>10.0} queries/s   ({concord_done})");
    println!("  nsd      {nsd_qps:>10.0} queries/s   ({nsd_done})");
    println!("  ratio    {:>10.2}x concord/nsd", concord_qps / nsd_qps);
    println!("HTTP /v1/health/service/<10 instances>, {HTTP_CLIENTS} keep-alive clients for {secs}s:");
    println!("  default  {health:>10.0} reads/s");
    println!("  ?stale   {health_stale:>10.0} reads/s");
}
