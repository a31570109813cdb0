//! The webhook sender against receivers on 127.0.0.1: an alarm the routing core raises is one
//! signed POST whose signature verifies; a 500 is retried and the event delivered once; a 4xx
//! is not retried; a receiver that never answers holds up neither apply nor the queue's bound;
//! https works against the CA it is given; a follower sends nothing.

mod common;

use common::*;
use lineup_core::*;
use lineup_node::webhook::http::WebhookClient;
use lineup_node::webhook::sign::verify;
use lineup_node::webhook::{LaneCounts, RetryPolicy, WebhookSender, WEBHOOK_QUEUE_CAPACITY_EVENTS};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef-test";
fn sender(leads: bool, retry: RetryPolicy, ca_bundle: &Path) -> WebhookSender {
    let client = WebhookClient::new(ca_bundle);
    WebhookSender::new(client, retry, Arc::new(AtomicBool::new(leads)), tokio::runtime::Handle::current())
}

fn no_ca() -> PathBuf {
    PathBuf::from("/nonexistent/lineup-test-ca.pem")
}

fn webhook(url: String, events: Vec<WebhookEventKind>) -> WebhookConfig {
    WebhookConfig { id: "ops".into(), url, secret: SECRET.into(), events, enabled: true }
}

/// The routing core as a node runs it, each applied command handed to the sender as the
/// node's state hook does.
struct Node {
    routing: Routing,
    index: u64,
    serial: u64,
    now_ms: u64,
}

impl Node {
    fn new() -> Node {
        Node { routing: Routing::new(), index: 0, serial: 0, now_ms: 1_795_419_000_000 }
    }

    fn apply(&mut self, sender: &WebhookSender, body: CommandBody) {
        self.index += 1;
        self.serial += 1;
        let command = Command { id: CommandId { origin: 1, serial: self.serial }, at_ms: self.now_ms, body };
        let apply_index = ApplyIndex::new(self.index, 0).get();
        let applied = self.routing.apply(apply_index, &command);
        applied.result.unwrap_or_else(|e| panic!("{} refused: {e}", command.body.kind()));
        sender.on_applied(apply_index, self.routing.now_ms(), &applied.effects, self.routing.webhooks());
    }

    fn tick(&mut self, sender: &WebhookSender, ms: u64) {
        self.now_ms += ms;
        let now_ms = self.now_ms;
        self.apply(sender, CommandBody::Tick { now_ms });
    }

    /// A queue whose depth alarm raises at one caller, the webhooks, then a caller: the
    /// next Tick raises the alarm.
    fn raise_an_alarm(&mut self, sender: &WebhookSender, webhooks: Vec<WebhookConfig>) {
        self.tick(sender, 0);
        self.apply(sender, CommandBody::PutWebhooks(webhooks));
        let queue = QueueConfig { id: QueueId::new("sales"), alarm_depth: Some(1), ..Default::default() };
        self.apply(sender, CommandBody::PutQueue(queue));
        self.apply(
            sender,
            CommandBody::Enqueue(Enqueue {
                call: CallId::new("c1"),
                queue: QueueId::new("sales"),
                gate: None,
                priority: None,
                caller_number: "5551234".into(),
                caller_name: "Alice".into(),
                site: SiteId(1),
                channel: Some("chan-1".into()),
                skills: Default::default(),
                callback_number: None,
            }),
        );
        self.tick(sender, 1_000);
    }
}

