//! Child processes: the one way Concord runs a program (script checks, and `concord lock`'s
//! child through [`Processes::spawn`]).
//!
//! Production runs real processes ([`OsProcesses`], `tokio::process`); the simulator and unit
//! tests run [`ScriptedProcesses`], a deterministic interpreter of a few commands whose time
//! passes on tokio's (turmoil-virtualised) clock, so a script check's interval, timeout and exit
//! codes replay with the seed.

use std::time::Duration;

use async_trait::async_trait;

/// What a finished (or killed) process left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOutput {
    /// The exit code; `None` when it was killed by a signal or by the timeout.
    pub code: Option<i32>,
    /// True when the timeout ran out and the process was killed.
    pub timed_out: bool,
    /// Standard output followed by standard error, at most `output_cap` bytes: the *last* bytes
    /// written, as Consul's circular output buffer keeps them.
    pub output: Vec<u8>,
}

/// Runs programs. `args[0]` is the program, looked up on `PATH`; the rest are its arguments.
#[async_trait]
pub trait Processes: Send + Sync + 'static {
    /// Runs `args` to completion or until `timeout` (then kills it: `timed_out`, no code).
    /// Errors: the program could not be started (not found, not executable, empty `args`).
    async fn run(&self, args: &[String], timeout: Duration, output_cap: usize) -> std::io::Result<ProcessOutput>;

    /// Starts `spec` and returns a handle to it (its output goes where the caller's goes).
    /// Errors: the program could not be started.
    fn spawn(&self, spec: &SpawnSpec) -> std::io::Result<Box<dyn ChildProcess>>;
}

/// A program to start with [`Processes::spawn`]: `args[0]` on `PATH`, extra environment, and
/// whether it reads the caller's stdin (otherwise stdin is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpawnSpec {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub pass_stdin: bool,
    /// Bytes written to the child's stdin, which is then closed (a watch handler's JSON);
    /// takes precedence over `pass_stdin`.
    pub stdin: Option<Vec<u8>>,
}

/// A running child started by [`Processes::spawn`].
#[async_trait]
pub trait ChildProcess: Send {
    /// Waits until it exits: `Some(code)`, or `None` when a signal ended it.
    async fn wait(&mut self) -> std::io::Result<Option<i32>>;
    /// Asks it to stop (SIGTERM); it may take its time or ignore it.
    fn terminate(&mut self);
    /// Stops it for good (SIGKILL) and reaps it.
    async fn kill(&mut self);
}

/// Keeps the last `cap` bytes of `bytes`.
fn tail(mut bytes: Vec<u8>, cap: usize) -> Vec<u8> {
    if bytes.len() > cap {
        bytes.drain(..bytes.len() - cap);
    }
    bytes
}

/// Real processes through `tokio::process` (the `concord` binary).
pub struct OsProcesses;

#[async_trait]
impl Processes for OsProcesses {
    async fn run(&self, args: &[String], timeout: Duration, output_cap: usize) -> std::io::Result<ProcessOutput> {
        let (program, rest) = args.split_first().ok_or_else(|| std::io::Error::other("no program given"))?;
        let child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        // On timeout the future (and with it the child) is dropped, which kills it.
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => {
                let out = out?;
                let mut output = out.stdout;
                output.extend_from_slice(&out.stderr);
                Ok(ProcessOutput { code: out.status.code(), timed_out: false, output: tail(output, output_cap) })
            }
            Err(_) => Ok(ProcessOutput { code: None, timed_out: true, output: Vec::new() }),
        }
    }

    fn spawn(&self, spec: &SpawnSpec) -> std::io::Result<Box<dyn ChildProcess>> {
        let (program, rest) = spec.args.split_first().ok_or_else(|| std::io::Error::other("no program given"))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest).envs(spec.env.iter().map(|(k, v)| (k, v))).kill_on_drop(true);
        if spec.stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        } else if !spec.pass_stdin {
            cmd.stdin(std::process::Stdio::null());
        }
        let mut child = cmd.spawn()?;
        if let (Some(data), Some(mut pipe)) = (spec.stdin.clone(), child.stdin.take()) {
            // Written on its own task so a child that reads slowly (or never) cannot block us;
            // dropping the pipe closes the child's stdin.
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = pipe.write_all(&data).await;
            });
        }
        Ok(Box::new(OsChild(child)))
    }
}

