//! A panic inside the simulated world (a node's task, a workload client, turmoil) is a failed
//! run like any other, not the end of the process: [`catch`] runs one simulation step and returns
//! the first panic of that step, with its message, source location and simulated time.
//!
//! Two ways a panic shows up, both covered here:
//! - a task spawned with `tokio::spawn` on a host's runtime: tokio catches the panic and ends the
//!   task (the vendored turmoil leaves such runtimes at tokio's default, `UnhandledPanic::Ignore`;
//!   see `vendor/turmoil/PATCHES.md`), so only the panic hook below sees it;
//! - host software or a client on turmoil's `LocalSet`, or turmoil itself: the panic unwinds out
//!   of `Sim::step`, where `catch_unwind` stops it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;
use std::time::Duration;

/// A panic inside a simulation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPanic {
    /// The panic message (`"<non-string payload>"` if it was not a string).
    pub message: String,
    /// `file:line:column` of the `panic!`, if known.
    pub location: Option<String>,
    /// Simulated time of the host that was running when it panicked, if one was.
    pub at: Option<Duration>,
}

impl fmt::Display for SimPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked")?;
        if let Some(at) = self.at {
            write!(f, " at t={:.3}s", at.as_secs_f64())?;
        }
        if let Some(location) = &self.location {
            write!(f, " in {location}")?;
        }
        write!(f, ": {}", self.message)
    }
}

thread_local! {
    /// Whether this thread is inside [`catch`] (sweeps run seeds on several threads).
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// The first panic seen on this thread while watching.
    static FIRST: RefCell<Option<SimPanic>> = const { RefCell::new(None) };
}

/// Runs `step` (one simulation step) and returns its value, or the first panic that happened
/// during it, whether it unwound out of `step` or was caught and swallowed by a runtime inside.
pub fn catch<R>(step: impl FnOnce() -> R) -> Result<R, SimPanic> {
    install_hook();
    FIRST.with(|first| first.borrow_mut().take());
    WATCHING.with(|w| w.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(step));
    WATCHING.with(|w| w.set(false));
    let first = FIRST.with(|first| first.borrow_mut().take());
    match (outcome, first) {
        (Ok(value), None) => Ok(value),
        (_, Some(first)) => Err(first),
        // Only if the hook was replaced after ours: the payload still says what happened.
        (Err(payload), None) => Err(SimPanic { message: payload_text(payload.as_ref()), location: None, at: None }),
    }
}

/// Installs (once per process) the hook that records panics on threads inside [`catch`]; other
/// panics go to the previous hook. A recorded panic is printed only with `RUST_BACKTRACE` set (the
/// run's report carries its message and location), so a sweep's output stays the reports.
fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if !WATCHING.with(Cell::get) {
                return previous(info);
            }
            // `try_with`/`try_borrow_mut`: a panic in a hook aborts, so never risk a second one.
            let _ = FIRST.try_with(|first| {
                if let Ok(mut first) = first.try_borrow_mut() {
                    if first.is_none() {
                        *first = Some(SimPanic {
                            message: payload_text(info.payload()),
                            location: info.location().map(|l| l.to_string()),
                            at: turmoil::sim_elapsed(),
                        });
                    }
                }
            });
            if std::env::var_os("RUST_BACKTRACE").is_some() {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world with one host whose software spawns a task that panics at t≈1s, and one client.
    fn world(client_panics: bool) -> turmoil::Sim<'static> {
        let mut sim = turmoil::Builder::new().tick_duration(Duration::from_millis(10)).build();
        sim.host("h1", || async {
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                panic!("node task gave up");
            });
            std::future::pending::<()>().await;
            Ok(())
        });
        sim.client("c1", async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(!client_panics, "client gave up");
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        });
        sim
    }

    fn first_panic(mut sim: turmoil::Sim<'_>) -> SimPanic {
        loop {
            match catch(|| sim.step()) {
                Ok(Ok(false)) => {}
                Ok(other) => panic!("the world ended without a panic: {other:?}"),
                Err(p) => return p,
            }
        }
    }

    #[test]
    fn a_panicking_spawned_task_on_a_host_is_caught_with_its_message_place_and_time() {
        let p = first_panic(world(false));
        assert_eq!(p.message, "node task gave up");
        assert!(p.location.as_deref().is_some_and(|l| l.starts_with("sim/src/panics.rs:")), "{p:?}");
        let at = p.at.expect("inside the host's tick").as_secs_f64();
        assert!((1.0..1.1).contains(&at), "{p}");
    }

    #[test]
    fn a_panic_that_unwinds_out_of_the_step_is_caught_and_the_world_can_be_dropped() {
        let p = first_panic(world(true));
        assert_eq!(p.message, "client gave up");
        assert!(p.to_string().contains("in sim/src/panics.rs:"), "{p}");
        // A later step on this thread is watched afresh: nothing left over.
        assert_eq!(catch(|| 7), Ok(7));
    }
}
