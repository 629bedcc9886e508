//! openraft's async runtime, identical to tokio's except for randomness and, in the simulator,
//! clock drift.
//!
//! openraft draws election timeouts from `AsyncRuntime::thread_rng()`; its stock runtime uses an
//! OS-seeded RNG, which breaks replay. Here the RNG is a thread-local ChaCha generator that the
//! simulator reseeds from the run's seed ([`reseed`]); turmoil runs every host on one thread, so
//! the draws happen in a deterministic order. Production seeds it from the OS once per thread.
//!
//! Time: `Instant`, `sleep` and `timeout` follow the current host's drifting clock when the
//! simulator registered one ([`super::drift`]); otherwise (production, and every simulated host
//! whose clock never drifted) they are `tokio::time`'s, called with the same arguments.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::drift::{self, DriftInstant};

thread_local! {
    static RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::from_entropy());
}

/// Reseeds this thread's Raft RNG and forgets the hosts' drifting clocks registered by a previous
/// run. The simulator calls this at the start of every run.
pub fn reseed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
    drift::clear_host_rates();
}

/// A handle to the thread-local seeded RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededRng;

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        RNG.with(|r| r.borrow_mut().next_u32())
    }
    fn next_u64(&mut self) -> u64 {
        RNG.with(|r| r.borrow_mut().next_u64())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RNG.with(|r| r.borrow_mut().fill_bytes(dest))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Tokio, with a seeded `thread_rng` and (in the simulator) per-host drifting time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeededRuntime;

impl AsyncRuntime for SeededRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = DriftInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: OptionalSend> = openraft::async_runtime::TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }
    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(drift::real_duration(duration))
    }
    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.to_real())
    }
    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout(drift::real_duration(duration), future)
    }
    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline.to_real(), future)
    }
    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }
    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng
    }
    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (openraft::async_runtime::TokioOneShotSender(tx), rx)
    }
}