/// A real child process.
struct OsChild(tokio::process::Child);

#[async_trait]
impl ChildProcess for OsChild {
    async fn wait(&mut self) -> std::io::Result<Option<i32>> {
        Ok(self.0.wait().await?.code())
    }
    fn terminate(&mut self) {
        // std has no SIGTERM; `kill` is POSIX. A child that already exited has no id.
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
    async fn kill(&mut self) {
        let _ = self.0.kill().await;
    }
}

/// A deterministic stand-in for processes (the simulator, unit tests). It understands:
/// `true` (exit 0), `false` (exit 1), `exit N`, `echo WORDS…` (prints them, exit 0),
/// `sleep SECONDS` (waits on tokio's clock, exit 0), and `sh -c "exit N"`; anything else fails
/// to start with "executable file not found", as a missing program does. A spawned child obeys
/// the same script and ends at once, by signal, when it is terminated or killed.
pub struct ScriptedProcesses;

/// The words of a script: `sh -c "…"`'s script split on blanks, or the arguments themselves.
fn script_words(args: &[String]) -> Vec<&str> {
    match args {
        [sh, c, script] if sh == "sh" && c == "-c" => script.split_whitespace().collect(),
        _ => args.iter().map(String::as_str).collect(),
    }
}

#[async_trait]
impl Processes for ScriptedProcesses {
    async fn run(&self, args: &[String], timeout: Duration, output_cap: usize) -> std::io::Result<ProcessOutput> {
        let words = script_words(args);
        let done = |code: i32, output: String| ProcessOutput { code: Some(code), timed_out: false, output: tail(output.into_bytes(), output_cap) };
        match words.as_slice() {
            ["true"] => Ok(done(0, String::new())),
            ["false"] => Ok(done(1, String::new())),
            ["exit", n] => n.parse().map(|n| done(n, String::new())).map_err(|_| std::io::Error::other(format!("exit: {n}: numeric argument required"))),
            ["echo", rest @ ..] => Ok(done(0, format!("{}\n", rest.join(" ")))),
            ["sleep", secs] => {
                let secs: f64 = secs.parse().map_err(|_| std::io::Error::other(format!("sleep: invalid time interval {secs:?}")))?;
                let wanted = Duration::from_secs_f64(secs.max(0.0));
                if wanted > timeout {
                    tokio::time::sleep(timeout).await;
                    return Ok(ProcessOutput { code: None, timed_out: true, output: Vec::new() });
                }
                tokio::time::sleep(wanted).await;
                Ok(done(0, String::new()))
            }
            _ => Err(not_found(args)),
        }
    }

    fn spawn(&self, spec: &SpawnSpec) -> std::io::Result<Box<dyn ChildProcess>> {
        let words = script_words(&spec.args);
        let (runs_for, code) = match words.as_slice() {
            ["true"] => (Duration::ZERO, 0),
            ["false"] => (Duration::ZERO, 1),
            ["exit", n] => (Duration::ZERO, n.parse().map_err(|_| std::io::Error::other(format!("exit: {n}: numeric argument required")))?),
            ["echo", ..] => (Duration::ZERO, 0),
            ["sleep", secs] => {
                let secs: f64 = secs.parse().map_err(|_| std::io::Error::other(format!("sleep: invalid time interval {secs:?}")))?;
                (Duration::from_secs_f64(secs.max(0.0)), 0)
            }
            _ => return Err(not_found(&spec.args)),
        };
        Ok(Box::new(ScriptedChild { ends: tokio::time::Instant::now() + runs_for, code, stopped: false }))
    }
}

fn not_found(args: &[String]) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, format!("exec: {:?}: executable file not found in $PATH", args.first().map_or("", String::as_str)))
}

