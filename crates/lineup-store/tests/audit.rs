//! The audit trail in history, on SQLite and on the real PostgreSQL: one row per accepted
//! audited write, read back newest first with the time, actor and limit filters; a refused
//! write adds no row and a replayed batch adds nothing.

mod common;

use common::*;
use lineup_core::{AuditActor, AuditRole, CallId, CommandBody, OperatorId, QueueConfig, QueueId, RequestedState};
use lineup_store::{AuditQuery, HistoryStore};

fn audited(name: &str, role: AuditRole, body: CommandBody) -> CommandBody {
    CommandBody::Audited { actor: AuditActor { token_name: name.into(), role }, body: Box::new(body) }
}

/// An admin puts a queue, a supervisor sends alice on break a minute later; a refused
/// audited write (an unknown call) in between. Answers the times of the two accepted ones.
fn audited_morning(h: &mut Harness) -> (u64, u64) {
    let queue = QueueConfig { id: QueueId::new("sales"), name: "Sales".into(), ..Default::default() };
    h.ok(audited("ops-admin", AuditRole::Admin, CommandBody::PutQueue(queue)));
    let first = h.now_ms;
    h.operator("alice", SITE_A, &[("sales", 0)]);
    h.login("alice", SITE_A);
    h.advance(60_000);
    let unknown = CommandBody::ChangePriority { call: CallId::new("nobody"), priority: 0 };
    h.serial += 1;
    let id = lineup_core::CommandId { origin: 1, serial: h.serial };
    let command =
        lineup_core::Command { id, at_ms: h.now_ms, body: audited("sup-bob", AuditRole::Supervisor, unknown) };
    h.index += 1;
    let applied = h.routing.apply(h.index, &command);
    assert!(applied.result.is_err() && applied.effects.is_empty());
    h.entries.push((h.index, applied.effects));
    let brk = RequestedState::Break { reason: "lunch".into() };
    let state = CommandBody::OperatorState { operator: OperatorId::new("alice"), state: brk };
    h.ok(audited("sup-bob", AuditRole::Supervisor, state));
    (first, h.now_ms)
}

async fn audit_rows_round_trip(store: &HistoryStore) {
    let mut h = Harness::new();
    let (first_ms, second_ms) = audited_morning(&mut h);
    store.write_batch(&h.entries).await.expect("write batch");
    let all = AuditQuery { limit: 100, ..AuditQuery::default() };
    let rows = store.audit(&all).await.unwrap();
    let summary: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.role.as_str(), r.action.as_str(), r.target.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("sup-bob", "supervisor", "operator_state", "operator:alice", "done"),
            ("ops-admin", "admin", "put_queue", "queue:sales", "done"),
        ],
        "newest first, the refused write absent"
    );
    assert_eq!((rows[0].at_ms, rows[1].at_ms), (second_ms as i64, first_ms as i64));

    let by_admin = store.audit(&AuditQuery { actor: Some("ops-admin".into()), ..all.clone() }).await.unwrap();
    assert_eq!(by_admin.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["put_queue"]);
    let later = store.audit(&AuditQuery { from_ms: Some(first_ms + 1), ..all.clone() }).await.unwrap();
    assert_eq!(later.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>(), ["sup-bob"]);
    let earlier = store.audit(&AuditQuery { to_ms: Some(second_ms - 1), ..all.clone() }).await.unwrap();
    assert_eq!(earlier.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>(), ["ops-admin"]);
    let newest = store.audit(&AuditQuery { limit: 1, ..all.clone() }).await.unwrap();
    assert_eq!(newest, rows[..1]);

    // A replay (a crash before the watermark, a second site on the same database) adds nothing.
    store.write_batch(&h.entries).await.expect("replay");
    assert_eq!(store.audit(&all).await.unwrap(), rows);
}

#[tokio::test]
async fn sqlite_audit_rows_round_trip() {
    let dir = TempDir::new();
    let store = HistoryStore::open(&dir.sqlite_url()).await.unwrap();
    audit_rows_round_trip(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_audit_rows_round_trip() {
    let db = PgDatabase::create().await;
    let store = HistoryStore::open(&db.url()).await.unwrap();
    audit_rows_round_trip(&store).await;
    store.close().await;
    db.drop_database().await;
}
