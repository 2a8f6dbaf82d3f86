//! Options as JavaScript passes them (already resolved from presets and defaults by
//! `src/options.ts`), converted into the runtime's configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use std::time::Duration;

use kcpwatch::events::formats::Format;
use kcpwatch::events::sinks::{
    HttpKind, HttpSinkConfig, SpoolConfig, SyslogSinkConfig, SyslogTarget,
};
use kcpwatch::events::{LogConfig, LogDestination, LogOutput, Observer, Rotation};
use kcpwatch::socket::SocketOptions;
use kcpwatch::RuntimeConfig;
use kcpwatch_proto::fec::FecConfig;
use kcpwatch_proto::limits::Limits;
use kcpwatch_proto::privacy::IpPrivacy;
use kcpwatch_proto::secure::StaticKey;
use kcpwatch_proto::{EndpointConfig, Mode, SessionConfig, Severity};
use napi::bindgen_prelude::Buffer;

use crate::errors::invalid;

/// Every KCP knob of a session.
#[napi(object)]
pub struct SessionOptions {
    pub nodelay: bool,
    pub interval: u32,
    pub resend: u32,
    pub nc: bool,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub mtu: u32,
    pub min_rto: Option<u32>,
    pub stream: bool,
    pub dead_link: u32,
    pub idle_timeout: u32,
    pub max_message_size: u32,
    pub max_send_queue_bytes: u32,
    pub linger: u32,
}

/// One endpoint's socket and limits.
#[napi(object)]
pub struct EndpointOptions {
    /// An IP address literal (names are resolved in JavaScript).
    pub host: String,
    pub port: u32,
    pub ipv6_only: bool,
    pub reuse_port: bool,
    pub max_connections: u32,
    pub delivery_limit: u32,
    pub session: SessionOptions,
    /// Security event logging; absent for none.
    pub log: Option<LogOptions>,
    /// `raw` or `secure`, checked by `resolveMode` (src/options.ts): napi converts the string.
    pub mode: ModeOption,
    /// Secure mode, server: handshakes wait for `resolveAuth`.
    pub require_auth: bool,
    /// Secure mode, server: milliseconds the application has to answer an authentication.
    pub auth_timeout: u32,
    /// Secure mode, client: milliseconds before an unanswered handshake fails.
    pub handshake_timeout: u32,
    /// Secure mode, server: static X25519 private keys (32 bytes each; several during a
    /// rotation). Absent or empty: one is generated for the endpoint's life.
    pub server_keys: Option<Vec<Buffer>>,
    /// Secure mode, client: the server's static public key (32 bytes), pinned.
    pub server_key: Option<Buffer>,
    /// Secure mode: milliseconds of silence after which a keepalive goes out (0: a quarter of
    /// the idle timeout).
    pub keepalive: u32,
    /// Admission limits.
    pub limits: LimitOptions,
    /// Detectors; absent for the defaults.
    pub detection: Option<crate::detection::DetectionOptions>,
    /// Raw mode: kcp-go's Reed-Solomon FEC; absent for none.
    pub fec: Option<FecOptions>,
}

/// What an endpoint puts in front of KCP, as JavaScript names it (`'raw'` or `'secure'`).
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum ModeOption {
    /// Plain KCP.
    Raw,
    /// The secure handshake and session layer.
    Secure,
}

impl From<ModeOption> for Mode {
    fn from(mode: ModeOption) -> Self {
        match mode {
            ModeOption::Raw => Mode::Raw,
            ModeOption::Secure => Mode::Secure,
        }
    }
}

/// kcp-go's FEC shard counts (`DialWithOptions(addr, nil, dataShards, parityShards)`).
#[napi(object)]
pub struct FecOptions {
    pub data_shards: u32,
    pub parity_shards: u32,
}

/// Admission limits, resolved with their defaults by the TypeScript options module.
#[napi(object)]
pub struct LimitOptions {
    pub max_connections_per_ip: u32,
    pub max_connections_per_prefix: u32,
    pub handshakes_per_second_per_ip: u32,
    pub handshake_burst_per_ip: u32,
    pub handshakes_per_second: u32,
    pub handshake_burst: u32,
    pub max_pending_auth: u32,
}

