//! The Redis live projection under the simulator (real nodes only): per site, the
//! production `RedisProjection` task, fed from the site's apply stream, talking to an
//! in-memory Redis that a fault can take down (a Redis outage). The checker then requires
//! that the projection converges: after the heal and the drain, the site's Redis holds
//! exactly what a fresh rebuild from the site's routing state writes.
//!
//! `SimRedis` implements redis-rs's `ConnectionLike` for the commands the projection sends
//! (DEL, HSET, SADD, SREM, SET, ZADD, ZREM, PUBLISH, SCAN, in MULTI/EXEC pipelines); any
//! other command is an error, so a projection change that needs more shows up here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use lineup_core::{Effect, Routing};
use lineup_store::{ProjectionState, RedisProjection, StateSource};
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

/// A key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    Str(String),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    /// member → score as sent (the projection formats scores one way).
    ZSet(BTreeMap<String, String>),
}

#[derive(Default)]
struct Data {
    up: bool,
    /// Planted bug: acknowledge while down, keeping nothing.
    lossy: bool,
    keys: BTreeMap<String, Stored>,
    published: u64,
}

/// An in-memory Redis (one per site), shared between its connection and the checker.
#[derive(Clone)]
pub struct SimRedis(Arc<Mutex<Data>>);

fn text(arg: Arg<&[u8]>) -> String {
    match arg {
        Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        // Only SCAN's cursor here; the projection starts every scan at 0.
        _ => "0".into(),
    }
}

fn wrong(what: &str) -> RedisError {
    RedisError::from((ErrorKind::Client, "sim redis", what.to_string()))
}

/// The key a command names (its first argument).
fn first_key(args: &[String]) -> Result<String, RedisError> {
    args.first().cloned().ok_or_else(|| wrong("missing key"))
}

/// HSET key field value [field value ...].
fn hash_set(data: &mut Data, args: &[String]) -> Result<Value, RedisError> {
    let entry = data.keys.entry(first_key(args)?).or_insert_with(|| Stored::Hash(BTreeMap::new()));
    let Stored::Hash(hash) = entry else { return Err(wrong("HSET on a non-hash")) };
    for pair in args[1..].chunks(2) {
        let [field, value] = pair else { return Err(wrong("HSET with an odd argument count")) };
        hash.insert(field.clone(), value.clone());
    }
    Ok(Value::Int(0))
}

/// SADD (`add`) or SREM key member [member ...]; an emptied set is no key, as in Redis.
fn set_members(data: &mut Data, add: bool, args: &[String]) -> Result<Value, RedisError> {
    let k = first_key(args)?;
    let entry = data.keys.entry(k.clone()).or_insert_with(|| Stored::Set(BTreeSet::new()));
    let Stored::Set(set) = entry else { return Err(wrong("set command on a non-set")) };
    for member in &args[1..] {
        if add {
            set.insert(member.clone());
        } else {
            set.remove(member);
        }
    }
    if set.is_empty() {
        data.keys.remove(&k);
    }
    Ok(Value::Int(0))
}

/// ZADD (`add`: key score member [score member ...]) or ZREM key member [member ...]; an
/// emptied sorted set is no key, as in Redis.
fn sorted_set_members(data: &mut Data, add: bool, args: &[String]) -> Result<Value, RedisError> {
    let k = first_key(args)?;
    let entry = data.keys.entry(k.clone()).or_insert_with(|| Stored::ZSet(BTreeMap::new()));
    let Stored::ZSet(zset) = entry else { return Err(wrong("sorted-set command on another type")) };
    if add {
        for pair in args[1..].chunks(2) {
            let [score, member] = pair else { return Err(wrong("ZADD with an odd argument count")) };
            zset.insert(member.clone(), score.clone());
        }
    } else {
        for member in &args[1..] {
            zset.remove(member);
        }
    }
    if zset.is_empty() {
        data.keys.remove(&k);
    }
    Ok(Value::Int(0))
}

/// SCAN 0 MATCH <escaped prefix>* COUNT n: everything in one round.
fn scan(data: &Data, args: &[String]) -> Value {
    let pattern = args.iter().skip_while(|a| !a.eq_ignore_ascii_case("MATCH")).nth(1).cloned();
    let prefix = pattern.map(|p| unescape_glob_prefix(&p)).unwrap_or_default();
    let keys: Vec<Value> = data
        .keys
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| Value::BulkString(k.clone().into_bytes()))
        .collect();
    Value::Array(vec![Value::BulkString(b"0".to_vec()), Value::Array(keys)])
}

impl SimRedis {
    pub fn new() -> Self {
        SimRedis(Arc::new(Mutex::new(Data { up: true, ..Data::default() })))
    }

    /// The planted bug `PlantedBug::LossyRedis`.
    pub fn set_lossy(&self, lossy: bool) {
        self.lock().lossy = lossy;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
    }

