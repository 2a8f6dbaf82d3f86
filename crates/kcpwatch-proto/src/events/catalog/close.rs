//! `kcp:connection_closed`: the terminal record of a connection, with its summary.

use std::fmt;

use super::super::record::{EventRecord, ExampleNet, Flow, RecordFields};
use super::super::spec::{
    opt, req, Control, EcsSpec, EventSpec, Group, GroupUse, OcsfSpec, OutcomeRule, Presence,
    SeverityRule, Traffic, Vocab, WireType::*,
};
use super::super::{AppClose, ConnectionRef, ConnectionSummary, History, Lane};
use super::{kcp_params, NETWORK};
use crate::config::SessionConfig;
use crate::lifecycle::{CloseReason, Initiator};
use crate::privacy::IpPrivacy;
use crate::secure::datagram::DatagramCounters;

// -------------------------------------------------------------------- kcp:connection_closed

/// `kcp:connection_closed`: terminal, with the whole-connection summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionClosed {
    /// The connection.
    pub conn: ConnectionRef,
    /// Why it ended.
    pub reason: CloseReason,
    /// Who ended it.
    pub initiator: Initiator,
    /// Secure mode, a peer's close: the reason its DISCONNECT gave (`local_closed` for a kick
    /// or an application close, `shutdown`, `protocol_violation`, ...).
    pub peer_reason: Option<CloseReason>,
    /// The application's close code and text: ours when we closed, the peer's when its
    /// DISCONNECT carried them.
    pub app_close: AppClose,
    /// Counters, timings, RTT figures and the activity history.
    pub summary: ConnectionSummary,
    /// The session's parameters.
    pub params: SessionConfig,
}

pub(in crate::events) static CONNECTION_CLOSED: EventSpec = EventSpec {
    name: "kcp:connection_closed",
    summary: "Terminal, with the whole-connection summary.",
    lane: Lane::Critical,
    severity: SeverityRule::ByCloseReason,
    cef_title: "Connection closed",
    ecs: EcsSpec {
        kind: "event",
        category: NETWORK,
        types: &["connection", "end"],
        types_unrefused: None,
        reason_field: None,
    },
    ocsf: OcsfSpec::NetworkActivity {
        activity: (2, "Close"),
        activity_unrefused: None,
        traffic: Traffic::ByDirection,
    },
    outcome: OutcomeRule::ByCloseReason,
    control: Control::None,
    groups: &[
        GroupUse {
            group: Group::Connection,
            presence: Presence::Required,
        },
        GroupUse {
            group: Group::KcpParams,
            presence: Presence::Required,
        },
    ],
    fields: &[
        req("reason", Vocab(Vocab::CloseReason), "Why it ended."),
        req("initiator", Vocab(Vocab::Initiator), "Who ended it."),
        req("duration_ms", Count, "Milliseconds from establishment to close."),
        req(
            "bytes_received",
            Count,
            "Bytes of datagrams received and accepted by the guard (wire).",
        ),
        req("bytes_sent", Count, "Bytes of datagrams produced (wire)."),
        req(
            "datagrams_received",
            Count,
            "Datagrams received and accepted by the guard.",
        ),
        req("datagrams_sent", Count, "Datagrams produced."),
        req(
            "payload_bytes_received",
            Count,
            "Application payload bytes delivered to the application.",
        ),
        req(
            "payload_bytes_sent",
            Count,
            "Application payload bytes accepted from the application.",
        ),
        req(
            "messages_received",
            Count,
            "Messages (or stream chunks) delivered.",
        ),
        req("messages_sent", Count, "Messages accepted by send()."),
        req(
            "unreliable_received",
            Count,
            "Secure mode: unreliable datagrams (sendDatagram() on the peer) handed to the application; 0 in raw mode. Not messages, and not the UDP datagrams of datagrams_received.",
        ),
        req(
            "unreliable_sent",
            Count,
            "Secure mode: unreliable datagrams sealed and sent by sendDatagram(); 0 in raw mode.",
        ),
        req(
            "unreliable_dropped",
            Count,
            "Secure mode: authentic unreliable datagrams not delivered: older than one already delivered on their sequenced channel, or the receive queue was full.",
        ),
        req(
            "segments_received",
            Count,
            "KCP segments of any kind accepted by the engine.",
        ),
        req("segments_sent", Count, "KCP segments of any kind sent."),
        req("segments_retransmitted", Count, "Timeout retransmissions."),
        req(
            "segments_fast_retransmitted",
            Count,
            "Fast (duplicate-ACK) retransmissions.",
        ),
        req(
            "segments_lost",
            Count,
            "Segments counted lost (kcp-go LostSegs).",
        ),
        req(
            "segments_duplicate_received",
            Count,
            "Duplicate data segments received (kcp-go RepeatSegs).",
        ),
        req("acks_sent", Count, "ACK segments sent."),
        req("acks_received", Count, "ACK segments received."),
        req("window_probes_sent", Count, "Window probes sent."),
        req("window_probes_received", Count, "Window probes received."),
        req(
            "guard_drops",
            Count,
            "Datagrams for this connection refused by the segment guard.",
        ),
        req("srtt_ms", U32, "Smoothed RTT."),
        req("rttvar_ms", U32, "RTT variance."),
        req("rto_ms", U32, "Retransmission timeout at close."),
        req("rtt_min_ms", U32, "Smallest RTT sample (0: none)."),
        req("rtt_max_ms", U32, "Largest RTT sample (0: none)."),
        req("history", History, "Zeek-style activity history."),
        opt(
            "peer_reason",
            Vocab(Vocab::CloseReason),
            "Secure mode, reason peer_closed: the reason the peer's DISCONNECT gave: local_closed (its application closed the connection: a kick or a leave), shutdown (its server or client closed), protocol_violation, idle_timeout, ...",
        ),
        opt(
            "close_code",
            Custom {
                schema: r#"{"type":"integer","minimum":1,"maximum":65535}"#,
                ts: "number",
            },
            "The application's close code: this side's (connection.close(code)) or, with reason peer_closed, the one the peer's DISCONNECT carried. Absent when none was given. Raw KCP cannot carry it to the peer.",
        ),
        opt(
            "close_text",
            Custom {
                schema: r#"{"type":"string","maxLength":123}"#,
                ts: "string",
            },
            "The application's close text that came with close_code (at most 123 bytes of UTF-8). Written by the application, so treat it as untrusted text.",
        ),
    ],
    shapes: &[],
};

