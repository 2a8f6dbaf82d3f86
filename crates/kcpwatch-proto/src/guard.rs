//! The segment guard: every datagram is parsed and validated completely before any byte of it
//! reaches the KCP engine, so a bad datagram is dropped whole and counted, never half-applied
//! (defect case F in docs/security.md). Each rule below exists because the `kcp` crate, or KCP itself, misbehaves
//! without it; `tests/guard_cases.rs` holds one regression test per case A-L.

use thiserror::Error;

use crate::clock::{diff, Millis};
use crate::drop_rule::DropRule;
use crate::lifecycle::DropTrigger;
use crate::segment::KCP_HEADER_LEN;
use crate::segment::{SegmentHeader, CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS};

/// How far behind `rcv_nxt` a retransmitted PUSH may still be acknowledged, and how far behind
/// `snd_una` a late ACK may still arrive. Anything older is not from this session's recent past.
const STALE_SEQUENCE_SPAN: u32 = 1 << 16;

/// How far ahead of `rcv_nxt` a PUSH of an established session may be. A KCP sender keeps its segments in flight within
/// `snd_una + min(snd_wnd, rmt_wnd)`, its `snd_una` is at most our `rcv_nxt`, and `rmt_wnd` is
/// either a window we advertised (a 16-bit field) or its initial guess (128 in ikcp and
/// kcp-go): so no sender that follows KCP gets 65,536 or more segments ahead.
pub const MAX_SEGMENTS_AHEAD: u32 = 1 << 16;

/// The smallest receive window the engine runs with: KCP raises a smaller configured window to
/// this (ikcp's `IKCP_WND_RCV`), and it is also the window ikcp and kcp-go assume for their peer
/// before they hear one. A peer that has heard nothing from us sends below it.
pub const ENGINE_MIN_WINDOW: u32 = 128;

/// Why a datagram was refused. The variants map onto the `packet_dropped` triggers of docs/events.md
/// through [`GuardViolation::trigger`]; [`GuardViolation::rule`] names the exact rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GuardViolation {
    /// The datagram is shorter than one 24-byte KCP header (case I).
    #[error("datagram of {0} bytes is shorter than a KCP header")]
    TooShort(usize),
    /// Bytes after the last complete segment do not form a header.
    #[error("{0} trailing bytes after the last segment")]
    TrailingBytes(usize),
    /// A segment's conv is not the session's.
    #[error("conv {found} does not match session conv {expected}")]
    BadConv {
        /// The session's conv.
        expected: u32,
        /// The conv in the segment.
        found: u32,
    },
    /// An unknown command byte.
    #[error("unknown command {0}")]
    BadCmd(u8),
    /// The payload length runs past the end of the datagram (case J).
    #[error("segment length {len} exceeds the {remaining} bytes left in the datagram")]
    LengthBeyondDatagram {
        /// Claimed length.
        len: u32,
        /// Bytes actually left.
        remaining: usize,
    },
    /// A PUSH payload larger than the MSS.
    #[error("segment length {len} exceeds the mss {mss}")]
    LengthBeyondMss {
        /// Claimed length.
        len: u32,
        /// This session's MSS.
        mss: usize,
    },
    /// ACK and window segments carry no payload.
    #[error("control segment carries {0} payload bytes")]
    ControlWithPayload(u32),
    /// A fragment count the receive window could never reassemble (cases K and L).
    #[error("fragment index {frg} is not below the limit {limit}")]
    FragmentBeyondWindow {
        /// Fragment index in the segment.
        frg: u8,
        /// Fragments a message may have.
        limit: usize,
    },
    /// A PUSH sequence number further ahead of the receive window than any KCP sender gets,
    /// or further behind it than a plausible retransmission.
    #[error("sequence number {sn} far outside the receive window starting at {rcv_nxt}")]
    SequenceOutsideWindow {
        /// The segment's sn.
        sn: u32,
        /// The next sequence number expected.
        rcv_nxt: u32,
    },
    /// An ACK for a sequence number never sent.
    #[error("ack for sn {sn} which was never sent (next is {snd_nxt})")]
    AckUnsent {
        /// The acknowledged sn.
        sn: u32,
        /// Our next sequence number.
        snd_nxt: u32,
    },
    /// An ACK so old it cannot belong to this session's recent traffic.
    #[error("ack for sn {sn} far behind the send window at {snd_una}")]
    AckStale {
        /// The acknowledged sn.
        sn: u32,
        /// Oldest unacknowledged sn.
        snd_una: u32,
    },
    /// An ACK echoing a timestamp from the future (case A).
    #[error("ack echoes ts {ts} which is ahead of now {now}")]
    AckFromFuture {
        /// Echoed ts.
        ts: u32,
        /// Our clock.
        now: u32,
    },
    /// An ACK echoing a timestamp older than the session (case B).
    #[error("ack echoes ts {ts} from before the session started at {start}")]
    AckBeforeSession {
        /// Echoed ts.
        ts: u32,
        /// Session start.
        start: u32,
    },
    /// An ACK for an in-flight segment whose echoed ts matches none of its transmissions (case C).
    #[error("ack for sn {sn} echoes ts {ts}, not a transmission time of that segment")]
    AckTimestampMismatch {
        /// The acknowledged sn.
        sn: u32,
        /// Echoed ts.
        ts: u32,
    },
    /// A cumulative ACK beyond anything sent would silently discard unacknowledged data (case D).
    #[error("una {una} is beyond the next sequence number {snd_nxt}")]
    UnaBeyondSent {
        /// The claimed una.
        una: u32,
        /// Our next sequence number.
        snd_nxt: u32,
    },
}

