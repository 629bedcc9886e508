//! A Python interpreter with the PyPI package `py-consul` (module `consul`) for client tests.
//!
//! Owns: choosing the interpreter (`$CONCORD_PYTHON`, else a venv created once at
//! `<workspace>/target/py-consul-venv`) and proving it can `import consul`. It never falls back to
//! skipping: without Python or pip the caller gets an error saying what is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

/// Environment variable naming a Python that already has `py-consul` installed.
pub const PYTHON_ENV: &str = "CONCORD_PYTHON";
/// The PyPI package providing the `consul` module.
pub const PY_CONSUL_PACKAGE: &str = "py-consul";

/// The venv this crate creates when `$CONCORD_PYTHON` is unset.
pub fn venv_dir() -> PathBuf {
    workspace_root().join("target").join("py-consul-venv")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn can_import_consul(python: &PathBuf) -> Result<(), String> {
    run(Command::new(python).args(["-c", "import consul"]))
}

fn find_or_create() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
        let python = PathBuf::from(python);
        can_import_consul(&python)
            .map_err(|e| format!("{PYTHON_ENV}={} cannot import consul (pip install {PY_CONSUL_PACKAGE}): {e}", python.display()))?;
        return Ok(python);
    }
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if python.is_file() && can_import_consul(&python).is_ok() {
        return Ok(python);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .map_err(|e| format!("python3 -m venv failed; install python3 and python3-venv, or set {PYTHON_ENV}: {e}"))?;
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", PY_CONSUL_PACKAGE]))
        .map_err(|e| format!("pip install {PY_CONSUL_PACKAGE} failed; or set {PYTHON_ENV}: {e}"))?;
    can_import_consul(&python)?;
    Ok(python)
}

/// A Python that can `import consul`, found or created once per test process.
pub fn python_with_py_consul() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(find_or_create).clone()
}

/// `tests/py/<name>`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}
