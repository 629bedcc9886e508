//! The start-up check of `-data-dir`: it exists or can be created, it is a directory, and this
//! process can create, write, sync and remove a file in it. Run before anything starts, so a bad
//! data dir is one line and exit 1, not an agent that says "running" and then fails its first
//! write (and openraft's errors after it).

use std::io::Write;
use std::path::Path;

/// The probe file written and removed by [`check`].
const PROBE_FILE: &str = ".concord-write-check";

/// Checks `dir`. Errors: one line naming the directory and the reason.
pub fn check(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(format!("data directory {shown:?} is not a directory")),
        Ok(_) => {}
        // Missing, or a path through a file: creating it says why not.
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create data directory {shown:?}: {e}"))?;
        }
    }
    let probe = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(b"concord")?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&probe);
    written.and(removed).map_err(|e| format!("data directory {shown:?} is not writable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_created_and_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        check(&fresh).unwrap();
        assert!(fresh.is_dir());
        assert!(!fresh.join(PROBE_FILE).exists(), "the probe is cleaned up");
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(check(&file).unwrap_err().contains("not a directory"));
        assert!(check(&file.join("sub")).unwrap_err().contains("cannot create"));
    }

    #[test]
    fn an_unwritable_directory_is_refused() {
        // /proc refuses new files even to root, which a chmod'd temp dir does not.
        let err = check(Path::new("/proc/self")).unwrap_err();
        assert!(err.contains("not writable"), "{err}");
    }
}
