//! The `concord` command line: `concord agent|catalog|force-leave|info|keygen|keyring|kv|leave|members|monitor|operator|reload|rtt|services|version`, with
//! Consul's flag names, messages and exit codes.
//!
//! Owns: argument parsing (clap derive), the Consul-style single-dash rewrite ([`normalize_args`]),
//! Consul's usage errors ([`usage_error`]), and the process exit code. Only built commands exist:
//! clap lists exactly the subcommands defined here. It never touches agent internals beyond
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
pub mod catalog;
pub mod common;
pub mod datadir;
pub mod event;
pub mod force_leave;
pub mod http_client;
pub mod info;
pub mod kv;
pub mod kv_format;
pub mod kv_transfer;
pub mod join;
pub mod keygen;
pub mod keyring;
pub mod leave;
pub mod lock;
pub mod lock_recipe;
pub mod logging;
pub mod members;
pub mod rtt;
pub mod monitor;
pub mod operator;
pub mod reload;
pub mod semaphore;
pub mod services;
pub mod snapshot;
pub mod watch;
pub mod watch_plan;

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for every failure, as Consul's CLI uses (also usage errors: an unknown flag).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for an unknown or missing command (Consul's CLI library, `mitchellh/cli`).
pub const EXIT_UNKNOWN_COMMAND: i32 = 127;

/// Concord: a Consul-compatible, Raft-replicated KV agent.
#[derive(Debug, Parser)]
#[command(name = "concord", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `concord <command>`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a Concord agent (a Raft server) until SIGINT or SIGTERM.
    Agent(agent::AgentArgs),
    /// Interact with the catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Fires a user event to every agent of the datacenter.
    Event(event::EventArgs),
    /// Forces a member of the cluster to enter the "left" state.
    ForceLeave(force_leave::ForceLeaveArgs),
    /// Provides debugging information for operators.
    Info(info::InfoArgs),
    /// Tells a running agent to join the cluster through other agents' gossip addresses.
    Join(join::JoinArgs),
    /// Generates a new gossip encryption key.
    Keygen,
    /// Manages the gossip encryption keys of the datacenter's members.
    Keyring(keyring::KeyringArgs),
    /// Interact with the key-value store.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Gracefully leaves the cluster and shuts down the agent.
    Leave(leave::LeaveArgs),
    /// Runs a command while holding a KV lock.
    Lock(lock::LockArgs),
    /// Lists the members of the LAN gossip pool.
    Members(members::MembersArgs),
    /// Stream logs from a Concord agent.
    Monitor(monitor::MonitorArgs),
    /// Provides cluster-level tools for operators.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Triggers the agent's configuration reload (config-file services and checks).
    Reload(reload::ReloadArgs),
    /// Estimates the network round-trip time between two nodes from their coordinates.
    Rtt(rtt::RttArgs),
    /// Interact with services registered on the local agent.
    #[command(subcommand)]
    Services(services::ServicesCommand),
    /// Saves, restores and inspects snapshots of the cluster's state.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Prints the Concord version, and the Consul API version it implements.
    Version,
    /// Watches a view (a key, a prefix, services, nodes, a service, checks, events) and runs a
    /// handler on each change.
    Watch(watch::WatchArgs),
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

/// The flag as the user typed it, for Consul's `flag provided but not defined: -NAME`: clap's
/// offending argument (`--name`, or `-n` when it split an unknown `-name` into short flags)
/// mapped back to the original token, without any `=value`.
fn offending_flag(invalid: &str, args: &[OsString]) -> String {
    let typed = if let Some(long) = invalid.strip_prefix("--") {
        format!("-{long}")
    } else {
        args.iter()
            .skip(1)
            .filter_map(|a| a.to_str())
            .take_while(|a| *a != "--")
            .find(|a| a.starts_with(invalid) && !a.starts_with("--"))
            .unwrap_or(invalid)
            .to_string()
    };
    typed.split('=').next().unwrap_or_default().to_string()
}

/// The help of the (sub)command the user named in `args` (the deepest one that exists).
fn command_help(args: &[OsString]) -> String {
    let mut cmd = Cli::command().bin_name("concord");
    cmd.build();
    let mut current = cmd;
    for arg in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if arg.starts_with('-') {
            continue;
        }
        match current.find_subcommand(arg).cloned() {
            Some(sub) => current = sub,
            None => break,
        }
    }
    current.render_help().to_string()
}

