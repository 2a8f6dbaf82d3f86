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

/// One output of the records, checked and resolved by `resolveLogOptions` (src/log.ts): every
/// name arrives as an enum and every address in parts, so nothing here parses a string.
#[napi(object)]
pub struct OutputOptions {
    /// Where the records go.
    pub destination: DestinationOptions,
    /// The format records are written in.
    pub format: FormatOption,
    /// The least severe records this output takes.
    pub level: SeverityOption,
}

/// Where one output writes, for example `{ type: 'syslog', transport: { kind: 'tls', caFile },
/// address: '127.0.0.1', port: 6514, queueRecords: 10000 }`.
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum DestinationOptions {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// Nowhere (records still reach JavaScript listeners).
    None,
    /// A file, appended to and rotated.
    File {
        path: String,
        // Rotate the file past this many bytes (0: never by size).
        max_bytes: f64,
        // Rotate the file when it is older than this many milliseconds (0: never by age).
        max_age_ms: f64,
        // Rotated files kept.
        keep: u32,
    },
    /// A syslog receiver.
    Syslog {
        // The transport, with what TLS needs.
        transport: SyslogTransportOptions,
        // An IP address literal (checked by `isIP`; names are refused in JavaScript).
        address: String,
        port: u32,
        // The on-disk spool for when the receiver is down.
        spool: Option<SpoolOptions>,
        // Records held in memory for the receiver.
        queue_records: u32,
    },
    /// An HTTP collector that takes batches.
    Http {
        // `http(s)://HOST:PORT/path`, checked by `new URL` (the output's thread resolves the
        // host and the HTTP client takes the URL as it is).
        url: String,
        // The kind of collector.
        collector: HttpCollectorOptions,
        // For `https`: the CA file (PEM) the collector's certificate must chain to.
        ca_file: Option<String>,
        // For `https`: a client certificate chain and key (mutual TLS).
        client_cert: Option<ClientCertOptions>,
        // Compress request bodies.
        gzip: bool,
        batch_records: u32,
        batch_delay_ms: u32,
        spool: Option<SpoolOptions>,
        queue_records: u32,
    },
}

/// A syslog transport: RFC 5426, RFC 6587 (octet counting) or RFC 5425, as
/// `{ kind: 'tls', caFile, serverName?, clientCert? }`.
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum SyslogTransportOptions {
    /// One record per datagram.
    Udp,
    /// Octet-counted records over TCP.
    Tcp,
    /// Octet-counted records over TLS.
    Tls {
        // The CA file (PEM) the receiver's certificate must chain to.
        ca_file: String,
        // The name the receiver's certificate must carry (default: the address).
        server_name: Option<String>,
        // A client certificate chain and key, when the receiver asks for one.
        client_cert: Option<ClientCertOptions>,
    },
}

/// The kind of an HTTP collector, with what that kind needs.
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum HttpCollectorOptions {
    /// Splunk HTTP Event Collector.
    Hec { token: String },
    /// Elasticsearch `_bulk`, into an index or data stream.
    Elastic { index: String },
    /// OTLP/HTTP logs.
    Otlp,
}

/// A client certificate chain and its key (PEM files).
#[napi(object)]
pub struct ClientCertOptions {
    pub cert_file: String,
    pub key_file: String,
}

/// An on-disk spool for when a receiver is down.
#[napi(object)]
pub struct SpoolOptions {
    pub dir: String,
    /// Beyond this many bytes the newest records are dropped and counted.
    pub max_bytes: f64,
}

/// An output format, as `logFormats` (src/log.ts) names it.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum FormatOption {
    Json,
    Ecs,
    Ocsf,
    Cef,
    Rfc5424,
    Gelf,
    Hec,
    Otlp,
}

impl From<FormatOption> for Format {
    fn from(format: FormatOption) -> Self {
        match format {
            FormatOption::Json => Format::Json,
            FormatOption::Ecs => Format::Ecs,
            FormatOption::Ocsf => Format::Ocsf,
            FormatOption::Cef => Format::Cef,
            FormatOption::Rfc5424 => Format::Rfc5424,
            FormatOption::Gelf => Format::Gelf,
            FormatOption::Hec => Format::SplunkHec,
            FormatOption::Otlp => Format::OtlpJson,
        }
    }
}

