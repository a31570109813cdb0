//! openraft's async runtime for Lineup: tokio, with election timeouts drawn from a random
//! source the simulator can seed.
//!
//! openraft's own `TokioRuntime` draws election timeouts from `rand::thread_rng()`, which
//! no caller can seed, so two runs of one simulated cluster would elect at different
//! instants. [`LineupRuntime`] is `TokioRuntime` in everything but that: its generator
//! draws from OS entropy until [`seed_election_rng`] seeds the calling thread (the
//! simulator does, once per run, on its single thread). Production never seeds it.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    /// `Some` once this thread's draws are seeded.
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes every later election-timeout draw on this thread come from `seed` (for
/// deterministic simulation; production never calls it).
pub fn seed_election_rng(seed: u64) {
    SEEDED.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// Returns this thread to OS entropy.
pub fn unseed_election_rng() {
    SEEDED.with(|rng| *rng.borrow_mut() = None);
}

/// The generator openraft gets from [`LineupRuntime::thread_rng`]: the thread's seeded
/// stream if there is one, otherwise `rand::thread_rng()`.
pub struct ElectionRng;

impl ElectionRng {
    fn draw<T>(with_seeded: impl FnOnce(&mut StdRng) -> T, otherwise: impl FnOnce() -> T) -> T {
        SEEDED.with(|rng| match rng.borrow_mut().as_mut() {
            Some(seeded) => with_seeded(seeded),
            None => otherwise(),
        })
    }
}

impl RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        Self::draw(|r| r.next_u32(), || rand::thread_rng().next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        Self::draw(|r| r.next_u64(), || rand::thread_rng().next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SEEDED.with(|rng| match rng.borrow_mut().as_mut() {
            Some(seeded) => seeded.fill_bytes(dest),
            None => rand::thread_rng().fill_bytes(dest),
        })
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// tokio, as openraft's `TokioRuntime`, with [`ElectionRng`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LineupRuntime;

impl AsyncRuntime for LineupRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ElectionRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts_again() {
        let draw = || (0..8).map(|_| LineupRuntime::thread_rng().gen_range(500..900)).collect::<Vec<u64>>();
        seed_election_rng(7);
        let first = draw();
        seed_election_rng(7);
        let second = draw();
        unseed_election_rng();
        assert_eq!(first, second);
        assert!(first.iter().all(|t| (500..900).contains(t)));
    }
}
