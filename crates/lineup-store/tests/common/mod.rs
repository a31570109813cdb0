//! Test support: a routing harness that records every applied entry as the cluster would
//! hand it over (log index, effects), a call-centre scenario, private PostgreSQL databases,
//! SQLite temp files, and a loopback TCP relay that can be cut to simulate an outage.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lineup_core::*;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const SITE_A: SiteId = SiteId(1);
pub const SITE_B: SiteId = SiteId(2);
pub const SITE_C: SiteId = SiteId(3);

/// The shared PostgreSQL server's maintenance database (trust auth on loopback).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// Bound on every polling loop in the tests.
pub const POLL_MAX_ITERATIONS: u32 = 400;
pub const POLL_INTERVAL_MS: u64 = 25;

/// A name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique_name("lineup_store"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path("history.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private database on the shared PostgreSQL server. Call [`PgDatabase::drop_database`]
/// at the end of the test; a test that panics first drops it on unwind.
pub struct PgDatabase {
    pub name: String,
    dropped: bool,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let name = unique_name("lineup_test");
        admin_execute(&format!("CREATE DATABASE {name}")).await;
        Self { name, dropped: false }
    }
    pub fn url(&self) -> String {
        self.url_via(5432)
    }
    /// The same database reached through another loopback port (a relay).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
    }
    pub async fn drop_database(mut self) {
        admin_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
        self.dropped = true;
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Unwinding from a failed test: drop the database from a runtime of its own.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(admin_execute(&sql));
            }
        })
        .join();
    }
}

