//! Per-call widget tokens: minted by `POST /v1/calls/{id}/widget-token`, each good only for
//! its own call's position, live feed and callback request, and only while that call lasts.
//! They live in this API process only (a node restart forgets them: the front end mints
//! again), keyed by the token's SHA-256 digest so the map never holds a usable token.

use crate::secret::{new_token, sha256, SHA256_BYTES};
use lineup_core::CallId;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most widget tokens held at once; calls that ended are swept to make room.
pub const WIDGET_TOKENS_MAX: usize = 65_536;

/// Why a widget token could not be minted.
#[derive(Debug)]
pub(crate) enum MintFailure {
    /// [`WIDGET_TOKENS_MAX`] tokens of live calls are held already.
    Full,
    Random(getrandom::Error),
}

/// The minted tokens: digest → the call it opens.
pub(crate) struct WidgetTokens {
    by_digest: Mutex<HashMap<[u8; SHA256_BYTES], CallId>>,
    /// [`WIDGET_TOKENS_MAX`] outside tests.
    max: usize,
}

impl Default for WidgetTokens {
    fn default() -> Self {
        Self::with_max(WIDGET_TOKENS_MAX)
    }
}

impl WidgetTokens {
    fn with_max(max: usize) -> Self {
        Self { by_digest: Mutex::default(), max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; SHA256_BYTES], CallId>> {
        // A panic while holding the lock leaves the map whole (single inserts and removes).
        self.by_digest.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh token for `call`. When the store is full, `sweep` is asked first to drop the
    /// tokens of calls that ended.
    pub(crate) fn mint(&self, call: &CallId, sweep: impl FnOnce(&Self)) -> Result<String, MintFailure> {
        let token = new_token().map_err(MintFailure::Random)?;
        if self.lock().len() >= self.max {
            sweep(self);
        }
        let mut map = self.lock();
        if map.len() >= self.max {
            return Err(MintFailure::Full);
        }
        map.insert(sha256(&token), call.clone());
        Ok(token)
    }

    /// The call `presented` was minted for, if it is a widget token.
    pub(crate) fn call_of(&self, presented: &str) -> Option<CallId> {
        self.lock().get(&sha256(presented)).cloned()
    }

    /// Drops one token (its call ended).
    pub(crate) fn forget(&self, presented: &str) {
        self.lock().remove(&sha256(presented));
    }

    /// Keeps only the tokens whose call `live` says is still going.
    pub(crate) fn retain_live(&self, live: impl Fn(&CallId) -> bool) {
        let mut map = self.lock();
        if !map.is_empty() {
            map.retain(|_, call| live(call));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_own_call_until_swept() {
        let store = WidgetTokens::default();
        let (a, b) = (CallId::new("a"), CallId::new("b"));
        let token_a = store.mint(&a, |_| {}).unwrap();
        let token_b = store.mint(&b, |_| {}).unwrap();
        assert_ne!(token_a, token_b);
        assert_eq!(store.call_of(&token_a), Some(a.clone()));
        assert_eq!(store.call_of("not-a-token"), None);
        store.retain_live(|call| call == &b);
        assert_eq!((store.call_of(&token_a), store.len()), (None, 1));
        store.forget(&token_b);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_full_store_sweeps_ended_calls_then_refuses() {
        let store = WidgetTokens::with_max(2);
        let (a, b, c) = (CallId::new("a"), CallId::new("b"), CallId::new("c"));
        store.mint(&a, |_| panic!("not full yet")).unwrap();
        store.mint(&b, |_| panic!("not full yet")).unwrap();
        // Full: a ended, so the sweep makes room for c.
        store.mint(&c, |s| s.retain_live(|call| call != &a)).unwrap();
        assert_eq!(store.len(), 2);
        // Full of live calls: refused, and nothing is added.
        assert!(matches!(store.mint(&a, |s| s.retain_live(|_| true)), Err(MintFailure::Full)));
        assert_eq!(store.len(), 2);
    }
}