impl GuardViolation {
    /// The `packet_dropped` trigger this violation is reported under.
    pub fn trigger(&self) -> DropTrigger {
        match self {
            Self::TooShort(_) => DropTrigger::TooShort,
            Self::BadConv { .. } => DropTrigger::BadConv,
            Self::BadCmd(_) => DropTrigger::BadCmd,
            Self::TrailingBytes(_)
            | Self::LengthBeyondDatagram { .. }
            | Self::LengthBeyondMss { .. }
            | Self::ControlWithPayload(_) => DropTrigger::BadLength,
            _ => DropTrigger::GuardViolation,
        }
    }

    /// The stable name of the rule that refused the datagram.
    pub fn rule(&self) -> DropRule {
        match self {
            Self::TooShort(_) => DropRule::TooShort,
            Self::TrailingBytes(_) => DropRule::TrailingBytes,
            Self::BadConv { .. } => DropRule::BadConv,
            Self::BadCmd(_) => DropRule::BadCmd,
            Self::LengthBeyondDatagram { .. } => DropRule::LengthBeyondDatagram,
            Self::LengthBeyondMss { .. } => DropRule::LengthBeyondMss,
            Self::ControlWithPayload(_) => DropRule::ControlWithPayload,
            Self::FragmentBeyondWindow { .. } => DropRule::FragmentBeyondWindow,
            Self::SequenceOutsideWindow { .. } => DropRule::SequenceOutsideWindow,
            Self::AckUnsent { .. } => DropRule::AckUnsent,
            Self::AckStale { .. } => DropRule::AckStale,
            Self::AckFromFuture { .. } => DropRule::AckFromFuture,
            Self::AckBeforeSession { .. } => DropRule::AckBeforeSession,
            Self::AckTimestampMismatch { .. } => DropRule::AckTimestampMismatch,
            Self::UnaBeyondSent { .. } => DropRule::UnaBeyondSent,
        }
    }
}

/// The transmission times of one segment still waiting for its ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightTimes {
    /// Clock at the first transmission.
    pub first_ts: Millis,
    /// Clock at the latest transmission.
    pub last_ts: Millis,
}

/// What the guard needs to know about the session a datagram is for.
pub struct GuardContext<'a> {
    /// The session's conv.
    pub conv: u32,
    /// Largest PUSH payload.
    pub mss: usize,
    /// A PUSH's `frg` must be below this.
    pub max_fragments: usize,
    /// Next sequence number expected from the peer.
    pub rcv_nxt: u32,
    /// Receive window in segments.
    pub rcv_wnd: u16,
    /// How far ahead of `rcv_nxt` a PUSH may be (segments beyond `rcv_wnd` but within this
    /// reach the engine, which drops those beyond its own window unacknowledged, as ikcp
    /// does): [`MAX_SEGMENTS_AHEAD`] for a session, the engine's window for an opening
    /// datagram, whose sender has heard no window from us yet.
    pub max_ahead: u32,
    /// Oldest of our segments not yet acknowledged.
    pub snd_una: u32,
    /// Our next sequence number.
    pub snd_nxt: u32,
    /// Our clock now.
    pub now: Millis,
    /// Our clock when the session started.
    pub session_start: Millis,
    /// Transmission times of an in-flight segment by sn.
    pub in_flight: &'a dyn Fn(u32) -> Option<InFlightTimes>,
}

