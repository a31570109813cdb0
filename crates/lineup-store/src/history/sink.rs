//! The history database as an outbox sink, with the feed that hands it the routing
//! configuration to mirror.

use super::mirror::ConfigMirror;
use super::{redact_url, HistoryStore};
use crate::error::StoreError;

/// The history database as an outbox sink. Connects lazily and reconnects on its own, so a
/// drainer can start while PostgreSQL is down; also mirrors the routing configuration
/// handed to its [`ConfigFeed`] whenever it changed.
pub struct HistorySink {
    url: String,
    store: Option<HistoryStore>,
    config: tokio::sync::watch::Receiver<Option<ConfigMirror>>,
    mirrored: Option<ConfigMirror>,
}

/// Hands the current routing configuration to a [`HistorySink`] (state, not history: only
/// the latest one matters, so an outage loses nothing).
#[derive(Debug, Clone)]
pub struct ConfigFeed(std::sync::Arc<tokio::sync::watch::Sender<Option<ConfigMirror>>>);

impl ConfigFeed {
    /// Mirrors `config` at the sink's next chance, if it differs from the last one given.
    pub fn update(&self, config: ConfigMirror) {
        self.0.send_if_modified(|current| match current {
            Some(c) if c.same_config_as(&config) => false,
            _ => {
                *current = Some(config);
                true
            }
        });
    }
}

impl HistorySink {
    pub fn new(url: impl Into<String>) -> (Self, ConfigFeed) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (Self { url: url.into(), store: None, config: rx, mirrored: None }, ConfigFeed(std::sync::Arc::new(tx)))
    }

    /// The store, once connected.
    pub fn store(&self) -> Option<&HistoryStore> {
        self.store.as_ref()
    }

    async fn connected(&mut self) -> Result<HistoryStore, StoreError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let store = HistoryStore::open(&self.url).await?;
        self.store = Some(store.clone());
        Ok(store)
    }

    async fn mirror_if_changed(&mut self) -> Result<(), StoreError> {
        let latest = self.config.borrow().clone();
        let Some(latest) = latest else { return Ok(()) };
        if self.mirrored.as_ref().is_some_and(|m| m.same_config_as(&latest)) {
            return Ok(());
        }
        self.connected().await?.mirror_config(&latest).await?;
        self.mirrored = Some(latest);
        Ok(())
    }
}

impl std::fmt::Debug for HistorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySink").field("url", &redact_url(&self.url)).finish_non_exhaustive()
    }
}

impl crate::outbox::OutboxSink for HistorySink {
    async fn deliver(&mut self, entries: &[crate::outbox::AppliedEntry]) -> Result<(), StoreError> {
        self.connected().await?.write_batch(entries).await?;
        self.mirror_if_changed().await
    }

    async fn housekeeping(&mut self) -> Result<(), StoreError> {
        self.mirror_if_changed().await
    }
}
