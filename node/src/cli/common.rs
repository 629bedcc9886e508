//! What every command that talks to an agent shares: the `-http-addr` and `-token` flags
//! (Consul's `CONSUL_HTTP_ADDR` and `CONSUL_HTTP_TOKEN`), and running a command's future to an
//! exit code with its output on stdout and its error on stderr.

use std::future::Future;
use std::io::Write;

use clap::Args;

use super::http_client::{HttpClient, HTTP_TOKEN_ENV};
use super::EXIT_FAILURE;

/// Options shared by every command that talks to an agent.
#[derive(Clone, Debug, Default, Args)]
pub struct HttpArgs {
    /// Agent HTTP address, `host:port` or `http://host:port` [env: CONSUL_HTTP_ADDR; default: 127.0.0.1:8500].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// ACL token sent as X-Consul-Token.
    #[arg(long, value_name = "TOKEN", env = HTTP_TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
}

impl HttpArgs {
    /// The agent client. Errors: a malformed address, as Consul words it.
    pub fn client(&self) -> Result<HttpClient, String> {
        HttpClient::from_flag_or_env(self.http_addr.as_deref())
            .map(|c| c.with_token(self.token.clone()))
            .map_err(|e| format!("Error connecting to Concord agent: {e}"))
    }
}

/// What a command produced: bytes for stdout, or an error line for stderr (exit 1).
pub type Outcome = Result<Vec<u8>, String>;

/// `s` and a newline, as bytes.
pub fn line(s: impl AsRef<str>) -> Vec<u8> {
    format!("{}\n", s.as_ref()).into_bytes()
}

/// Runs a command on a current-thread runtime; prints its output or error; returns the exit code
/// (0, or 1 on any error, as Consul's commands do).
pub fn run(command: impl Future<Output = Outcome>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error! cannot build the tokio runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
                return EXIT_FAILURE;
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}