/// One output of the records, resolved by the TypeScript log options.
#[napi(object)]
pub struct OutputOptions {
    /// `stdout`, `stderr`, `file` or `none`.
    pub destination: String,
    /// The path for `file`.
    pub file: Option<String>,
    /// Rotate the file past this many bytes (0: never by size).
    pub max_bytes: Option<f64>,
    /// Rotate the file when it is older than this many milliseconds (0: never by age).
    pub max_age_ms: Option<f64>,
    /// Rotated files kept.
    pub keep: Option<u32>,
    /// For `syslog`: `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT` (HOST an IP
    /// address; names are resolved in JavaScript).
    pub url: Option<String>,
    /// For `tls://`: the CA file (PEM) the receiver's certificate must chain to.
    pub ca_file: Option<String>,
    /// For `tls://`: the name the receiver's certificate must carry (default: the host).
    pub server_name: Option<String>,
    /// For `tls://` and `https://`: a client certificate chain and key (PEM), when the receiver
    /// asks for one.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// For `tcp://` and `tls://`: the on-disk spool for when the receiver is down.
    pub spool_dir: Option<String>,
    pub spool_max_bytes: Option<f64>,
    /// Records held in memory for the receiver.
    pub queue_records: Option<u32>,
    /// For `http`: `hec`, `elastic` or `otlp`.
    pub http_kind: Option<String>,
    /// For `http` kind `hec`: the token.
    pub token: Option<String>,
    /// For `http` kind `elastic`: the index or data stream.
    pub index: Option<String>,
    /// For `http`: compress request bodies.
    pub gzip: Option<bool>,
    pub batch_records: Option<u32>,
    pub batch_delay_ms: Option<u32>,
    /// `json`, `ecs`, `ocsf`, `cef`, `rfc5424`, `gelf`, `hec` or `otlp`.
    pub format: String,
    /// The least severe records this output takes: a syslog name.
    pub level: String,
}

/// Security event logging, resolved by the TypeScript log options.
#[napi(object)]
pub struct LogOptions {
    /// Lowest severity produced: a syslog name (`info`, `notice`, ...).
    pub level: String,
    /// Where the records go, each output in its format.
    pub outputs: Vec<OutputOptions>,
    pub ring_capacity: u32,
    pub outbox_limit: u32,
    /// Milliseconds between `kcp:stats` records; 0 for none.
    pub stats_interval: u32,
    pub sample_burst: u32,
    pub sample_window: u32,
    pub observer_host: String,
    pub observer_service: String,
    pub observer_instance: Option<String>,
    pub observer_version: String,
    pub community_id_seed: u32,
    /// Hand records to JavaScript from the start.
    pub deliver_to_js: Option<bool>,
    /// `full`, `truncate`, `hmac`, `cryptopan` or `omit`.
    pub ip_privacy: String,
    pub ip_v4_prefix: u32,
    pub ip_v6_prefix: u32,
    pub ip_key_id: Option<String>,
    pub ip_key: Option<Buffer>,
    pub community_id_over_transformed: bool,
}

fn ip_privacy(o: &LogOptions) -> crate::errors::Result<IpPrivacy> {
    let prefix = |v: u32, name: &str| {
        u8::try_from(v).map_err(|_| invalid(format!("ipPrivacy.{name} {v} is out of range")))
    };
    let key = || {
        o.ip_key
            .as_ref()
            .map(|k| k.to_vec())
            .ok_or_else(|| invalid(format!("ipPrivacy mode {} needs a key", o.ip_privacy)))
    };
    match o.ip_privacy.as_str() {
        "full" => Ok(IpPrivacy::Full),
        "omit" => Ok(IpPrivacy::Omit),
        "truncate" => IpPrivacy::truncate(
            prefix(o.ip_v4_prefix, "v4Prefix")?,
            prefix(o.ip_v6_prefix, "v6Prefix")?,
        )
        .map_err(invalid),
        "hmac" => {
            let key_id = o
                .ip_key_id
                .as_deref()
                .ok_or_else(|| invalid("ipPrivacy mode hmac needs a keyId"))?;
            IpPrivacy::hmac(key_id, &key()?).map_err(invalid)
        }
        "cryptopan" => IpPrivacy::cryptopan(&key()?).map_err(invalid),
        other => Err(invalid(format!(
            "ipPrivacy mode {other:?} needs to be full, truncate, hmac, cryptopan or omit"
        ))),
    }
}

