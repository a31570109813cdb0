//! One webhook POST over HTTP/1.1, `http://` or `https://` (tokio-rustls with ring, checked
//! against a CA bundle): one connection per request, the whole exchange within a timeout.
//!
//! hyper's client rather than reqwest, as the CLI does: reqwest's rustls feature would reach
//! every reqwest client in the workspace (features unify), and each would then need a
//! process-wide crypto provider installed before it is built.

use crate::NodeError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// The system's CA bundle (Debian's path), which https webhooks are checked against.
pub const WEBHOOK_CA_BUNDLE_DEFAULT_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Most of an answer's body read (and dropped): the status is what counts.
pub const WEBHOOK_ANSWER_MAX_BYTES: usize = 64 * 1024;

/// Sends webhook requests; holds the TLS settings (when the CA bundle could be read).
pub struct WebhookClient {
    tls: Result<TlsConnector, Arc<NodeError>>,
}

impl WebhookClient {
    /// A client trusting the CAs of the PEM bundle at `ca_bundle` for https. A bundle that
    /// cannot be read fails every https request with that error; http still works.
    pub fn new(ca_bundle: &Path) -> WebhookClient {
        WebhookClient { tls: tls_connector(ca_bundle).map_err(Arc::new) }
    }

    /// POSTs `body` (JSON) to `url` with `headers`; answers the status, within `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<u16, NodeError> {
        let target = Target::parse(url)?;
        let authority = target.authority.clone();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        tokio::time::timeout(timeout, self.exchange(target, headers, body))
            .await
            .map_err(|_| NodeError::WebhookTimeout { authority, timeout_ms })?
    }

    async fn exchange(
        &self,
        target: Target,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<u16, NodeError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&target.path)
            .header(HOST, &target.authority)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("lineup/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| NodeError::WebhookUrl { url: target.url.clone(), reason: "not a valid request target" })?;
        let connect =
            |source| NodeError::WebhookConnect { step: "connect", authority: target.authority.clone(), source };
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(connect)?;
        if !target.https {
            return send_over(tcp, request, &target.authority).await;
        }
        let connector = self.tls.as_ref().map_err(|e| NodeError::WebhookConnect {
            step: "TLS setup",
            authority: target.authority.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| NodeError::WebhookUrl { url: target.url.clone(), reason: "the host is not a valid name" })?;
        let stream = connector.connect(name, tcp).await.map_err(|source| NodeError::WebhookConnect {
            step: "TLS handshake",
            authority: target.authority.clone(),
            source,
        })?;
        send_over(stream, request, &target.authority).await
    }
}

/// Where a URL points.
struct Target {
    url: String,
    https: bool,
    host: String,
    port: u16,
    /// `host:port` as the `Host` header names it.
    authority: String,
    /// Path and query.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, NodeError> {
        let bad = |reason| NodeError::WebhookUrl { url: url.to_string(), reason };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme is not http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.to_string();
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(Target { url: url.to_string(), https, host, port, authority, path })
    }
}

fn tls_connector(ca_bundle: &Path) -> Result<TlsConnector, NodeError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| NodeError::WebhookCaBundle {
        path: PathBuf::from(ca_bundle),
        source,
    };
    let pem = std::fs::read(ca_bundle).map_err(|e| failed(Box::new(e)))?;
    let config = lineup_api::tls::client_config(&pem).map_err(|e| failed(Box::new(e)))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One request over `stream`; the answer's body is read and dropped, its status returned.
async fn send_over<S>(stream: S, request: Request<Full<Bytes>>, authority: &str) -> Result<u16, NodeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| NodeError::WebhookHttp { authority: authority.to_string(), source };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    let driver = tokio::spawn(connection);
    let answered = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        // Read (bounded) so the receiver sees its answer taken; its content is not used.
        let _ = Limited::new(response.into_body(), WEBHOOK_ANSWER_MAX_BYTES).collect().await;
        Ok(status)
    }
    .await;
    driver.abort();
    answered
}
