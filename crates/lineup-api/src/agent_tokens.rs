//! Agent panel tokens: minted when an operator signs in at `/agent` with its id and PIN,
//! each good only for that operator's own panel routes, for [`AGENT_TOKEN_LIFETIME_MS`] or
//! until it signs out. Like widget tokens they live in this API process only (a restart
//! signs every panel out) and are keyed by the token's SHA-256 digest.

use crate::secret::{new_token, sha256, SHA256_BYTES};
use crate::widget_tokens::MintFailure;
use lineup_core::OperatorId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most agent tokens held at once (expired ones are swept to make room).
pub const AGENT_TOKENS_MAX: usize = 16_384;
/// Most tokens one operator holds (a phone and a desk); signing in again drops its oldest.
pub const AGENT_TOKENS_PER_OPERATOR_MAX: usize = 4;
/// How long a panel stays signed in: a working day and its overtime.
pub const AGENT_TOKEN_LIFETIME_MS: u64 = 12 * 3_600_000;

struct Grant {
    operator: OperatorId,
    minted: Instant,
}

/// The minted tokens: digest → the operator it opens.
pub(crate) struct AgentTokens {
    by_digest: Mutex<HashMap<[u8; SHA256_BYTES], Grant>>,
    /// [`AGENT_TOKENS_MAX`] outside tests.
    max: usize,
    lifetime: Duration,
}

impl Default for AgentTokens {
    fn default() -> Self {
        Self::with_limits(AGENT_TOKENS_MAX, Duration::from_millis(AGENT_TOKEN_LIFETIME_MS))
    }
}

impl AgentTokens {
    fn with_limits(max: usize, lifetime: Duration) -> Self {
        Self { by_digest: Mutex::default(), max, lifetime }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; SHA256_BYTES], Grant>> {
        // A panic while holding the lock leaves the map whole (single inserts and removes).
        self.by_digest.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh token for `operator`, signed in at `now`.
    pub(crate) fn mint(&self, operator: &OperatorId, now: Instant) -> Result<String, MintFailure> {
        let token = new_token().map_err(MintFailure::Random)?;
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, grant| now.saturating_duration_since(grant.minted) < self.lifetime);
            if map.len() >= self.max {
                return Err(MintFailure::Full);
            }
        }
        let mut own: Vec<([u8; SHA256_BYTES], Instant)> =
            map.iter().filter(|(_, g)| g.operator == *operator).map(|(k, g)| (*k, g.minted)).collect();
        if own.len() >= AGENT_TOKENS_PER_OPERATOR_MAX {
            own.sort_by_key(|(_, minted)| *minted);
            for (digest, _) in &own[..=own.len() - AGENT_TOKENS_PER_OPERATOR_MAX] {
                map.remove(digest);
            }
        }
        map.insert(sha256(&token), Grant { operator: operator.clone(), minted: now });
        debug_assert!(map.values().filter(|g| g.operator == *operator).count() <= AGENT_TOKENS_PER_OPERATOR_MAX);
        Ok(token)
    }

    /// The operator `presented` was minted for, if it is an agent token still in its lifetime
    /// (an expired one is dropped).
    pub(crate) fn operator_of(&self, presented: &str, now: Instant) -> Option<OperatorId> {
        let digest = sha256(presented);
        let mut map = self.lock();
        let grant = map.get(&digest)?;
        if now.saturating_duration_since(grant.minted) >= self.lifetime {
            map.remove(&digest);
            return None;
        }
        Some(grant.operator.clone())
    }

    /// Signs one panel out.
    pub(crate) fn forget(&self, presented: &str) {
        self.lock().remove(&sha256(presented));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_operator_until_it_expires_or_signs_out() {
        let store = AgentTokens::with_limits(8, Duration::from_secs(60));
        let start = Instant::now();
        let (alice, bob) = (OperatorId::new("alice"), OperatorId::new("bob"));
        let a = store.mint(&alice, start).unwrap();
        let b = store.mint(&bob, start).unwrap();
        assert_ne!(a, b);
        assert_eq!(store.operator_of(&a, start), Some(alice.clone()));
        assert_eq!(store.operator_of(&b, start + Duration::from_secs(59)), Some(bob));
        assert_eq!(store.operator_of("not-a-token", start), None);
        assert_eq!(store.operator_of(&b, start + Duration::from_secs(60)), None, "expired");
        assert_eq!(store.len(), 1, "the expired token is gone");
        store.forget(&a);
        assert_eq!((store.operator_of(&a, start), store.len()), (None, 0));
    }

    #[test]
    fn signing_in_again_drops_the_operators_oldest_token_beyond_its_bound() {
        let store = AgentTokens::with_limits(64, Duration::from_secs(60));
        let start = Instant::now();
        let alice = OperatorId::new("alice");
        let tokens: Vec<String> = (0..=AGENT_TOKENS_PER_OPERATOR_MAX as u64)
            .map(|i| store.mint(&alice, start + Duration::from_millis(i)).unwrap())
            .collect();
        assert_eq!(store.len(), AGENT_TOKENS_PER_OPERATOR_MAX);
        assert_eq!(store.operator_of(&tokens[0], start), None, "the oldest was dropped");
        assert!(tokens[1..].iter().all(|t| store.operator_of(t, start).is_some()));
    }

    #[test]
    fn a_full_store_sweeps_expired_tokens_then_refuses() {
        let store = AgentTokens::with_limits(2, Duration::from_secs(60));
        let start = Instant::now();
        store.mint(&OperatorId::new("a"), start).unwrap();
        store.mint(&OperatorId::new("b"), start + Duration::from_secs(30)).unwrap();
        let later = start + Duration::from_secs(61);
        store.mint(&OperatorId::new("c"), later).unwrap();
        assert_eq!(store.len(), 2, "a's expired token made room");
        assert!(matches!(store.mint(&OperatorId::new("d"), later), Err(MintFailure::Full)));
        assert_eq!(store.len(), 2);
    }
}