fn severity(name: &str) -> crate::errors::Result<Severity> {
    Severity::from_name(name)
        .ok_or_else(|| invalid(format!("log level {name:?} is not a syslog severity name")))
}

fn output(o: &OutputOptions) -> crate::errors::Result<LogOutput> {
    let destination = match (o.destination.as_str(), &o.file) {
        ("stdout", _) => LogDestination::Stdout,
        ("stderr", _) => LogDestination::Stderr,
        ("none", _) => LogDestination::None,
        ("file", Some(path)) => LogDestination::File {
            path: path.into(),
            rotation: Rotation {
                max_bytes: o.max_bytes.unwrap_or(0.0).max(0.0) as u64,
                max_age: o
                    .max_age_ms
                    .filter(|ms| *ms > 0.0)
                    .map(|ms| Duration::from_millis(ms as u64)),
                keep: o.keep.unwrap_or(5),
            },
        },
        ("syslog", _) => LogDestination::Syslog(syslog_sink(o)?),
        ("http", _) => LogDestination::Http(http_sink(o)?),
        (other, _) => {
            return Err(invalid(format!(
                "log destination {other:?} needs to be stdout, stderr, none, a file or syslog"
            )))
        }
    };
    let format = Format::from_name(&o.format)
        .ok_or_else(|| invalid(format!("log format {:?} is not known", o.format)))?;
    Ok(LogOutput {
        destination,
        format,
        level: severity(&o.level)?,
    })
}

fn syslog_sink(o: &OutputOptions) -> crate::errors::Result<SyslogSinkConfig> {
    let url = o.url.as_deref().unwrap_or_default();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid(format!("syslog url {url:?} needs udp://, tcp:// or tls://")))?;
    let addr: SocketAddr = rest
        .parse()
        .map_err(|_| invalid(format!("syslog url {url:?} needs an IP address and a port")))?;
    let target = match scheme {
        "udp" => SyslogTarget::Udp(addr),
        "tcp" => SyslogTarget::Tcp(addr),
        "tls" => SyslogTarget::Tls {
            addr,
            server_name: o
                .server_name
                .clone()
                .unwrap_or_else(|| addr.ip().to_string()),
            ca_file: o
                .ca_file
                .as_ref()
                .ok_or_else(|| invalid("a tls:// syslog output needs caFile"))?
                .into(),
            client_cert: client_cert(o)?,
        },
        other => {
            return Err(invalid(format!(
                "syslog scheme {other:?} needs to be udp, tcp or tls"
            )))
        }
    };
    let mut config = SyslogSinkConfig::new(target);
    config.spool = spool(o);
    if let Some(n) = o.queue_records {
        config.queue_records = n.max(1) as usize;
    }
    Ok(config)
}

fn client_cert(o: &OutputOptions) -> crate::errors::Result<Option<(PathBuf, PathBuf)>> {
    match (&o.cert_file, &o.key_file) {
        (Some(cert), Some(key)) => Ok(Some((cert.into(), key.into()))),
        (None, None) => Ok(None),
        _ => Err(invalid("certFile and keyFile go together")),
    }
}

fn spool(o: &OutputOptions) -> Option<SpoolConfig> {
    o.spool_dir.as_ref().map(|dir| SpoolConfig {
        dir: dir.into(),
        max_bytes: o.spool_max_bytes.unwrap_or(64.0 * 1024.0 * 1024.0).max(0.0) as u64,
    })
}