/// What a valid datagram holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramSummary {
    /// Segments in the datagram.
    pub segments: u32,
    /// PUSH segments.
    pub push_segments: u32,
    /// Payload bytes over all PUSH segments.
    pub payload_bytes: u32,
    /// PUSH segments ahead of the configured receive window. The engine keeps those within its
    /// own window (KCP raises a window below 128 segments to 128, as ikcp does) and drops the
    /// rest unacknowledged, taking the other segments of the datagram.
    pub beyond_window: u32,
}

/// Validates every segment of `datagram`; the datagram may reach the engine only on `Ok`.
pub fn validate(
    ctx: &GuardContext<'_>,
    datagram: &[u8],
) -> Result<DatagramSummary, GuardViolation> {
    if datagram.len() < KCP_HEADER_LEN {
        return Err(GuardViolation::TooShort(datagram.len()));
    }
    let mut summary = DatagramSummary::default();
    let mut rest = datagram;
    while !rest.is_empty() {
        let Some(header) = SegmentHeader::parse(rest) else {
            return Err(GuardViolation::TrailingBytes(rest.len()));
        };
        rest = &rest[KCP_HEADER_LEN..];
        check_segment(ctx, &header, rest.len())?;
        rest = &rest[header.len as usize..];
        summary.segments += 1;
        if header.cmd == CMD_PUSH {
            summary.push_segments += 1;
            summary.payload_bytes += header.len;
            if matches!(push_position(ctx, header.sn), PushPosition::BeyondWindow) {
                summary.beyond_window += 1;
            }
        }
    }
    Ok(summary)
}

fn check_segment(
    ctx: &GuardContext<'_>,
    h: &SegmentHeader,
    remaining: usize,
) -> Result<(), GuardViolation> {
    if h.conv != ctx.conv {
        return Err(GuardViolation::BadConv {
            expected: ctx.conv,
            found: h.conv,
        });
    }
    if !matches!(h.cmd, CMD_PUSH | CMD_ACK | CMD_WASK | CMD_WINS) {
        return Err(GuardViolation::BadCmd(h.cmd));
    }
    if h.len as usize > remaining {
        return Err(GuardViolation::LengthBeyondDatagram {
            len: h.len,
            remaining,
        });
    }
    if diff(h.una, ctx.snd_nxt) > 0 {
        return Err(GuardViolation::UnaBeyondSent {
            una: h.una,
            snd_nxt: ctx.snd_nxt,
        });
    }
    match h.cmd {
        CMD_PUSH => check_push(ctx, h),
        CMD_ACK => {
            if h.len != 0 {
                return Err(GuardViolation::ControlWithPayload(h.len));
            }
            check_ack(ctx, h)
        }
        // Window probes reuse whatever sn/ts the sender's ACK template last held (ikcp does
        // this), so only their length is meaningful.
        _ if h.len != 0 => Err(GuardViolation::ControlWithPayload(h.len)),
        _ => Ok(()),
    }
}

fn check_push(ctx: &GuardContext<'_>, h: &SegmentHeader) -> Result<(), GuardViolation> {
    if h.len as usize > ctx.mss {
        return Err(GuardViolation::LengthBeyondMss {
            len: h.len,
            mss: ctx.mss,
        });
    }
    if usize::from(h.frg) >= ctx.max_fragments {
        return Err(GuardViolation::FragmentBeyondWindow {
            frg: h.frg,
            limit: ctx.max_fragments,
        });
    }
    match push_position(ctx, h.sn) {
        PushPosition::InWindow | PushPosition::BeyondWindow | PushPosition::Retransmission => {
            Ok(())
        }
        PushPosition::Outside => Err(GuardViolation::SequenceOutsideWindow {
            sn: h.sn,
            rcv_nxt: ctx.rcv_nxt,
        }),
    }
}

