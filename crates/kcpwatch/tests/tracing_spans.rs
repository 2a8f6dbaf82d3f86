//! With a `tracing` subscriber installed, every connection gets a `kcp_connection` span named
//! by its uid, and its close is recorded inside it. (Its own test binary: the subscriber is
//! process-global because the I/O thread is not the test's thread.)

use std::net::UdpSocket;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kcpwatch::{Runtime, RuntimeConfig};
use kcpwatch_proto::{Endpoint, EndpointConfig, SessionConfig};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<(String, String)>>>);

struct Fields(Vec<(String, String)>);
impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        for (name, value) in fields.0 {
            if name == "uid" {
                self.0
                    .lock()
                    .unwrap()
                    .push((attrs.metadata().name().to_string(), value));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let message = fields
            .0
            .iter()
            .find(|(n, _)| n == "message")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if let Some(span) = ctx.event_span(event) {
            self.0
                .lock()
                .unwrap()
                .push((format!("{} event", span.name()), message));
        }
    }
}

#[test]
fn each_connection_has_a_span_named_by_its_uid() {
    let seen = Seen::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(seen.clone()))
        .unwrap();

    let (tx, rx) = mpsc::channel();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig {
            session: SessionConfig {
                idle_timeout_ms: 100,
                ..SessionConfig::default()
            },
            ..EndpointConfig::default()
        },
    );
    config.thread_name = "kcpwatch-io-traced".into();
    let runtime = Runtime::start(
        config,
        Box::new(move || {
            let _ = tx.send(());
        }),
        Box::new(|| {}),
    )
    .unwrap();
    let server = runtime.local_addr();

    // A raw KCP opening from a plain socket.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = Endpoint::new(
        EndpointConfig {
            accept_inbound: false,
            ..EndpointConfig::default()
        },
        0,
    )
    .unwrap();
    let conn = client
        .connect(0, server, socket.local_addr().unwrap(), 9, None)
        .unwrap();
    client.send(0, conn, b"hello").unwrap();
    client.flush(0);
    for t in client.transmits().iter() {
        socket.send_to(t.data, server).unwrap();
    }

    // The idle timeout closes it; wait for the close record, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let closed = seen
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(k, v)| k == "kcp_connection event" && v == "closed");
        if closed || Instant::now() > deadline {
            break;
        }
        let _ = rx.recv_timeout(Duration::from_millis(50));
    }
    runtime.shutdown();
    let seen = seen.0.lock().unwrap().clone();
    let uid = seen
        .iter()
        .find(|(k, _)| k == "kcp_connection")
        .map(|(_, v)| v.clone())
        .expect("a kcp_connection span with a uid");
    assert!(uid.starts_with('K') && uid.len() == 23, "{uid}");
    let inside: Vec<&str> = seen
        .iter()
        .filter(|(k, _)| k == "kcp_connection event")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(inside, ["established", "closed"]);
}
