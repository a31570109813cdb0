//! The services one site writes to besides its own disk: its history in a PostgreSQL
//! database of the run's own and its Redis projection under a key prefix of the run's own,
//! each reached through a TCP relay (`tcp_relay.rs`) that a fault cuts — the database or
//! Redis down and back, as the node sees it. The other sites keep SQLite, so a run covers
//! both history backends.

use crate::tcp_relay::TcpRelay;
use anyhow::Context;
use sqlx::Connection;
use std::net::SocketAddr;
use std::process::Command;

/// The shared PostgreSQL server's maintenance database (trust on loopback).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const POSTGRES_PORT: u16 = 5432;
pub const REDIS_PORT: u16 = 6379;
/// The site whose history and projection go through the relays.
pub const SERVICES_SITE: u64 = 1;

pub struct Services {
    pub database: String,
    pub redis_prefix: String,
    postgres: TcpRelay,
    redis: TcpRelay,
}

async fn admin_execute(sql: &str) -> anyhow::Result<()> {
    let mut connection = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await.context("connect to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut connection)
        .await
        .with_context(|| sql.to_string())?;
    let _ = connection.close().await;
    Ok(())
}

impl Services {
    /// A new database and key prefix named after `run` (letters, digits, underscores), and
    /// the relays in front of PostgreSQL and Redis.
    pub async fn start(run: &str) -> anyhow::Result<Services> {
        let database = format!("lineup_chaos_{run}");
        admin_execute(&format!("CREATE DATABASE {database}")).await?;
        let postgres = TcpRelay::start(SocketAddr::from(([127, 0, 0, 1], POSTGRES_PORT))).await?;
        let redis = TcpRelay::start(SocketAddr::from(([127, 0, 0, 1], REDIS_PORT))).await?;
        Ok(Services { redis_prefix: format!("lineup-chaos:{run}:"), database, postgres, redis })
    }

    /// The history URL the node is given (through the relay).
    pub fn history_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.postgres.port(), self.database)
    }

    /// The same database, reached directly (the checker reads it when the run is over).
    pub fn history_url_direct(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{POSTGRES_PORT}/{}", self.database)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis.port())
    }

    pub fn set_database_cut(&self, cut: bool) {
        self.postgres.set_cut(cut);
    }

    pub fn set_redis_cut(&self, cut: bool) {
        self.redis.set_cut(cut);
    }

    /// Drops the database and deletes the run's Redis keys (best effort: a failure leaves
    /// only names no other run uses).
    pub async fn remove(&self) {
        let _ = admin_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database)).await;
        let pattern = format!("{}*", self.redis_prefix);
        let listed = Command::new("redis-cli").args(["-p", "6379", "--scan", "--pattern", &pattern]).output();
        let Ok(listed) = listed else { return };
        let keys: Vec<String> = String::from_utf8_lossy(&listed.stdout).lines().map(str::to_string).collect();
        for chunk in keys.chunks(REDIS_DELETE_CHUNK_COUNT) {
            let _ = Command::new("redis-cli").args(["-p", "6379", "DEL"]).args(chunk).output();
        }
    }
}

/// Keys deleted per `redis-cli DEL`.
const REDIS_DELETE_CHUNK_COUNT: usize = 500;