/// A syslog severity, as `severities` (src/log.ts) names it.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy)]
pub enum SeverityOption {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl From<SeverityOption> for Severity {
    fn from(severity: SeverityOption) -> Self {
        match severity {
            SeverityOption::Emergency => Severity::Emergency,
            SeverityOption::Alert => Severity::Alert,
            SeverityOption::Critical => Severity::Critical,
            SeverityOption::Error => Severity::Error,
            SeverityOption::Warning => Severity::Warning,
            SeverityOption::Notice => Severity::Notice,
            SeverityOption::Info => Severity::Informational,
            SeverityOption::Debug => Severity::Debug,
        }
    }
}

/// How IP addresses appear in the records (docs/privacy.md), checked by `resolvePrivacy`
/// (src/log.ts).
#[napi(discriminant = "mode", discriminant_case = "lowercase")]
pub enum IpPrivacyOptions {
    /// Addresses as they are.
    Full,
    /// No addresses.
    Omit,
    /// Addresses cut to a prefix.
    Truncate { v4_prefix: u32, v6_prefix: u32 },
    /// Keyed HMAC-SHA256 pseudonyms.
    Hmac { key_id: String, key: Buffer },
    /// Prefix-preserving Crypto-PAn pseudonyms.
    Cryptopan { key: Buffer },
}

/// Security event logging, resolved by the TypeScript log options.
#[napi(object)]
pub struct LogOptions {
    /// Lowest severity produced.
    pub level: SeverityOption,
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
    pub ip_privacy: IpPrivacyOptions,
    pub community_id_over_transformed: bool,
}

fn ip_privacy(o: &IpPrivacyOptions) -> crate::errors::Result<IpPrivacy> {
    let prefix = |v: u32, name: &str| {
        u8::try_from(v).map_err(|_| invalid(format!("ipPrivacy.{name} {v} is out of range")))
    };
    match o {
        IpPrivacyOptions::Full => Ok(IpPrivacy::Full),
        IpPrivacyOptions::Omit => Ok(IpPrivacy::Omit),
        IpPrivacyOptions::Truncate {
            v4_prefix,
            v6_prefix,
        } => IpPrivacy::truncate(
            prefix(*v4_prefix, "v4Prefix")?,
            prefix(*v6_prefix, "v6Prefix")?,
        )
        .map_err(invalid),
        IpPrivacyOptions::Hmac { key_id, key } => IpPrivacy::hmac(key_id, key).map_err(invalid),
        IpPrivacyOptions::Cryptopan { key } => IpPrivacy::cryptopan(key).map_err(invalid),
    }
}

fn output(o: &OutputOptions) -> crate::errors::Result<LogOutput> {
    let destination = match &o.destination {
        DestinationOptions::Stdout => LogDestination::Stdout,
        DestinationOptions::Stderr => LogDestination::Stderr,
        DestinationOptions::None => LogDestination::None,
        DestinationOptions::File {
            path,
            max_bytes,
            max_age_ms,
            keep,
        } => LogDestination::File {
            path: path.into(),
            rotation: Rotation {
                max_bytes: max_bytes.max(0.0) as u64,
                max_age: (*max_age_ms > 0.0).then(|| Duration::from_millis(*max_age_ms as u64)),
                keep: *keep,
            },
        },
        DestinationOptions::Syslog {
            transport,
            address,
            port: p,
            spool: spool_options,
            queue_records,
        } => {
            let addr = SocketAddr::new(ip(address)?, port(*p)?);
            let target = match transport {
                SyslogTransportOptions::Udp => SyslogTarget::Udp(addr),
                SyslogTransportOptions::Tcp => SyslogTarget::Tcp(addr),
                SyslogTransportOptions::Tls {
                    ca_file,
                    server_name,
                    client_cert: cert,
                } => SyslogTarget::Tls {
                    addr,
                    server_name: server_name.clone().unwrap_or_else(|| addr.ip().to_string()),
                    ca_file: ca_file.into(),
                    client_cert: client_cert(cert),
                },
            };
            let mut config = SyslogSinkConfig::new(target);
            config.spool = spool(spool_options);
            config.queue_records = (*queue_records).max(1) as usize;
            LogDestination::Syslog(config)
        }
        DestinationOptions::Http {
            url,
            collector,
            ca_file,
            client_cert: cert,
            gzip,
            batch_records,
            batch_delay_ms,
            spool: spool_options,
            queue_records,
        } => {
            let kind = match collector {
                HttpCollectorOptions::Hec { token } => HttpKind::SplunkHec {
                    token: token.clone(),
                },
                HttpCollectorOptions::Elastic { index } => HttpKind::ElasticBulk {
                    index: index.clone(),
                },
                HttpCollectorOptions::Otlp => HttpKind::OtlpHttp,
            };
            let mut config = HttpSinkConfig::new(kind, url.clone());
            config.ca_file = ca_file.as_ref().map(Into::into);
            config.client_cert = client_cert(cert);
            config.gzip = *gzip;
            config.batch_records = (*batch_records).max(1) as usize;
            config.batch_delay = Duration::from_millis(u64::from((*batch_delay_ms).max(1)));
            config.queue_records = (*queue_records).max(1) as usize;
            config.spool = spool(spool_options);
            LogDestination::Http(config)
        }
    };
    Ok(LogOutput {
        destination,
        format: o.format.into(),
        level: o.level.into(),
    })
}

fn client_cert(o: &Option<ClientCertOptions>) -> Option<(PathBuf, PathBuf)> {
    o.as_ref()
        .map(|c| (c.cert_file.as_str().into(), c.key_file.as_str().into()))
}

fn spool(o: &Option<SpoolOptions>) -> Option<SpoolConfig> {
    o.as_ref().map(|s| SpoolConfig {
        dir: s.dir.as_str().into(),
        max_bytes: s.max_bytes.max(0.0) as u64,
    })
}

pub(crate) fn log_config(o: &LogOptions) -> crate::errors::Result<LogConfig> {
    Ok(LogConfig {
        level: o.level.into(),
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
        privacy: ip_privacy(&o.ip_privacy)?,
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
