//! The client against minimal loopback servers: a raw HTTP responder for status mapping and
//! timeouts, and a tungstenite server for the events stream (auth header, dedup, unknown
//! events, reconnect).

use futures_util::SinkExt;
use lineup_ari::events::EventStreamItem;
use lineup_ari::{ApplicationName, Ari, AriConfig, AriError, AriEvents, ChannelId, EventKind, HangupReason, HttpAri};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

const WAIT_LIMIT: Duration = Duration::from_secs(10);
const RECORDING: &str = include_str!("data/asterisk22-queue-call.jsonl");

fn config(port: u16, request_timeout_ms: u64) -> AriConfig {
    AriConfig {
        base_url: format!("http://127.0.0.1:{port}/ari"),
        username: "lineup".into(),
        password: "s3cret".into(),
        applications: vec![ApplicationName::new("lineup").unwrap(), ApplicationName::new("lineup-login").unwrap()],
        request_timeout_ms,
    }
}

/// Answers each connection with one canned HTTP response and reports the request head.
async fn canned_http_server(status_line: &'static str, body: &'static str) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heads, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 8192];
            let read = socket.read(&mut buffer).await.unwrap_or(0);
            let _ = heads.send(String::from_utf8_lossy(&buffer[..read]).into_owned()).await;
            let response = format!(
                "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (port, receiver)
}

#[tokio::test]
async fn http_statuses_map_to_typed_errors_with_asterisk_messages() {
    type Case = (&'static str, fn(&AriError) -> bool);
    let cases: [Case; 5] = [
        ("404 Not Found", |e| matches!(e, AriError::NotFound { message } if message == "Channel not found")),
        ("409 Conflict", |e| matches!(e, AriError::Conflict { .. })),
        ("412 Precondition Failed", |e| matches!(e, AriError::PreconditionFailed { .. })),
        ("422 Unprocessable Entity", |e| matches!(e, AriError::Unprocessable { .. })),
        ("500 Internal Server Error", |e| matches!(e, AriError::ServerError { .. })),
    ];
    for (status_line, expected) in cases {
        let (port, mut heads) = canned_http_server(status_line, r#"{"message": "Channel not found"}"#).await;
        let ari = HttpAri::new(&config(port, 2_000)).unwrap();
        let error = ari.answer(&ChannelId::new("no-such-channel").unwrap()).await.unwrap_err();
        assert!(expected(&error), "{status_line}: {error:?}");
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("POST /ari/channels/no-such-channel/answer HTTP/1.1"), "{head}");
        assert!(head.contains("authorization: Basic bGluZXVwOnMzY3JldA=="), "{head}");
        assert!(!head.contains("api_key"), "{head}");
    }
}

#[tokio::test]
async fn hangup_sends_the_reason_and_accepts_204() {
    let (port, mut heads) = canned_http_server("204 No Content", "").await;
    let ari = HttpAri::new(&config(port, 2_000)).unwrap();
    ari.hangup(&ChannelId::new("1795325224.1").unwrap(), HangupReason::Busy).await.unwrap();
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("DELETE /ari/channels/1795325224.1?reason=busy HTTP/1.1"), "{head}");
}

#[tokio::test]
async fn a_silent_server_gives_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let ari = HttpAri::new(&config(port, 200)).unwrap();
    let error = ari.list_channels().await.unwrap_err();
    assert!(matches!(error, AriError::Timeout { timeout_ms: 200, .. }), "{error:?}");
    holder.abort();
}

#[tokio::test]
async fn malformed_bodies_are_errors() {
    let (port, _heads) = canned_http_server("200 OK", r#"{"id": 5}"#).await;
    let ari = HttpAri::new(&config(port, 2_000)).unwrap();
    let error = ari.list_channels().await.unwrap_err();
    assert!(matches!(error, AriError::MalformedJson { .. }), "{error:?}");
}

async fn next_item(events: &mut AriEvents) -> EventStreamItem {
    tokio::time::timeout(WAIT_LIMIT, events.next()).await.expect("an item within the wait limit").expect("stream open")
}

#[tokio::test]
async fn events_are_authenticated_deduplicated_and_reconnected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded: Vec<String> = RECORDING
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["kind"] == "event")
        .map(|record| record["event"].to_string())
        .collect();
    let recorded_count = recorded.len();
    let (uris, mut seen_uris) = mpsc::channel::<(String, Option<String>)>(4);
    let server = tokio::spawn(async move {
        for connection in 0..2 {
            let (socket, _) = listener.accept().await.unwrap();
            let uris = uris.clone();
            let callback = move |request: &Request, response: Response| {
                let authorization = request.headers().get("authorization").map(|v| v.to_str().unwrap().to_string());
                let _ = uris.try_send((request.uri().to_string(), authorization));
                Ok(response)
            };
            let mut socket = tokio_tungstenite::accept_hdr_async(socket, callback).await.unwrap();
            if connection == 0 {
                for text in &recorded {
                    socket.send(Message::text(text.clone())).await.unwrap();
                }
                socket.send(Message::text(r#"{"type":"ChannelTalkingStarted","application":"lineup"}"#)).await.unwrap();
                socket.send(Message::text("not json")).await.unwrap();
                socket.close(None).await.unwrap();
            } else {
                socket.send(Message::text(recorded[0].clone())).await.unwrap();
                // Keep the second connection open until the test ends.
                let _ = futures_util::StreamExt::next(&mut socket).await;
            }
        }
    });

    let mut events = AriEvents::connect(&config(port, 2_000)).unwrap();
    assert_eq!(next_item(&mut events).await, EventStreamItem::Connected { connection_serial: 1 });
    let (uri, authorization) = seen_uris.recv().await.unwrap();
    assert_eq!(uri, "/ari/events?app=lineup,lineup-login");
    assert_eq!(authorization.as_deref(), Some("Basic bGluZXVwOnMzY3JldA=="));

    let mut delivered = Vec::new();
    let reason = loop {
        match next_item(&mut events).await {
            EventStreamItem::Event(event) => delivered.push(event),
            EventStreamItem::Disconnected { reason } => break reason,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(!reason.is_empty());
    assert_eq!(delivered.len(), recorded_count - 4, "the four per-application copies are dropped");
    assert!(matches!(delivered[0].kind, EventKind::StasisStart { .. }));
    assert_eq!(events.stats().duplicate_events(), 4);
    assert_eq!(events.stats().unknown_events(), 1);
    assert_eq!(events.stats().malformed_messages(), 1);

    assert_eq!(next_item(&mut events).await, EventStreamItem::Connected { connection_serial: 2 });
    let EventStreamItem::Event(event) = next_item(&mut events).await else { panic!("an event after reconnect") };
    assert!(matches!(event.kind, EventKind::StasisStart { .. }));
    drop(events);
    server.abort();
}

#[tokio::test]
async fn oversized_answers_are_refused_without_reading_them_whole() {
    let limit = lineup_ari::rest::RESPONSE_SIZE_MAX_BYTES;
    let body: &'static str = Box::leak(format!("[{}]", "0,".repeat(limit / 2 + 1)).into_boxed_str());
    let (port, _heads) = canned_http_server("200 OK", body).await;
    let ari = HttpAri::new(&config(port, 5_000)).unwrap();
    let error = ari.list_channels().await.unwrap_err();
    assert!(
        matches!(error, AriError::MessageTooLarge { size_bytes, limit_bytes } if size_bytes == limit + 1 && limit_bytes == limit),
        "{error:?}"
    );
}