/// Reports a parse error as Consul's CLI does and returns the exit code: help and version on
/// stdout (0); an unknown flag as `flag provided but not defined: -NAME` plus the command's usage
/// (1); an unknown or missing command with the command list (127); other usage errors with
/// clap's message and the usage (1).
pub fn usage_error(e: &clap::Error, args: &[OsString]) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::UnknownArgument => {
            let invalid = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            eprintln!("flag provided but not defined: {}", offending_flag(&invalid, args));
            eprint!("{}", command_help(args));
            EXIT_FAILURE
        }
        ErrorKind::InvalidSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let top_level = args.iter().skip(1).filter_map(|a| a.to_str()).filter(|a| !a.starts_with('-')).count() <= 1;
            if let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand) {
                eprintln!("Unknown command: {name:?}\n");
            }
            eprint!("{}", command_help(args));
            if top_level { EXIT_UNKNOWN_COMMAND } else { EXIT_FAILURE }
        }
        _ => {
            let _ = e.print();
            EXIT_FAILURE
        }
    }
}

/// The `concord` binary's entry point; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse_from(args.clone()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &args),
    };
    match cli.command {
        Command::Agent(args) => agent::run(args),
        Command::Catalog(cmd) => common::run(catalog::run(cmd)),
        Command::Event(a) => common::run(event::event(a)),
        Command::ForceLeave(a) => common::run(force_leave::force_leave(a)),
        Command::Info(a) => common::run(info::info(a)),
        Command::Kv(cmd) => kv::run(cmd),
        Command::Join(a) => common::run(join::join(a)),
        Command::Keygen => common::run(async { keygen::keygen() }),
        Command::Keyring(a) => common::run(keyring::keyring(a)),
        Command::Leave(a) => common::run(leave::leave(a)),
        Command::Members(a) => common::run(members::members(a)),
        Command::Lock(a) => lock::run(a),
        Command::Monitor(a) => common::run(monitor::monitor(a)),
        Command::Operator(cmd) => common::run(operator::run(cmd)),
        Command::Reload(a) => common::run(reload::reload(a)),
        Command::Rtt(a) => common::run(rtt::rtt(a)),
        Command::Services(cmd) => common::run(services::run(cmd)),
        Command::Snapshot(cmd) => common::run(snapshot::run(cmd)),
        Command::Version => {
            print!("{}", info::version_text());
            0
        }
        Command::Watch(a) => common::run(watch::watch(a)),
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

    fn usage_error_of(args: &[&str]) -> (clap::Error, Vec<OsString>) {
        (parse_from(os(args)).unwrap_err(), os(args))
    }

    #[test]
    fn an_unknown_single_dash_flag_is_named_as_typed() {
        for (args, flag) in [
            (&["concord", "agent", "-dev", "-ui"][..], "-ui"),
            (&["concord", "kv", "get", "-consistent", "k"][..], "-consistent"),
            (&["concord", "kv", "get", "-bogus=3", "k"][..], "-bogus"),
            (&["concord", "kv", "get", "--nope", "k"][..], "-nope"),
            (&["concord", "kv", "get", "-server", "k"][..], "-server"),
        ] {
            let (e, argv) = usage_error_of(args);
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{args:?}: {e}");
            let invalid = match e.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(s)) => s.clone(),
                other => panic!("{args:?}: no invalid arg in {other:?}"),
            };
            assert_eq!(offending_flag(&invalid, &argv), flag, "{args:?}");
        }
    }

    #[test]
    fn usage_names_the_subcommand_and_exit_codes_follow_consul() {
        assert!(command_help(&os(&["concord", "kv", "get", "-x"])).contains("concord kv get"));
        let (e, argv) = usage_error_of(&["concord", "frobnicate"]);
        assert_eq!(usage_error(&e, &argv), EXIT_UNKNOWN_COMMAND);
        let (e, argv) = usage_error_of(&["concord", "agent", "-dev", "-ui"]);
        assert_eq!(usage_error(&e, &argv), EXIT_FAILURE);
        let (e, argv) = usage_error_of(&["concord", "-h"]);
        assert_eq!(usage_error(&e, &argv), 0);
    }

    #[test]
    fn only_built_commands_are_listed() {
        let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
        assert_eq!(names, ["agent", "catalog", "event", "force-leave", "info", "join", "keygen", "keyring", "kv", "leave", "lock", "members", "monitor", "operator", "reload", "rtt", "services", "snapshot", "version", "watch"]);
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
