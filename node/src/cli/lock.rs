//! `concord lock [options] PREFIX CHILD...`: holds a KV lock while a child process runs, and
//! stops the child if the lock is lost. Source: Consul `command/lock`.
//!
//! The recipe itself (session, acquire, watch, release) is [`super::lock_recipe`], with Consul's
//! timings; the child runs through `sh -c` as a real process ([`OsProcesses`]). With `-n N`
//! above 1 it takes one of N places of a semaphore instead ([`super::semaphore`]).
//!
//! Exit codes: 0 (or, with `-child-exit-code`, 2 if the child failed), 1 when the lock could not
//! be acquired (timeout, no agent) or was lost.

use clap::Args;

use super::common::HttpArgs;
use super::lock_recipe::{hold, LockOptions};
use super::EXIT_FAILURE;
use crate::io::process::{OsProcesses, SpawnSpec};

/// `concord lock` options.
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Number of holders allowed (a semaphore when above 1).
    #[arg(short = 'n', long = "n", default_value_t = 1)]
    pub limit: u32,
    /// Name of the session (Consul: "Consul lock for PREFIX at NODE").
    #[arg(long)]
    pub name: Option<String>,
    /// Longest wait to acquire the lock, a Go duration (`0s`: wait forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Exit 2 if the child process fails, instead of 0.
    #[arg(long)]
    pub child_exit_code: bool,
    /// Pass stdin to the child process.
    #[arg(long)]
    pub pass_stdin: bool,
    /// Retries of a failed lock-monitoring request before the lock counts as lost (Consul's
    /// default: 3).
    #[arg(long, default_value_t = 3)]
    pub monitor_retry: u32,
    /// The KV prefix; the lock key is `PREFIX/.lock`.
    pub prefix: String,
    /// The command to run while holding the lock (through `sh -c`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub child: Vec<String>,
}

/// Runs the command; returns the exit code.
pub fn run(args: LockArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error! cannot build the tokio runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match runtime.block_on(lock(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}

async fn lock(args: LockArgs) -> Result<i32, String> {
    let mut opts = LockOptions::consul(&args.prefix, args.limit);
    opts.acquire_timeout = crate::structs::duration::parse_go_duration(&args.timeout).ok_or_else(|| format!("Invalid -timeout {:?}", args.timeout))?;
    opts.monitor_retries = args.monitor_retry;
    opts.child_exit_code = args.child_exit_code;
    if let Some(name) = &args.name {
        opts.session_name = name.clone();
    }
    let child = SpawnSpec { args: vec!["sh".into(), "-c".into(), args.child.join(" ")], env: Vec::new(), pass_stdin: args.pass_stdin, stdin: None };
    hold(&args.http.client()?, &OsProcesses, &opts, &child).await
}