fn http_sink(o: &OutputOptions) -> crate::errors::Result<HttpSinkConfig> {
    let url = o
        .url
        .clone()
        .ok_or_else(|| invalid("an http output needs its url"))?;
    let kind = match o.http_kind.as_deref() {
        Some("hec") => HttpKind::SplunkHec {
            token: o
                .token
                .clone()
                .ok_or_else(|| invalid("a hec output needs its token"))?,
        },
        Some("elastic") => HttpKind::ElasticBulk {
            index: o.index.clone().unwrap_or_else(|| "kcpwatch".into()),
        },
        Some("otlp") => HttpKind::OtlpHttp,
        other => {
            return Err(invalid(format!(
                "http kind {other:?} needs to be hec, elastic or otlp"
            )))
        }
    };
    let mut config = HttpSinkConfig::new(kind, url);
    config.ca_file = o.ca_file.as_ref().map(Into::into);
    config.client_cert = client_cert(o)?;
    config.gzip = o.gzip.unwrap_or(true);
    if let Some(n) = o.batch_records {
        config.batch_records = n.max(1) as usize;
    }
    if let Some(ms) = o.batch_delay_ms {
        config.batch_delay = Duration::from_millis(u64::from(ms.max(1)));
    }
    if let Some(n) = o.queue_records {
        config.queue_records = n.max(1) as usize;
    }
    config.spool = spool(o);
    Ok(config)
}

pub(crate) fn log_config(o: &LogOptions) -> crate::errors::Result<LogConfig> {
    Ok(LogConfig {
        level: severity(&o.level)?,
        outputs: o
            .outputs
            .iter()
            .map(output)
            .collect::<crate::errors::Result<_>>()?,
        ring_capacity: (o.ring_capacity as usize).max(2),
        outbox_limit: o.outbox_limit as usize,
        stats_interval_ms: u64::from(o.stats_interval),
        observer: Observer {
            host: o.observer_host.clone(),
            service: o.observer_service.clone(),
            instance: o.observer_instance.clone().unwrap_or_default(),
            version: o.observer_version.clone(),
        },
        community_id_seed: u16::try_from(o.community_id_seed)
            .map_err(|_| invalid("communityIdSeed must fit 16 bits"))?,
        sample_burst: o.sample_burst,
        sample_window_ms: o.sample_window.max(1),
        deliver_to_js: o.deliver_to_js.unwrap_or(false),
        privacy: ip_privacy(o)?,
        community_id_over_transformed: o.community_id_over_transformed,
    })
}

fn window(value: u32, name: &str) -> crate::errors::Result<u16> {
    u16::try_from(value).map_err(|_| invalid(format!("{name} {value} is above 65535")))
}

pub(crate) fn session_config(o: &SessionOptions) -> crate::errors::Result<SessionConfig> {
    let config = SessionConfig {
        nodelay: o.nodelay,
        interval_ms: o.interval,
        fast_resend: o.resend,
        no_congestion_window: o.nc,
        send_window: window(o.snd_wnd, "sndWnd")?,
        receive_window: window(o.rcv_wnd, "rcvWnd")?,
        mtu: o.mtu as usize,
        min_rto_ms: o.min_rto,
        stream: o.stream,
        dead_link: o.dead_link,
        dead_link_ms: None,
        idle_timeout_ms: o.idle_timeout,
        max_message_size: o.max_message_size as usize,
        max_send_queue_bytes: o.max_send_queue_bytes as usize,
        linger_ms: o.linger,
    };
    config.validate().map_err(invalid)?;
    Ok(config)
}

pub(crate) fn ip(text: &str) -> crate::errors::Result<IpAddr> {
    text.parse()
        .map_err(|_| invalid(format!("{text:?} is not an IP address")))
}

pub(crate) fn port(value: u32) -> crate::errors::Result<u16> {
    u16::try_from(value).map_err(|_| invalid(format!("port {value} is above 65535")))
}

