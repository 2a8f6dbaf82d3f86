//! Options as JavaScript passes them (already resolved from presets and defaults by
//! `src/options.ts`), converted into the runtime's configuration.

use std::net::{IpAddr, SocketAddr};

use kcpwatch::socket::SocketOptions;
use kcpwatch::RuntimeConfig;
use kcpwatch_proto::{EndpointConfig, SessionConfig};

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
}

fn window(value: u32, name: &str) -> napi::Result<u16> {
    u16::try_from(value).map_err(|_| invalid(format!("{name} {value} is above 65535")))
}

pub(crate) fn session_config(o: &SessionOptions) -> napi::Result<SessionConfig> {
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
        idle_timeout_ms: o.idle_timeout,
        max_message_size: o.max_message_size as usize,
        max_send_queue_bytes: o.max_send_queue_bytes as usize,
        linger_ms: o.linger,
    };
    config.validate().map_err(invalid)?;
    Ok(config)
}

pub(crate) fn ip(text: &str) -> napi::Result<IpAddr> {
    text.parse()
        .map_err(|_| invalid(format!("{text:?} is not an IP address")))
}

pub(crate) fn port(value: u32) -> napi::Result<u16> {
    u16::try_from(value).map_err(|_| invalid(format!("port {value} is above 65535")))
}

pub(crate) fn runtime_config(
    o: &EndpointOptions,
    accept_inbound: bool,
) -> napi::Result<RuntimeConfig> {
    let session = session_config(&o.session)?;
    let bind = SocketAddr::new(ip(&o.host)?, port(o.port)?);
    let endpoint = EndpointConfig {
        session,
        accept_inbound,
        max_connections: o.max_connections as usize,
        ..EndpointConfig::default()
    };
    let mut config = RuntimeConfig::new(bind, endpoint);
    config.socket = SocketOptions {
        reuse_port: o.reuse_port,
        ipv6_only: o.ipv6_only,
    };
    config.delivery_limit = o.delivery_limit as usize;
    Ok(config)
}
