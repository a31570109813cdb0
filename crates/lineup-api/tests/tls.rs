//! HTTPS on a real loopback socket: REST with a token, a live feed over wss and the Origin
//! check against `https`, and what is refused: a client that trusts another CA, plain HTTP
//! to the TLS port, and a handshake that never finishes (closed within its timeout, holding
//! its place under the connection cap meanwhile).

mod common;

use common::*;
use futures_util::StreamExt;
use lineup_api::{ApiConfig, ApiLimits, ApiTls};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A CA's certificate (PEM) and a server identity it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    server: ApiTls,
}

fn pki(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let server = ApiTls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    Pki { ca_pem: ca_cert.pem(), server }
}

async fn https_rig(pki: &Pki, limits: ApiLimits) -> Rig {
    Rig::start_with(ApiConfig { tls: Some(pki.server.clone()), limits, ..ApiConfig::default() }).await
}

async fn tls_connect(addr: SocketAddr, ca_pem: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let config = lineup_api::tls::client_config(ca_pem.as_bytes()).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    tokio::time::timeout(Duration::from_millis(WAIT_MAX_MS), handshake).await.expect("the handshake ends in time")
}

/// One HTTP/1.1 request over a fresh TLS connection; the status and JSON body.
async fn https_call(addr: SocketAddr, ca_pem: &str, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut stream = tls_connect(addr, ca_pem).await.expect("TLS handshake");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server closes after its answer (`Connection: close`); how it closes is not checked.
    let _ = tokio::time::timeout(Duration::from_millis(WAIT_MAX_MS), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_over_https_reads_and_writes_with_a_token() {
    let pki = pki("test CA");
    let rig = https_rig(&pki, ApiLimits::default()).await;
    apply_base_config(&rig);
    rig.enqueue("c1", "sales", None);
    let (status, me) = https_call(rig.addr, &pki.ca_pem, "GET", "/v1/me", Some(VIEWER)).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("viewer")), "{me}");
    let (status, _) = https_call(rig.addr, &pki.ca_pem, "GET", "/v1/me", None).await;
    assert_eq!(status, 401, "no token, no answer");
    // A POST that mints a widget token, which then opens its call's position.
    let (status, minted) = https_call(rig.addr, &pki.ca_pem, "POST", "/v1/calls/c1/widget-token", Some(FRONTEND)).await;
    assert_eq!(status, 200, "{minted}");
    let widget = minted["token"].as_str().expect("a widget token");
    let (status, position) = https_call(rig.addr, &pki.ca_pem, "GET", "/v1/calls/c1/position", Some(widget)).await;
    assert_eq!(status, 200, "{position}");
    rig.stop().await;
}

/// Opens `/v1/live` over wss with `origin`; the socket, or the refusal's status.
async fn wss(
    addr: SocketAddr,
    ca_pem: &str,
    origin: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>, u16> {
    let stream = tls_connect(addr, ca_pem).await.expect("TLS handshake");
    let mut request = format!("wss://{addr}/v1/live?token={VIEWER}").into_client_request().unwrap();
    request.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("wss connect: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_feed_runs_over_wss_and_the_origin_must_be_https() {
    let pki = pki("test CA");
    let rig = https_rig(&pki, ApiLimits::default()).await;
    apply_base_config(&rig);
    let refused = wss(rig.addr, &pki.ca_pem, &format!("http://{}", rig.addr)).await.err();
    assert_eq!(refused, Some(403), "a page served over http is another origin than this https API");
    let mut socket = wss(rig.addr, &pki.ca_pem, &format!("https://{}", rig.addr)).await.expect("same origin");
    let mut model = LiveModel::default();
    let mut enqueued = false;
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    // Bounded by the deadline: read until the call enqueued after the snapshot shows up.
    while !model.calls.contains_key("c1") {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.expect("c1 in the live feed in time");
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => panic!("the live feed ended: {other:?}"),
        };
        model.apply(&serde_json::from_str(&text).unwrap());
        if model.complete() && !enqueued {
            rig.enqueue("c1", "sales", None);
            enqueued = true;
        }
    }
    assert_eq!(model.snapshots, 1, "a snapshot, then the call as a delta");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_is_refused() {
    let (pki, other) = (pki("test CA"), pki("another CA"));
    let rig = https_rig(&pki, ApiLimits::default()).await;
    let refused = tls_connect(rig.addr, &other.ca_pem).await.expect_err("the server's certificate is not trusted");
    assert!(refused.to_string().contains("certificate"), "{refused}");
    let (status, _) = https_call(rig.addr, &pki.ca_pem, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "a client trusting the right CA is served");
    rig.stop().await;
}

/// Reads until the server closes `stream` (end of stream or reset), within the wait bound;
/// the bytes received.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(WAIT_MAX_MS);
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.expect("closed in time") {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_is_refused() {
    let pki = pki("test CA");
    let rig = https_rig(&pki, ApiLimits::default()).await;
    let mut plain = TcpStream::connect(rig.addr).await.unwrap();
    plain.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", rig.addr).as_bytes()).await.unwrap();
    let received = read_until_closed(&mut plain).await;
    assert!(!String::from_utf8_lossy(&received).contains("HTTP/1.1"), "no HTTP answer over plain TCP");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_closed_in_time_and_holds_its_place_meanwhile() {
    const HANDSHAKE_MS: u64 = 2_000;
    let pki = pki("test CA");
    let limits = ApiLimits { tls_handshake_timeout_ms: HANDSHAKE_MS, connections_max: 1, ..ApiLimits::default() };
    let rig = https_rig(&pki, limits).await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(rig.addr).await.unwrap();
    // The header of a handshake record of 512 bytes, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let over_cap = tls_connect(rig.addr, &pki.ca_pem).await;
    assert!(over_cap.is_err(), "the only place is taken by the stalled handshake");
    read_until_closed(&mut stalled).await;
    let closed_after = started.elapsed();
    assert!(closed_after >= Duration::from_millis(HANDSHAKE_MS), "closed after {closed_after:?}");
    assert!(closed_after < Duration::from_millis(WAIT_MAX_MS), "closed after {closed_after:?}");
    let (status, _) = https_call(rig.addr, &pki.ca_pem, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "the place is free again");
    rig.stop().await;
}
