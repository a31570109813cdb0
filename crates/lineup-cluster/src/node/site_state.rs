//! The Raft state machine's content: the routing core, and the publication of each applied
//! command's effects for this site (broadcast stream, applied sink, state hook).

use std::sync::Arc;

use lineup_core::codec::CodecError;
use lineup_core::{Applied, Command, CoreError, Effect, Routing, SiteId};
use tokio::sync::broadcast;

use crate::batch::{apply_index, CommandBatch, ENTRY_COMMANDS_MAX};
use crate::raft_types::LineupRaft;
use crate::state_machine::{ReplicatedState, StateMachineStore};

pub(crate) type Store = StateMachineStore<LineupRaft, SiteState>;

/// What a [`StateHook`] is told, with the state as it is right then.
pub enum StateEvent<'a> {
    /// One command applied (the state right after it).
    Applied { apply_index: u64, command: &'a Command, applied: &'a Applied, routing: &'a Routing },
    /// The state was replaced by a snapshot: at start, or installed from the leader (the
    /// effects of the entries it covers are never published here).
    Restored { routing: &'a Routing },
}

/// Called inside the state machine, after each applied command and each restore (the
/// simulator's checkers; it must be quick and must not block).
#[derive(Clone)]
pub struct StateHook(pub Arc<dyn Fn(StateEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for StateHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateHook")
    }
}

/// One applied command's effects addressed to this site (see [`crate::NodeConfig::applied_sink`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCommand {
    pub apply_index: u64,
    pub effects: Vec<Effect>,
}

/// Bounded: the consumer sizes it; a full channel is backpressure on apply.
pub type AppliedSink = std::sync::mpsc::SyncSender<AppliedCommand>;

/// An effect addressed to this site, with the apply index of the command that produced it
/// (see [`crate::batch`]; an Offer's fence is that index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEffect {
    pub apply_index: u64,
    pub effect: Effect,
}

/// The Raft state machine: the routing core plus publication of this site's effects.
pub struct SiteState {
    routing: Routing,
    site: SiteId,
    effects: broadcast::Sender<SiteEffect>,
    applied_sink: Option<AppliedSink>,
    state_hook: Option<StateHook>,
}

impl SiteState {
    pub(super) fn new(
        site: SiteId,
        effects: broadcast::Sender<SiteEffect>,
        applied_sink: Option<AppliedSink>,
        state_hook: Option<StateHook>,
    ) -> Self {
        Self { routing: Routing::new(), site, effects, applied_sink, state_hook }
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }
}

/// A command past an entry's apply indexes would share its apply index (fence, order key)
/// with the next entry's first command. The proposer never gathers one; if a log holds one
/// anyway, every node refuses it alike and nothing of it is applied.
fn beyond_the_entry(position: usize) -> Applied {
    let detail = format!("position {position} is past the {ENTRY_COMMANDS_MAX} commands an entry holds");
    Applied { result: Err(CoreError::InvalidState { what: "command".into(), detail }), effects: Vec::new() }
}

impl ReplicatedState for SiteState {
    type Command = CommandBatch;
    type Output = Vec<Applied>;

    fn apply(&mut self, log_index: u64, batch: &CommandBatch) -> Vec<Applied> {
        let mut results = Vec::with_capacity(batch.commands.len());
        for (position, command) in batch.commands.iter().enumerate() {
            if position as u64 >= ENTRY_COMMANDS_MAX {
                results.push(beyond_the_entry(position));
                continue;
            }
            let apply_index = apply_index(log_index, position);
            let applied = self.routing.apply(apply_index, command);
            if let Some(hook) = &self.state_hook {
                (hook.0)(StateEvent::Applied { apply_index, command, applied: &applied, routing: &self.routing });
            }
            for effect in applied.effects.iter().filter(|e| e.is_for(self.site)) {
                // No subscriber is fine: the effect is also in the committed log.
                let _ = self.effects.send(SiteEffect { apply_index, effect: effect.clone() });
            }
            if let Some(sink) = &self.applied_sink {
                let effects: Vec<Effect> = applied.effects.iter().filter(|e| e.is_for(self.site)).cloned().collect();
                if !effects.is_empty() {
                    // Blocks only while the consumer is a whole channel behind (backpressure);
                    // a consumer that has gone away is ignored.
                    let _ = sink.send(AppliedCommand { apply_index, effects });
                }
            }
            results.push(applied);
        }
        results
    }

    fn snapshot_bytes(&self) -> Vec<u8> {
        self.routing.snapshot_bytes()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.routing = Routing::restore(bytes)?;
        if let Some(hook) = &self.state_hook {
            (hook.0)(StateEvent::Restored { routing: &self.routing });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{CommandBody, CommandId};

    #[test]
    fn a_command_past_an_entrys_apply_indexes_is_refused_and_changes_nothing() {
        let (effects, _) = broadcast::channel(16);
        let mut state = SiteState::new(SiteId(1), effects, None, None);
        let tick = |serial: u64| Command {
            id: CommandId { origin: 1, serial },
            at_ms: 0,
            body: CommandBody::Tick { now_ms: serial },
        };
        let batch = CommandBatch { commands: (1..=ENTRY_COMMANDS_MAX + 1).map(tick).collect() };
        let results = state.apply(4, &batch);
        assert_eq!(results.len() as u64, ENTRY_COMMANDS_MAX + 1);
        assert!(results[..ENTRY_COMMANDS_MAX as usize].iter().all(|a| a.result.is_ok()));
        assert!(matches!(&results[ENTRY_COMMANDS_MAX as usize].result, Err(CoreError::InvalidState { .. })));
        assert_eq!(state.routing().now_ms(), ENTRY_COMMANDS_MAX, "the last Tick was not applied");
    }
}
