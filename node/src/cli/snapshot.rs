//! `concord snapshot save|restore|inspect`: Consul's snapshot commands over `/v1/snapshot`, with
//! Concord's archive format ([`crate::state::archive`]).
//!
//! `save` verifies the archive it received before writing it (Consul: "Saved and verified
//! snapshot to index N"); `restore` sends a file, which the servers verify again; `inspect` reads
//! a file locally and prints its metadata and one row per table.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use hyper::Method;

use super::common::{line, HttpArgs, Outcome};
use crate::state::archive;

/// `concord snapshot <command>`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Saves a snapshot of the cluster's state to a file.
    Save(FileArgs),
    /// Restores the cluster's state from a snapshot file.
    Restore(FileArgs),
    /// Prints a snapshot file's metadata and table sizes.
    Inspect(InspectArgs),
}

/// `concord snapshot save|restore [options] FILE`.
#[derive(Debug, Args)]
pub struct FileArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Let any server answer (`save` only; may be stale).
    #[arg(long)]
    pub stale: bool,
    pub file: String,
}

/// `concord snapshot inspect FILE`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    pub file: String,
}

/// Runs a snapshot command.
pub(super) async fn run(cmd: SnapshotCommand) -> Outcome {
    match cmd {
        SnapshotCommand::Save(a) => save(a).await,
        SnapshotCommand::Restore(a) => restore(a).await,
        SnapshotCommand::Inspect(a) => inspect(&a.file),
    }
}

async fn save(a: FileArgs) -> Outcome {
    let client = a.http.client()?;
    let path = if a.stale { "/v1/snapshot?stale" } else { "/v1/snapshot" };
    let resp = client.request(Method::GET, path, Vec::new()).await.map_err(|e| format!("Error saving snapshot: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error saving snapshot: {}", resp.unexpected()));
    }
    let (meta, _, _) = archive::verify(&resp.body).map_err(|e| format!("Error verifying snapshot: {e}"))?;
    std::fs::write(&a.file, &resp.body).map_err(|e| format!("Error writing snapshot file {}: {e}", a.file))?;
    Ok(line(format!("Saved and verified snapshot to index {}", meta.index)))
}

async fn restore(a: FileArgs) -> Outcome {
    let bytes = std::fs::read(&a.file).map_err(|e| format!("Error reading snapshot file {}: {e}", a.file))?;
    let client = a.http.client()?;
    let resp = client.request(Method::PUT, "/v1/snapshot", bytes).await.map_err(|e| format!("Error restoring snapshot: {e}"))?;
    if !resp.status.is_success() {
        return Err(format!("Error restoring snapshot: {}", resp.unexpected()));
    }
    Ok(line("Restored snapshot"))
}

fn inspect(file: &str) -> Outcome {
    let bytes = std::fs::read(file).map_err(|e| format!("Error reading snapshot file {file}: {e}"))?;
    let (meta, _, _) = archive::verify(&bytes).map_err(|e| format!("Error verifying snapshot: {e}"))?;
    let mut out = String::new();
    let _ = writeln!(out, " ID           {}", meta.id);
    let _ = writeln!(out, " Size         {}", bytes.len());
    let _ = writeln!(out, " Index        {}", meta.index);
    let _ = writeln!(out, " Term         {}", meta.term);
    let _ = writeln!(out, " Version      {}", meta.version);
    let _ = writeln!(out);
    let _ = writeln!(out, " {:<14} {:>8} {:>12}", "Type", "Count", "Size");
    let _ = writeln!(out, " {:<14} {:>8} {:>12}", "----", "-----", "----");
    for (table, rows, size) in &meta.tables {
        let _ = writeln!(out, " {table:<14} {rows:>8} {:>12}", format!("{size} B"));
    }
    Ok(out.into_bytes())
}
