//! The `concord` command line: `concord agent ...` and `concord kv put|get|delete ...`, with
//! Consul's flag names and messages.
//!
//! Owns: argument parsing (clap derive), the Consul-style single-dash rewrite ([`normalize_args`]),
//! logging setup, and the process exit code. It never touches agent internals beyond
//! [`crate::agent::start`] and talks to a running agent only over its HTTP API, like `consul` does.
//!
//! Consul's CLI is written with Go's `flag` package, where long flags take ONE dash
//! (`-bootstrap-expect=3`, `-http-addr=127.0.0.1:8500`). clap spells long options with two. Before
//! argv reaches clap, every argument of the form `-NAME` or `-NAME=VALUE`, where `NAME` is one of
//! this CLI's long option names (including `help` and `version`), is rewritten to `--NAME[=VALUE]`;
//! so both `-server` and `--server` work. Arguments that are not a known option name (a KV value
//! like `-x`, a negative number, a lone `-` meaning stdin) are left alone, and nothing after a
//! bare `--` is touched.

pub mod agent;
pub mod http_client;
pub mod kv;
pub mod kv_format;

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for every failure, as Consul's CLI uses.
pub const EXIT_FAILURE: i32 = 1;

/// Concord: a Consul-compatible, Raft-replicated KV agent.
#[derive(Debug, Parser)]
#[command(name = "concord", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `concord <command>`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a Concord agent (a Raft server) until SIGINT or SIGTERM.
    Agent(agent::AgentArgs),
    /// Reads and writes the key/value store of a running agent over HTTP.
    #[command(subcommand)]
    Kv(kv::KvCommand),
}

/// Rewrites Consul-style single-dash long options (`-node=a`) into clap's `--node=a`. Only names
/// in `long_names` are rewritten; everything after a bare `--` is passed through unchanged.
pub fn normalize_args(args: Vec<OsString>, long_names: &BTreeSet<String>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = s
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .filter(|rest| long_names.contains(rest.split('=').next().unwrap_or_default()))
            .map(|rest| OsString::from(format!("--{rest}")));
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// Every long option name anywhere in the command tree, plus clap's `help` and `version`.
pub fn long_option_names() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                names.insert(long.to_string());
            }
            for alias in arg.get_all_aliases().unwrap_or_default() {
                names.insert(alias.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names: BTreeSet<String> = ["help", "version"].into_iter().map(String::from).collect();
    walk(&Cli::command(), &mut names);
    names
}

/// Parses (after the single-dash rewrite) `args`, where `args[0]` is the program name.
pub fn parse_from(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(normalize_args(args, &long_option_names()))
}

/// The `concord` binary's entry point; returns the process exit code.
pub fn main() -> i32 {
    let cli = match parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version go to stdout and succeed; usage errors fail like Consul's (1).
            return if e.use_stderr() { EXIT_FAILURE } else { 0 };
        }
    };
    match cli.command {
        Command::Agent(args) => agent::run(args),
        Command::Kv(cmd) => kv::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn normalized(args: &[&str]) -> Vec<String> {
        normalize_args(os(args), &long_option_names()).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_long_options_become_double_dash() {
        assert_eq!(
            normalized(&["concord", "agent", "-server", "-bootstrap-expect=3", "--node=a", "-retry-join", "x"]),
            ["concord", "agent", "--server", "--bootstrap-expect=3", "--node=a", "--retry-join", "x"]
        );
    }

    #[test]
    fn values_that_merely_start_with_a_dash_are_left_alone() {
        assert_eq!(
            normalized(&["concord", "kv", "put", "-flags=7", "k", "-not-a-flag", "-", "-5"]),
            ["concord", "kv", "put", "--flags=7", "k", "-not-a-flag", "-", "-5"]
        );
        assert_eq!(normalized(&["concord", "kv", "put", "--", "-recurse"]), ["concord", "kv", "put", "--", "-recurse"]);
    }

    #[test]
    fn consul_style_agent_command_line_parses() {
        let cli = parse_from(os(&[
            "concord", "agent", "-server", "-bootstrap-expect=3", "-node=n1", "-bind=127.0.0.1",
            "-data-dir=/tmp/x", "-retry-join=127.0.0.1:8301", "-retry-join=127.0.0.2", "-http-port=18500",
        ]))
        .unwrap();
        let Command::Agent(a) = cli.command else { panic!("expected agent") };
        assert!(a.server);
        assert_eq!(a.bootstrap_expect, Some(3));
        assert_eq!(a.retry_join, ["127.0.0.1:8301", "127.0.0.2"]);
        assert_eq!(a.http_port, Some(18500));
    }

    #[test]
    fn kv_put_with_a_hyphenated_value_parses() {
        let cli = parse_from(os(&["concord", "kv", "put", "-cas", "-modify-index=4", "k", "-v"])).unwrap();
        let Command::Kv(kv::KvCommand::Put(p)) = cli.command else { panic!("expected kv put") };
        assert!(p.cas);
        assert_eq!(p.modify_index, Some(4));
        assert_eq!((p.key.as_str(), p.value.as_deref()), ("k", Some("-v")));
    }
}