    fn down() -> RedisError {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "sim redis is down").into()
    }

    fn execute(data: &mut Data, cmd: &Cmd) -> Result<Value, RedisError> {
        let mut args = cmd.args_iter().map(text);
        let name = args.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<String> = args.collect();
        match name.as_str() {
            "DEL" => {
                let removed = args.iter().filter(|k| data.keys.remove(*k).is_some()).count();
                Ok(Value::Int(removed as i64))
            }
            "SET" => {
                let value = args.get(1).cloned().ok_or_else(|| wrong("SET without a value"))?;
                data.keys.insert(first_key(&args)?, Stored::Str(value));
                Ok(Value::Okay)
            }
            "HSET" => hash_set(data, &args),
            "SADD" | "SREM" => set_members(data, name == "SADD", &args),
            "ZADD" | "ZREM" => sorted_set_members(data, name == "ZADD", &args),
            "PUBLISH" => {
                data.published += 1;
                Ok(Value::Int(0))
            }
            "SCAN" => Ok(scan(data, &args)),
            other => Err(wrong(&format!("command {other} is not simulated"))),
        }
    }

    pub fn key_count(&self) -> usize {
        self.lock().keys.len()
    }

    /// Every key and value, for comparing two Redis instances.
    fn snapshot(&self) -> BTreeMap<String, Stored> {
        self.lock().keys.clone()
    }
}

impl Default for SimRedis {
    fn default() -> Self {
        Self::new()
    }
}

/// The prefix a `<escaped prefix>*` glob matches.
fn unescape_glob_prefix(pattern: &str) -> String {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    let mut out = String::with_capacity(body.len());
    let mut escaped = false;
    for c in body.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

impl ConnectionLike for SimRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let mut data = self.lock();
        let answer = if data.up { Self::execute(&mut data, cmd) } else { Err(Self::down()) };
        drop(data);
        Box::pin(async move { answer })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let mut data = self.lock();
        let results = if !data.up && data.lossy {
            Ok(vec![Value::Okay; pipeline.len()])
        } else if !data.up {
            Err(Self::down())
        } else {
            // MULTI/EXEC: all or nothing, like Redis (commands are checked before any runs
            // here by running them on a copy).
            let mut copy = Data { up: true, lossy: data.lossy, keys: data.keys.clone(), published: data.published };
            let results: Result<Vec<Value>, RedisError> =
                pipeline.cmd_iter().map(|cmd| Self::execute(&mut copy, cmd)).collect();
            if results.is_ok() {
                *data = copy;
            }
            results
        };
        drop(data);
        // A transaction's answer is EXEC's one array; a plain pipeline's, one per command.
        let transaction = offset == pipeline.len() + 1 && count == 1;
        let answer = results.map(|results| if transaction { vec![Value::Array(results)] } else { results });
        Box::pin(async move { answer })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Key prefix of every simulated site's projection.
pub const KEY_PREFIX: &str = "lineup:sim:";

/// One site's projection: the production task over the site's `SimRedis`.
pub struct SiteProjection {
    pub redis: SimRedis,
    projection: Option<RedisProjection>,
    jitter_seed: u64,
}

impl SiteProjection {
    pub fn new(jitter_seed: u64) -> Self {
        SiteProjection { redis: SimRedis::new(), projection: None, jitter_seed }
    }

    /// Starts the projection task (at start and after a restart; Redis keeps its keys).
    /// Call inside the runtime.
    pub fn start(&mut self, source: StateSource) {
        self.jitter_seed = self.jitter_seed.wrapping_add(1);
        let projection = RedisProjection::start_with_connection(
            self.redis.clone(),
            KEY_PREFIX.to_string(),
            source,
            Some(self.jitter_seed),
        );
        self.projection = Some(projection);
    }

    /// The process stops: the returned projection must be stopped (awaited in the
    /// runtime), or its task would go on rebuilding from the dead node's state.
    pub fn crash(&mut self) -> Option<RedisProjection> {
        self.projection.take()
    }

    pub fn submit(&self, apply_index: u64, effects: &[Effect]) {
        if let Some(projection) = &self.projection {
            projection.submit(apply_index, effects);
        }
    }

    /// Configuration commands change memberships without projection effects (the
    /// production node does the same after applying one).
    pub fn request_rebuild(&self) {
        if let Some(projection) = &self.projection {
            projection.request_rebuild();
        }
    }

    /// Whether the projection says it is caught up (not degraded).
    pub fn healthy(&self) -> bool {
        self.projection.as_ref().is_some_and(|p| !p.health().degraded)
    }
}

/// A fresh projection of `routing` into an empty Redis, to compare a site's Redis with.
pub fn reference(routing: &Routing) -> ReferenceBuild {
    let state = ProjectionState::from_routing(routing);
    let redis = SimRedis::new();
    let source: StateSource = Arc::new(move || state.clone());
    let projection = RedisProjection::start_with_connection(redis.clone(), KEY_PREFIX.to_string(), source, Some(1));
    ReferenceBuild { redis, projection }
}

/// A reference rebuild in progress (it runs when the runtime next advances).
pub struct ReferenceBuild {
    redis: SimRedis,
    projection: RedisProjection,
}

impl ReferenceBuild {
    /// What is different between `site`'s Redis and the reference (empty: converged).
    pub fn differences(&self, site: &SimRedis) -> Vec<String> {
        if self.projection.health().degraded {
            return vec!["the reference rebuild did not run".into()];
        }
        let (want, have) = (self.redis.snapshot(), site.snapshot());
        let mut out = Vec::new();
        for (key, value) in &want {
            match have.get(key) {
                None => out.push(format!("{key} missing")),
                Some(v) if v != value => out.push(format!("{key} is {v:?}, the state says {value:?}")),
                Some(_) => {}
            }
        }
        out.extend(have.keys().filter(|k| !want.contains_key(*k)).map(|k| format!("{k} is stale")));
        out
    }
}