/// A scripted child: exits with `code` at `ends` (tokio's clock), or by signal once stopped.
struct ScriptedChild {
    ends: tokio::time::Instant,
    code: i32,
    stopped: bool,
}

#[async_trait]
impl ChildProcess for ScriptedChild {
    async fn wait(&mut self) -> std::io::Result<Option<i32>> {
        if self.stopped {
            return Ok(None);
        }
        tokio::time::sleep_until(self.ends).await;
        Ok(Some(self.code))
    }
    fn terminate(&mut self) {
        self.stopped = true;
    }
    async fn kill(&mut self) {
        self.stopped = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn os_processes_report_exit_codes_output_tails_and_timeouts() {
        let p = OsProcesses;
        let t = Duration::from_secs(10);
        assert_eq!(p.run(&args(&["sh", "-c", "exit 3"]), t, 16).await.unwrap().code, Some(3));
        let out = p.run(&args(&["sh", "-c", "echo 0123456789abcdef; echo err >&2"]), t, 8).await.unwrap();
        assert_eq!((out.code, out.output), (Some(0), b"def\nerr\n".to_vec()), "stdout then stderr, the last 8 bytes");
        let slow = p.run(&args(&["sleep", "5"]), Duration::from_millis(100), 16).await.unwrap();
        assert!(slow.timed_out && slow.code.is_none());
        assert_eq!(p.run(&args(&["/nonexistent/program"]), t, 16).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(p.run(&[], t, 16).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_processes_follow_their_script_on_tokios_clock() {
        let p = ScriptedProcesses;
        let t = Duration::from_secs(10);
        assert_eq!(p.run(&args(&["true"]), t, 64).await.unwrap().code, Some(0));
        assert_eq!(p.run(&args(&["sh", "-c", "exit 2"]), t, 64).await.unwrap().code, Some(2));
        assert_eq!(p.run(&args(&["echo", "hi", "there"]), t, 64).await.unwrap().output, b"hi there\n");
        let before = tokio::time::Instant::now();
        assert!(p.run(&args(&["sleep", "30"]), t, 64).await.unwrap().timed_out);
        assert_eq!(before.elapsed(), t, "a timed-out sleep takes exactly the timeout");
        assert_eq!(p.run(&args(&["rm", "-rf"]), t, 64).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    fn spec(a: &[&str]) -> SpawnSpec {
        SpawnSpec { args: args(a), ..SpawnSpec::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_children_run_their_time_or_stop_by_signal() {
        let p = ScriptedProcesses;
        let before = tokio::time::Instant::now();
        let mut sleeper = p.spawn(&spec(&["sh", "-c", "sleep 30"])).unwrap();
        assert_eq!(sleeper.wait().await.unwrap(), Some(0));
        assert_eq!(before.elapsed(), Duration::from_secs(30));
        assert_eq!(p.spawn(&spec(&["exit", "3"])).unwrap().wait().await.unwrap(), Some(3));
        let mut stopped = p.spawn(&spec(&["sleep", "30"])).unwrap();
        stopped.terminate();
        assert_eq!(stopped.wait().await.unwrap(), None, "terminated: ended by a signal");
        assert!(p.spawn(&spec(&["rm", "-rf", "/"])).is_err());
    }

    #[tokio::test]
    async fn os_children_exit_with_their_code_and_stop_on_sigterm() {
        let p = OsProcesses;
        let mut env = spec(&["sh", "-c", "exit $CODE"]);
        env.env.push(("CODE".into(), "4".into()));
        assert_eq!(p.spawn(&env).unwrap().wait().await.unwrap(), Some(4));
        let mut sleeper = p.spawn(&spec(&["sleep", "30"])).unwrap();
        sleeper.terminate();
        let ended = tokio::time::timeout(Duration::from_secs(10), sleeper.wait()).await.expect("SIGTERM stops sleep");
        assert_eq!(ended.unwrap(), None, "ended by a signal");
        assert!(p.spawn(&spec(&["/nonexistent/program"])).is_err());
    }
}