/// Where a PUSH's sn lies relative to the receive window.
enum PushPosition {
    /// Within `rcv_nxt .. rcv_nxt + rcv_wnd`.
    InWindow,
    /// Ahead of the window, but no further than a KCP sender can legitimately be: its segments
    /// in flight are bounded by the window it was told (a 16-bit field) or assumed before it
    /// heard one (ikcp and kcp-go assume 128, so a client with a larger send window runs ahead
    /// of a server with `rcvWnd: 32` until our first datagram reaches it). ikcp's
    /// `ikcp_input` drops such a segment unacknowledged and processes the rest of the
    /// datagram; the engine here does the same, and the peer sends it again once the window
    /// moves.
    BeyondWindow,
    /// Behind `rcv_nxt`: a retransmission whose ACK was lost; the engine acknowledges it again.
    Retransmission,
    /// Further from the window than any KCP sender gets: forged or garbled.
    Outside,
}

fn push_position(ctx: &GuardContext<'_>, sn: u32) -> PushPosition {
    let ahead = diff(sn, ctx.rcv_nxt);
    if ahead >= 0 {
        if (ahead as u32) < u32::from(ctx.rcv_wnd) {
            PushPosition::InWindow
        } else if (ahead as u32) < ctx.max_ahead {
            PushPosition::BeyondWindow
        } else {
            PushPosition::Outside
        }
    } else if ahead.unsigned_abs() <= STALE_SEQUENCE_SPAN {
        PushPosition::Retransmission
    } else {
        PushPosition::Outside
    }
}

fn check_ack(ctx: &GuardContext<'_>, h: &SegmentHeader) -> Result<(), GuardViolation> {
    if diff(h.sn, ctx.snd_nxt) >= 0 {
        return Err(GuardViolation::AckUnsent {
            sn: h.sn,
            snd_nxt: ctx.snd_nxt,
        });
    }
    if diff(ctx.snd_una, h.sn) > STALE_SEQUENCE_SPAN as i32 {
        return Err(GuardViolation::AckStale {
            sn: h.sn,
            snd_una: ctx.snd_una,
        });
    }
    if diff(h.ts, ctx.now) > 0 {
        return Err(GuardViolation::AckFromFuture {
            ts: h.ts,
            now: ctx.now,
        });
    }
    if diff(h.ts, ctx.session_start) < 0 {
        return Err(GuardViolation::AckBeforeSession {
            ts: h.ts,
            start: ctx.session_start,
        });
    }
    if let Some(times) = (ctx.in_flight)(h.sn) {
        if diff(h.ts, times.first_ts) < 0 || diff(h.ts, times.last_ts) > 0 {
            return Err(GuardViolation::AckTimestampMismatch { sn: h.sn, ts: h.ts });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_guard_rules_are_the_guard_violations() {
        use super::GuardViolation as G;
        use crate::drop_rule::{DropRule, RuleSource};
        let violations = [
            G::TooShort(0),
            G::TrailingBytes(0),
            G::BadConv {
                expected: 0,
                found: 0,
            },
            G::BadCmd(0),
            G::LengthBeyondDatagram {
                len: 0,
                remaining: 0,
            },
            G::LengthBeyondMss { len: 0, mss: 0 },
            G::ControlWithPayload(0),
            G::FragmentBeyondWindow { frg: 0, limit: 0 },
            G::SequenceOutsideWindow { sn: 0, rcv_nxt: 0 },
            G::AckUnsent { sn: 0, snd_nxt: 0 },
            G::AckStale { sn: 0, snd_una: 0 },
            G::AckFromFuture { ts: 0, now: 0 },
            G::AckBeforeSession { ts: 0, start: 0 },
            G::AckTimestampMismatch { sn: 0, ts: 0 },
            G::UnaBeyondSent { una: 0, snd_nxt: 0 },
        ];
        let rules: Vec<DropRule> = violations.iter().map(G::rule).collect();
        let guard: Vec<DropRule> = DropRule::ALL
            .iter()
            .copied()
            .filter(|r| r.source() == RuleSource::Guard)
            .collect();
        assert_eq!(rules, guard);
        for violation in violations {
            assert_eq!(
                violation.rule().trigger(),
                Some(violation.trigger()),
                "{violation}"
            );
        }
    }
}