async fn admin_execute(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await.expect("connect to the shared PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Polls `check` until it returns Some, at most [`POLL_MAX_ITERATIONS`] times.
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..POLL_MAX_ITERATIONS {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    panic!("gave up waiting for: {what}");
}

/// A loopback TCP relay to `target`, on a fixed port, that can be cut (listener and every
/// relayed connection closed) and restored: a server outage without stopping the server.
pub struct Relay {
    pub port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let mut relay = Self { port, target: target.to_string(), task: None };
        relay.task = Some(Self::serve(listener, relay.target.clone()));
        relay
    }

    fn serve(listener: TcpListener, target: String) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                // Reap finished relays so the set stays small.
                while connections.try_join_next().is_some() {}
            }
            // Dropping the JoinSet (when this task is aborted) aborts every relayed connection.
        })
    }

    /// The outage: nothing listens on the port any more and open connections are closed.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The server is back, on the same port.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind relay port");
        self.task = Some(Self::serve(listener, self.target.clone()));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A port where nothing listens (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Applies commands with increasing log indexes and records each entry's effects.
pub struct Harness {
    pub routing: Routing,
    pub index: u64,
    pub serial: u64,
    pub now_ms: u64,
    pub ticked_ms: u64,
    /// Every applied entry, as the node's apply stream hands it to the store.
    pub entries: Vec<(u64, Vec<Effect>)>,
}

impl Harness {
    pub fn new() -> Self {
        Self { routing: Routing::new(), index: 0, serial: 0, now_ms: 1_732_250_000_000, ticked_ms: 0, entries: vec![] }
    }

    fn apply_cmd(&mut self, cmd: Command) -> (CommandResult, Vec<Effect>) {
        if let CommandBody::Tick { now_ms } = cmd.body {
            self.ticked_ms = self.ticked_ms.max(now_ms);
        } else if cmd.at_ms > self.ticked_ms {
            self.ok(CommandBody::Tick { now_ms: cmd.at_ms });
        }
        self.index += 1;
        let applied = self.routing.apply(self.index, &cmd);
        self.entries.push((self.index, applied.effects.clone()));
        (applied.result, applied.effects)
    }

    pub fn ok(&mut self, body: CommandBody) -> Vec<Effect> {
        self.serial += 1;
        let kind = body.kind();
        let cmd = Command { id: CommandId { origin: 1, serial: self.serial }, at_ms: self.now_ms, body };
        let (result, effects) = self.apply_cmd(cmd);
        result.unwrap_or_else(|e| panic!("{kind} refused: {e}"));
        effects
    }

    pub fn advance(&mut self, ms: u64) -> Vec<Effect> {
        self.now_ms += ms;
        let now_ms = self.now_ms;
        self.ok(CommandBody::Tick { now_ms })
    }

    pub fn operator(&mut self, id: &str, site: SiteId, queues: &[(&str, u8)]) {
        self.ok(CommandBody::PutOperator(OperatorConfig {
            id: OperatorId::new(id),
            name: format!("Operator {id}"),
            site,
            pin_hash: "$argon2id$secret".into(),
            memberships: queues.iter().map(|(q, p)| (QueueId::new(*q), *p)).collect(),
            ..Default::default()
        }));
    }

    pub fn login(&mut self, id: &str, site: SiteId) -> Vec<Effect> {
        self.ok(CommandBody::OperatorLogin { operator: OperatorId::new(id), site, channel: Some(format!("op-{id}")) })
    }

    pub fn enqueue(&mut self, call: &str, queue: &str, gate: Option<&str>, site: SiteId) -> Vec<Effect> {
        self.ok(CommandBody::Enqueue(Enqueue {
            call: CallId::new(call),
            queue: QueueId::new(queue),
            gate: gate.map(GateId::new),
            priority: None,
            caller_number: "5551234".into(),
            caller_name: "Caller One".into(),
            site,
            channel: Some(format!("ch-{call}")),
            skills: BTreeMap::new(),
            callback_number: None,
        }))
    }

    pub fn the_offer(effects: &[Effect]) -> Offer {
        let offers: Vec<&Offer> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Offer(o) | Effect::DialCallback(o) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(offers.len(), 1, "expected one offer in {effects:?}");
        offers[0].clone()
    }

    pub fn connect(&mut self, offer: &Offer) -> Vec<Effect> {
        self.ok(CommandBody::Connected {
            call: offer.call.clone(),
            operator: offer.operator.clone(),
            fence: offer.fence,
        })
    }

    pub fn complete(&mut self, offer: &Offer, by: HungUpBy) -> Vec<Effect> {
        self.ok(CommandBody::Completed { call: offer.call.clone(), fence: offer.fence, by })
    }

    /// Every effect of every entry, flattened, with its (log index, seq).
    pub fn effects(&self) -> Vec<(u64, usize, &Effect)> {
        self.entries.iter().flat_map(|(i, es)| es.iter().enumerate().map(move |(s, e)| (*i, s, e))).collect()
    }

    pub fn call_records(&self) -> Vec<&CallRecord> {
        self.effects()
            .into_iter()
            .filter_map(|(_, _, e)| match e {
                Effect::CallEnded(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn queue_log(&self) -> Vec<(u64, usize, &QueueLogEntry)> {
        self.effects()
            .into_iter()
            .filter_map(|(i, s, e)| match e {
                Effect::QueueLog(l) => Some((i, s, l)),
                _ => None,
            })
            .collect()
    }

    pub fn operator_changes(&self) -> Vec<&OperatorView> {
        self.effects()
            .into_iter()
            .filter_map(|(_, _, e)| match e {
                Effect::OperatorChanged(v) => Some(v),
                _ => None,
            })
            .collect()
    }
}

/// A morning at a two-queue, three-site call centre: gated and ungated calls answered across
/// sites, an abandon, a break, a callback promise whose every attempt fails, a logout.
pub fn busy_morning(h: &mut Harness) {
    h.ok(CommandBody::PutQueue(QueueConfig {
        id: QueueId::new("sales"),
        name: "Sales".into(),
        callback_max_attempts: 2,
        callback_retry_delay_ms: 30_000,
        ..Default::default()
    }));
    h.ok(CommandBody::PutQueue(QueueConfig {
        id: QueueId::new("support"),
        name: "Support".into(),
        ..Default::default()
    }));
    h.ok(CommandBody::PutGate(GateConfig {
        id: GateId::new("web"),
        queue: QueueId::new("sales"),
        whisper: Some("web-lead".into()),
        ..Default::default()
    }));
    h.operator("alice", SITE_A, &[("sales", 0), ("support", 1)]);
    h.operator("carol", SITE_C, &[("sales", 0)]);
    h.login("carol", SITE_C);

    // A caller at site A through the web gate is answered by carol at site C.
    let offer = Harness::the_offer(&h.enqueue("a-1.1", "sales", Some("web"), SITE_A));
    h.advance(2_000);
    h.connect(&offer);
    h.advance(60_000);
    h.complete(&offer, HungUpBy::Caller);

    // A support caller abandons before anyone is there.
    h.enqueue("b-2.1", "support", None, SITE_B);
    h.advance(10_000);
    h.ok(CommandBody::Abandoned { call: CallId::new("b-2.1") });

    // alice logs in, takes a call, goes on break, comes back.
    h.login("alice", SITE_A);
    let offer = Harness::the_offer(&h.enqueue("a-1.2", "sales", None, SITE_A));
    h.connect(&offer);
    h.advance(30_000);
    h.complete(&offer, HungUpBy::Operator);
    h.ok(CommandBody::OperatorState {
        operator: OperatorId::new("alice"),
        state: RequestedState::Break { reason: "coffee".into() },
    });
    h.ok(CommandBody::OperatorLogout { operator: OperatorId::new("carol") });

    // Nobody available: a caller asks for a callback, both attempts fail.
    h.enqueue("c-3.1", "sales", Some("web"), SITE_C);
    h.ok(CommandBody::RequestCallback { call: CallId::new("c-3.1"), number: "+33123456789".into() });
    let dial = Harness::the_offer(
        &h.ok(CommandBody::OperatorState { operator: OperatorId::new("alice"), state: RequestedState::Available }),
    );
    h.ok(CommandBody::CallbackResult {
        call: dial.call.clone(),
        operator: dial.operator.clone(),
        fence: dial.fence,
        answered: false,
    });
    let dial = Harness::the_offer(&h.advance(30_000));
    h.ok(CommandBody::CallbackResult { call: dial.call, operator: dial.operator, fence: dial.fence, answered: false });
    h.routing.check_invariants().expect("invariants hold");
}
