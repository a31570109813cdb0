//! The API's limits over real TCP: request rates (429 with `Retry-After`), the throttle after
//! failed authentication, the header, body and idle timeouts, the connection cap and the
//! WebSocket cap per token. Limits are set small here; waits are bounded loops on a condition.

mod common;

use common::*;
use lineup_api::{ApiConfig, ApiLimits};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_limits(limits: ApiLimits) -> ApiConfig {
    ApiConfig { limits, ..ApiConfig::default() }
}

/// Reads until the server closes the connection (EOF or reset), within `bound`; returns what
/// was read and how long it took, or None if it was still open at the bound.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = bound.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((seen, started.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// One kept-alive GET on `stream`; the status of its answer.
async fn get_on(stream: &mut TcpStream, rig: &Rig, path: &str) -> u16 {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {VIEWER}\r\n\r\n", rig.addr);
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    // The answers here are small: the whole head is in once it ends with a blank line.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf)).await.expect("an answer in time").unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_answered_429_with_retry_after() {
    let limits = ApiLimits { requests_per_token_per_second: 1, request_burst_per_token: 3, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    for _ in 0..3 {
        rig.get("/v1/queues", VIEWER).await;
    }
    let res = rig.http.get(rig.url("/v1/queues")).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(retry_after.as_deref(), Some("1"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another token has its own bucket.
    rig.get("/v1/queues", SUPERVISOR).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_rate_is_answered_429_even_for_pages() {
    let limits = ApiLimits { requests_per_address_per_second: 1, request_burst_per_address: 2, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    assert_eq!(rig.call("get", "/healthz", None, None).await.0, 200);
    assert_eq!(rig.call("get", "/healthz", None, None).await.0, 200);
    let (status, body) = rig.call("get", "/healthz", None, None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_throttle_the_address_even_for_a_right_token() {
    let limits = ApiLimits { auth_failures_before_throttle: 3, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    // No token at all is not a guess: it does not count.
    for _ in 0..5 {
        assert_eq!(rig.call("get", "/v1/queues", None, None).await.0, 401);
    }
    for i in 0..3 {
        let guess = format!("guessed-token-{i:010}");
        assert_eq!(rig.call("get", "/v1/queues", Some(&guess), None).await.0, 401);
    }
    let res = rig.http.get(rig.url("/v1/queues")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429, "the right token waits out the window too");
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(rig.ws(&format!("/v1/live?token={VIEWER}"), None).await.err(), Some(429));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_at_the_header_read_timeout() {
    const HEADER_READ_TIMEOUT_MS: u64 = 400;
    let limits = ApiLimits {
        header_read_timeout_ms: HEADER_READ_TIMEOUT_MS,
        keep_alive_idle_timeout_ms: 60_000,
        ..ApiLimits::default()
    };
    let rig = Rig::start_with(with_limits(limits)).await;
    let mut stream = TcpStream::connect(rig.addr).await.unwrap();
    stream.write_all(b"GET /v1/queues HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One header byte at a time, each only when the server has not closed within 50 ms:
    // the idle timeout never fires, only the header timeout can.
    let started = Instant::now();
    let bound = Duration::from_millis(HEADER_READ_TIMEOUT_MS + WAIT_MAX_MS);
    let mut closed = None;
    while started.elapsed() < bound {
        if stream.write_all(b"X").await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        if let Some((_, _)) = closed_within(&mut stream, Duration::from_millis(50)).await {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("the slow header was never cut off");
    assert!(closed >= Duration::from_millis(HEADER_READ_TIMEOUT_MS), "closed too early: {closed:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    const IDLE_MS: u64 = 300;
    let limits =
        ApiLimits { keep_alive_idle_timeout_ms: IDLE_MS, header_read_timeout_ms: 60_000, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    let mut stream = TcpStream::connect(rig.addr).await.unwrap();
    assert_eq!(get_on(&mut stream, &rig, "/v1/queues").await, 200);
    let (_, after) = closed_within(&mut stream, Duration::from_millis(IDLE_MS + WAIT_MAX_MS))
        .await
        .expect("the idle connection stayed open");
    assert!(after >= Duration::from_millis(IDLE_MS / 2), "closed too early: {after:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_answered_408() {
    const BODY_READ_TIMEOUT_MS: u64 = 300;
    let limits = ApiLimits { body_read_timeout_ms: BODY_READ_TIMEOUT_MS, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    apply_base_config(&rig);
    let mut stream = TcpStream::connect(rig.addr).await.unwrap();
    let head = format!(
        "POST /v1/calls/c1/priority HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SUPERVISOR}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"prio"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, after) = closed_within(&mut stream, Duration::from_millis(BODY_READ_TIMEOUT_MS + WAIT_MAX_MS))
        .await
        .expect("no answer to a body that never came");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after >= Duration::from_millis(BODY_READ_TIMEOUT_MS), "answered too early: {after:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_until_one_closes() {
    const CONNECTIONS_MAX: usize = 3;
    let limits = ApiLimits { connections_max: CONNECTIONS_MAX, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS_MAX {
        let mut stream = TcpStream::connect(rig.addr).await.unwrap();
        assert_eq!(get_on(&mut stream, &rig, "/v1/queues").await, 200);
        held.push(stream);
    }
    let mut over = TcpStream::connect(rig.addr).await.unwrap();
    let (answer, _) =
        closed_within(&mut over, Duration::from_millis(WAIT_MAX_MS)).await.expect("the extra connection was held open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held.pop());
    // The freed place is taken back once the server has seen the close.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    loop {
        let mut stream = TcpStream::connect(rig.addr).await.unwrap();
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", rig.addr);
        let _ = stream.write_all(head.as_bytes()).await;
        let (answer, _) = closed_within(&mut stream, Duration::from_millis(WAIT_MAX_MS)).await.unwrap_or_default();
        if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's place never came back");
        tokio::task::yield_now().await;
    }
    drop(held);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_the_tokens_cap_is_refused() {
    const PER_TOKEN: usize = 2;
    let limits = ApiLimits { websockets_per_token_max: PER_TOKEN, ..ApiLimits::default() };
    let rig = Rig::start_with(with_limits(limits)).await;
    let path = format!("/v1/live?token={VIEWER}");
    let mut open = Vec::new();
    for _ in 0..PER_TOKEN {
        open.push(rig.ws(&path, None).await.expect("under the cap"));
    }
    assert_eq!(rig.ws(&path, None).await.err(), Some(429), "one over the token's cap");
    let other = rig.ws(&format!("/v1/live?token={ADMIN}"), None).await;
    assert!(other.is_ok(), "another token has its own cap");
    let mut closing = open.pop().unwrap();
    closing.socket.close(None).await.unwrap();
    drop(closing);
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    while rig.ws(&path, None).await.is_err() {
        assert!(Instant::now() < deadline, "a closed socket's place never came back");
        tokio::task::yield_now().await;
    }
    rig.stop().await;
}