impl EventRecord for ConnectionClosed {
    fn connection(&self) -> Option<&crate::events::ConnectionRef> {
        Some(&self.conn)
    }

    fn fields<F: RecordFields>(&self, out: &mut F) {
        out.connection(&self.conn);
        out.str("reason", self.reason.as_str());
        out.str("initiator", self.initiator.as_str());
        if let Some(peer_reason) = self.peer_reason {
            out.str("peer_reason", peer_reason.as_str());
        }
        if self.app_close.code != 0 {
            out.num("close_code", self.app_close.code);
        }
        if !self.app_close.text.as_str().is_empty() {
            out.str("close_text", self.app_close.text.as_str());
        }
        let s = &self.summary;
        out.num("duration_ms", s.duration_ms);
        out.num("bytes_received", s.bytes_in);
        out.num("bytes_sent", s.bytes_out);
        out.num("datagrams_received", s.datagrams_in);
        out.num("datagrams_sent", s.datagrams_out);
        out.num("payload_bytes_received", s.payload_bytes_in);
        out.num("payload_bytes_sent", s.payload_bytes_out);
        out.num("messages_received", s.messages_in);
        out.num("messages_sent", s.messages_out);
        // Secure mode's unreliable datagrams (`sendDatagram`), apart from the messages and
        // from the UDP datagrams above (0 in raw mode, which has none).
        out.num("unreliable_received", s.unreliable.received);
        out.num("unreliable_sent", s.unreliable.sent);
        out.num("unreliable_dropped", s.unreliable.dropped);
        out.num("segments_received", s.engine.in_segs);
        out.num("segments_sent", s.engine.out_segs);
        out.num("segments_retransmitted", s.engine.retrans_segs);
        out.num("segments_fast_retransmitted", s.engine.fast_retrans_segs);
        out.num("segments_lost", s.engine.lost_segs);
        out.num("segments_duplicate_received", s.engine.repeat_segs);
        out.num("acks_sent", s.engine.acks_sent);
        out.num("acks_received", s.engine.acks_received);
        out.num("window_probes_sent", s.engine.window_probes_sent);
        out.num("window_probes_received", s.engine.window_probes_received);
        out.num("guard_drops", s.guard_drops);
        out.num("srtt_ms", s.srtt_ms);
        out.num("rttvar_ms", s.rttvar_ms);
        out.num("rto_ms", s.rto_ms);
        out.num("rtt_min_ms", s.engine.rtt_min);
        out.num("rtt_max_ms", s.engine.rtt_max);
        out.str("history", s.history.as_str());
        kcp_params(out, &self.params);
    }

    fn message(&self, privacy: &IpPrivacy, msg: &mut dyn fmt::Write) -> fmt::Result {
        let s = &self.summary;
        write!(
            msg,
            "connection closed {}: {} by {} after {} ms, {} bytes in, {} bytes out",
            Flow(privacy, &self.conn),
            self.reason.as_str(),
            self.initiator.as_str(),
            s.duration_ms,
            s.bytes_in,
            s.bytes_out
        )
    }

    fn examples(net: &ExampleNet) -> Vec<Self> {
        let conn = net.inbound();
        let mut history = History::default();
        for (letter, originator) in [(b'd', true), (b'a', false), (b'd', false), (b'a', true)] {
            history.note(letter, originator);
        }
        let summary = ConnectionSummary {
            duration_ms: 61_250,
            datagrams_in: 812,
            bytes_in: 98_304,
            datagrams_out: 790,
            bytes_out: 120_112,
            payload_bytes_in: 80_000,
            payload_bytes_out: 100_000,
            messages_in: 700,
            messages_out: 690,
            unreliable: DatagramCounters {
                sent: 95,
                received: 101,
                dropped: 3,
            },
            srtt_ms: 23,
            rttvar_ms: 4,
            rto_ms: 60,
            history,
            ..ConnectionSummary::empty(conn)
        };
        vec![
            // The peer closed, with its reason and the application's close code and text.
            Self {
                conn,
                reason: CloseReason::PeerClosed,
                initiator: Initiator::Remote,
                peer_reason: Some(CloseReason::LocalClosed),
                app_close: AppClose::new(4001, "kicked"),
                summary,
                params: SessionConfig::default(),
            },
            // An idle timeout: no peer reason, no close code.
            Self {
                conn,
                reason: CloseReason::IdleTimeout,
                initiator: Initiator::Local,
                peer_reason: None,
                app_close: AppClose::NONE,
                summary,
                params: SessionConfig::default(),
            },
        ]
    }
}