pub(crate) fn runtime_config(
    o: &EndpointOptions,
    accept_inbound: bool,
) -> crate::errors::Result<RuntimeConfig> {
    let session = session_config(&o.session)?;
    let bind = SocketAddr::new(ip(&o.host)?, port(o.port)?);
    let mode = Mode::from(o.mode);
    let l = &o.limits;
    let mut server_keys = Vec::new();
    for key in o.server_keys.iter().flatten() {
        let private: [u8; 32] = key[..]
            .try_into()
            .map_err(|_| invalid(format!("a server key is 32 bytes, got {}", key.len())))?;
        server_keys.push(StaticKey::from_private(private));
    }
    if server_keys.is_empty() && mode == Mode::Secure && accept_inbound {
        // No key configured: one for this endpoint's life (the application reads its public
        // half as `server.publicKey`; clients must pin it).
        server_keys.push(StaticKey::generate().map_err(|e| invalid(e.to_string()))?);
    }
    let server_key = match &o.server_key {
        Some(key) => Some(<[u8; 32]>::try_from(&key[..]).map_err(|_| {
            invalid(format!(
                "serverKey is a 32-byte public key, got {} bytes",
                key.len()
            ))
        })?),
        None => None,
    };
    let endpoint = EndpointConfig {
        session,
        accept_inbound,
        max_connections: o.max_connections as usize,
        mode,
        require_auth: o.require_auth,
        server_keys,
        server_key,
        auth_timeout_ms: o.auth_timeout.max(1),
        handshake_timeout_ms: o.handshake_timeout.max(1),
        keepalive_ms: (o.keepalive > 0).then_some(o.keepalive),
        max_pending_auth: l.max_pending_auth as usize,
        limits: Limits {
            max_per_ip: l.max_connections_per_ip as usize,
            max_per_prefix: l.max_connections_per_prefix as usize,
            handshakes_per_ip: l.handshakes_per_second_per_ip,
            handshake_burst_per_ip: l.handshake_burst_per_ip,
            handshakes_global: l.handshakes_per_second,
            handshake_burst_global: l.handshake_burst,
        },
        detectors: match &o.detection {
            Some(d) => crate::detection::detector_config(d)?,
            None => Default::default(),
        },
        fec: o.fec.as_ref().map(|f| {
            let shards = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
            FecConfig {
                data_shards: shards(f.data_shards),
                parity_shards: shards(f.parity_shards),
            }
        }),
        ..EndpointConfig::default()
    };
    let mut config = RuntimeConfig::new(bind, endpoint);
    config.socket = SocketOptions {
        reuse_port: o.reuse_port,
        ipv6_only: o.ipv6_only,
    };
    config.delivery_limit = o.delivery_limit as usize;
    config.log = o.log.as_ref().map(log_config).transpose()?;
    Ok(config)
}

/// A server static key pair as `kcpwatch keygen` and `createServer` use it.
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct KeyPairInfo {
    /// The X25519 private key (32 bytes): keep it secret.
    pub private_key: Buffer,
    /// The public key (32 bytes) clients pin.
    pub public_key: Buffer,
    /// The key id HELLOs name it by (8 hex digits).
    pub key_id: String,
}

#[cfg_attr(test, allow(dead_code))]
fn key_pair_info(key: &StaticKey) -> KeyPairInfo {
    KeyPairInfo {
        private_key: key.private().to_vec().into(),
        public_key: key.public().to_vec().into(),
        key_id: key.id().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A fresh server static key pair from the operating system's random source.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn generate_key_pair() -> crate::errors::Result<KeyPairInfo> {
    Ok(key_pair_info(
        &StaticKey::generate().map_err(|e| invalid(e.to_string()))?,
    ))
}

/// The key pair of a 32-byte private key.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn key_pair_from_private(private_key: Buffer) -> crate::errors::Result<KeyPairInfo> {
    let private: [u8; 32] = private_key[..].try_into().map_err(|_| {
        invalid(format!(
            "a server private key is 32 bytes, got {}",
            private_key.len()
        ))
    })?;
    Ok(key_pair_info(&StaticKey::from_private(private)))
}

/// The public keys of a runtime configuration's server keys (what `server.publicKeys` shows).
pub(crate) fn public_keys(config: &RuntimeConfig) -> Vec<[u8; 32]> {
    config
        .endpoint
        .server_keys
        .iter()
        .map(|k| *k.public())
        .collect()
}
