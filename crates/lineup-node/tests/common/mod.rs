//! A webhook receiver on 127.0.0.1 for the webhook tests: it reads each request (headers,
//! body), reports it on a channel and answers as scripted.
#![allow(dead_code)]

use lineup_node::webhook::{RetryPolicy, WEBHOOK_QUEUE_CAPACITY_EVENTS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Bound on waiting for anything to happen in these tests.
pub const WAIT_MS: u64 = 10_000;
/// Largest request head or body the test receiver reads.
const REQUEST_MAX_BYTES: usize = 64 * 1024;

/// What a receiver answers, request by request.
#[derive(Clone, Copy)]
pub enum Answer {
    Status(u16),
    Never,
}

/// One request as the receiver read it: lower-cased header names, and the body.
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub requests: mpsc::Receiver<Received>,
}

/// A receiver on 127.0.0.1 answering `script` in turn, then `then` to every later request.
pub async fn receiver(script: Vec<Answer>, then: Answer, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, requests) = mpsc::channel(4 * WEBHOOK_QUEUE_CAPACITY_EVENTS);
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = *script.get(served.fetch_add(1, Ordering::SeqCst)).unwrap_or(&then);
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve(tcp, answer, tx).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve(stream, answer, tx).await;
                        }
                    }
                }
            });
        }
    });
    Receiver { addr, requests }
}

/// Reads one request, reports it, answers it (or holds the connection open for good).
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: Answer, tx: mpsc::Sender<Received>) {
    let Some(received) = read_request(&mut stream).await else { return };
    let _ = tx.send(received).await;
    match answer {
        Answer::Status(status) => {
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Answer::Never => std::future::pending::<()>().await,
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Received> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > REQUEST_MAX_BYTES {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok().filter(|n| *n <= REQUEST_MAX_BYTES)?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received { headers, body })
}

/// Short pauses so retries happen within a test; each attempt bounded by `timeout_ms`.
pub fn quick_retries(timeout_ms: u64) -> RetryPolicy {
    RetryPolicy { first_delay_ms: 20, factor: 2, max_delay_ms: 100, attempts_max: 4, request_timeout_ms: timeout_ms }
}

pub async fn next_request(receiver: &mut Receiver) -> Received {
    tokio::time::timeout(Duration::from_millis(WAIT_MS), receiver.requests.recv())
        .await
        .expect("a request within the bound")
        .expect("the receiver runs")
}