/// Waits (bounded) until the sender's counters for "ops" satisfy `done`.
async fn counts_when(sender: &WebhookSender, done: impl Fn(LaneCounts) -> bool) -> LaneCounts {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let counts = sender.counts().into_iter().find(|(name, _)| name == "ops").map(|(_, c)| c).unwrap_or_default();
        if done(counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "counters never got there: {counts:?}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_alarm_is_one_signed_post_whose_signature_verifies() {
    let mut receiver = receiver(vec![], Answer::Status(200), None).await;
    let sender = sender(true, quick_retries(2_000), &no_ca());
    let url = format!("http://{}/hooks/lineup?from=test", receiver.addr);
    let mut node = Node::new();
    node.raise_an_alarm(&sender, vec![webhook(url, vec![WebhookEventKind::AlarmRaised])]);

    let request = next_request(&mut receiver).await;
    let header = request.headers.get("lineup-signature").expect("signed");
    let t = verify(SECRET.as_bytes(), header, &request.body).expect("the signature verifies");
    assert!(t.abs_diff(unix_now()) < 300, "signed now: {t}");
    assert_eq!(verify(b"another secret entirely", header, &request.body), None);
    let event: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        (event["kind"].as_str(), event["queue"].as_str(), event["alarm"].as_str()),
        (Some("alarm_raised"), Some("sales"), Some("depth"))
    );
    assert_eq!(request.headers.get("lineup-event-id").map(String::as_str), event["id"].as_str());
    assert_eq!(request.headers.get("content-type").map(String::as_str), Some("application/json"));

    let counts = counts_when(&sender, |c| c.sent == 1).await;
    assert_eq!(counts, LaneCounts { sent: 1, failed: 0, dropped: 0 });
    assert!(receiver.requests.try_recv().is_err(), "exactly one POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_the_event_delivered_once() {
    let mut receiver = receiver(vec![Answer::Status(500)], Answer::Status(200), None).await;
    let sender = sender(true, quick_retries(2_000), &no_ca());
    let mut node = Node::new();
    node.raise_an_alarm(
        &sender,
        vec![webhook(format!("http://{}/", receiver.addr), vec![WebhookEventKind::AlarmRaised])],
    );

    let first = next_request(&mut receiver).await;
    let second = next_request(&mut receiver).await;
    assert_eq!(first.body, second.body, "the same event");
    assert_eq!(first.headers.get("lineup-event-id"), second.headers.get("lineup-event-id"));
    assert!(verify(SECRET.as_bytes(), &second.headers["lineup-signature"], &second.body).is_some());
    let counts = counts_when(&sender, |c| c.sent == 1).await;
    assert_eq!(counts, LaneCounts { sent: 1, failed: 0, dropped: 0 });
    assert!(receiver.requests.try_recv().is_err(), "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_not_retried() {
    let mut receiver = receiver(vec![Answer::Status(410)], Answer::Status(200), None).await;
    let sender = sender(true, quick_retries(2_000), &no_ca());
    let mut node = Node::new();
    node.raise_an_alarm(
        &sender,
        vec![webhook(format!("http://{}/", receiver.addr), vec![WebhookEventKind::AlarmRaised])],
    );

    next_request(&mut receiver).await;
    let counts = counts_when(&sender, |c| c.failed == 1).await;
    assert_eq!(counts, LaneCounts { sent: 0, failed: 1, dropped: 0 });
    assert!(receiver.requests.try_recv().is_err(), "not tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_up_nothing_and_the_queue_stays_bounded() {
    let mut receiver = receiver(vec![], Answer::Never, None).await;
    // Each attempt would wait a minute: the one in flight holds its lane, nothing else.
    let sender = sender(true, quick_retries(60_000), &no_ca());
    let mut node = Node::new();
    let hook = webhook(
        format!("http://{}/", receiver.addr),
        vec![WebhookEventKind::SiteUnreachable, WebhookEventKind::SiteBack],
    );
    node.tick(&sender, 0);
    node.apply(&sender, CommandBody::PutWebhooks(vec![hook]));
    node.apply(&sender, CommandBody::SiteUnreachable { site: SiteId(2) });
    // The first event is on the wire and will never be answered.
    next_request(&mut receiver).await;

    let extra = 5;
    let started = Instant::now();
    for _ in 0..(WEBHOOK_QUEUE_CAPACITY_EVENTS + extra) / 2 + 1 {
        node.apply(&sender, CommandBody::SiteBack { site: SiteId(2) });
        node.apply(&sender, CommandBody::SiteUnreachable { site: SiteId(2) });
    }
    // Routing went on at its own pace: applying ~1,000 commands took no receiver's time.
    assert!(started.elapsed() < Duration::from_secs(5), "apply waited: {:?}", started.elapsed());
    let queued_events = 2 * ((WEBHOOK_QUEUE_CAPACITY_EVENTS + extra) / 2 + 1);
    assert_eq!(sender.queued("ops"), WEBHOOK_QUEUE_CAPACITY_EVENTS);
    let counts = counts_when(&sender, |_| true).await;
    assert_eq!(
        counts,
        LaneCounts { sent: 0, failed: 0, dropped: (queued_events - WEBHOOK_QUEUE_CAPACITY_EVENTS) as u64 }
    );
    // The node still routes: a caller joins while the receiver hangs.
    let queue = QueueConfig { id: QueueId::new("sales"), ..Default::default() };
    node.apply(&sender, CommandBody::PutQueue(queue));
    assert!(node.routing.queue_configs().any(|q| q.id == QueueId::new("sales")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_checked_against_the_ca_bundle() {
    let (ca_pem, acceptor) = test_pki();
    let ca_file = std::env::temp_dir().join(format!("lineup-webhook-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut receiver = receiver(vec![], Answer::Status(204), Some(acceptor)).await;
    let sender = sender(true, quick_retries(2_000), &ca_file);
    let mut node = Node::new();
    let url = format!("https://localhost:{}/hook", receiver.addr.port());
    node.raise_an_alarm(&sender, vec![webhook(url, vec![WebhookEventKind::AlarmRaised])]);

    let request = next_request(&mut receiver).await;
    assert!(verify(SECRET.as_bytes(), &request.headers["lineup-signature"], &request.body).is_some());
    assert_eq!(counts_when(&sender, |c| c.sent == 1).await.sent, 1);
    let _ = std::fs::remove_file(&ca_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_and_a_disabled_webhook_send_nothing() {
    let receiver = receiver(vec![], Answer::Status(200), None).await;
    let follower = sender(false, quick_retries(2_000), &no_ca());
    let mut node = Node::new();
    node.raise_an_alarm(
        &follower,
        vec![webhook(format!("http://{}/", receiver.addr), vec![WebhookEventKind::AlarmRaised])],
    );
    assert_eq!((follower.queued("ops"), follower.counts().len()), (0, 0));

    let leader = sender(true, quick_retries(2_000), &no_ca());
    let mut node = Node::new();
    let disabled = WebhookConfig {
        enabled: false,
        ..webhook(format!("http://{}/", receiver.addr), vec![WebhookEventKind::AlarmRaised])
    };
    let unsubscribed = WebhookConfig {
        id: "noc".into(),
        ..webhook(format!("http://{}/", receiver.addr), vec![WebhookEventKind::SiteLost])
    };
    node.raise_an_alarm(&leader, vec![disabled, unsubscribed]);
    assert_eq!((leader.queued("ops"), leader.queued("noc"), leader.counts().len()), (0, 0, 0));
}

/// A CA (PEM) and a TLS acceptor with a certificate it signed for localhost.
fn test_pki() -> (String, tokio_rustls::TlsAcceptor) {
    use rustls::pki_types::pem::PemObject;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "webhook test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let chain = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (ca_cert.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
