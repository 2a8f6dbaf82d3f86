//! Every field of `server.stats()`, in the order the addon returns them: the one list. A new
//! field is a line here; `npm run codegen` writes the TypeScript type and the docs from it.

use super::{flag_stat, stat, StatSpec};

/// Every field of `server.stats()` and `client.stats()`.
pub const STATS: &[StatSpec] = &[
    stat(
        "connections",
        "Live connections.",
        |s| s.connections as f64,
    ),
    stat(
        "datagramsIn",
        "UDP datagrams received.",
        |s| s.endpoint.datagrams_in as f64,
    ),
    stat(
        "bytesIn",
        "UDP bytes received.",
        |s| s.endpoint.bytes_in as f64,
    ),
    stat(
        "datagramsAccepted",
        "Datagrams accepted by a connection's segment guard.",
        |s| s.endpoint.datagrams_accepted as f64,
    ),
    stat(
        "datagramsOut",
        "UDP datagrams sent (handshake replies included).",
        |s| s.datagrams_out as f64,
    ),
    stat(
        "bytesOut",
        "UDP bytes sent.",
        |s| s.bytes_out as f64,
    ),
    stat(
        "passiveOpens",
        "Connections opened by peers.",
        |s| s.endpoint.passive_opens as f64,
    ),
    stat(
        "activeOpens",
        "Connections opened by `connect`.",
        |s| s.endpoint.active_opens as f64,
    ),
    stat(
        "closed",
        "Connections closed, for any reason.",
        |s| s.endpoint.closed as f64,
    ),
    stat(
        "panics",
        "Panics caught inside a connection's engine (each closed that connection).",
        |s| s.endpoint.panics as f64,
    ),
    stat(
        "droppedTooShort",
        "Datagrams dropped before an engine, trigger `too_short` (shorter than a KCP header or a secure datagram's fixed part).",
        |s| s.endpoint.dropped[0] as f64,
    ),
    stat(
        "droppedBadConv",
        "Datagrams dropped before an engine, trigger `bad_conv` (a segment's conv is not the session's).",
        |s| s.endpoint.dropped[1] as f64,
    ),
    stat(
        "droppedBadLength",
        "Datagrams dropped before an engine, trigger `bad_length` (a length that does not fit).",
        |s| s.endpoint.dropped[2] as f64,
    ),
    stat(
        "droppedBadCmd",
        "Datagrams dropped before an engine, trigger `bad_cmd` (an unknown command, type or flag; the other mode).",
        |s| s.endpoint.dropped[3] as f64,
    ),
    stat(
        "droppedGuardViolation",
        "Datagrams dropped before an engine, trigger `guard_violation` (a segment that breaks a guard rule).",
        |s| s.endpoint.dropped[4] as f64,
    ),
    stat(
        "droppedUnknownConnection",
        "Datagrams dropped before an engine, trigger `unknown_connection` (no session or handshake for it).",
        |s| s.endpoint.dropped[5] as f64,
    ),
    stat(
        "droppedOverLimit",
        "Datagrams dropped before an engine, trigger `over_limit` (refused by a connection limit).",
        |s| s.endpoint.dropped[6] as f64,
    ),
    stat(
        "droppedBadTag",
        "Secure mode: datagrams whose tag (or HELLO cookie) did not verify.",
        |s| s.endpoint.dropped[7] as f64,
    ),
    stat(
        "droppedReplayed",
        "Secure mode: datagrams refused by the replay window.",
        |s| s.endpoint.dropped[8] as f64,
    ),
    stat(
        "droppedRateLimited",
        "Handshakes refused by a rate limit.",
        |s| s.endpoint.dropped[9] as f64,
    ),
    stat(
        "droppedDecryptFailed",
        "Secure mode: datagrams the AEAD refused (and HELLOs whose Noise message did not decrypt).",
        |s| s.endpoint.dropped[10] as f64,
    ),
    stat(
        "hellosReceived",
        "Secure mode: HELLOs received, with or without a cookie.",
        |s| s.endpoint.hellos_received as f64,
    ),
    stat(
        "cookiesSent",
        "Secure mode: COOKIE replies sent.",
        |s| s.endpoint.cookies_sent as f64,
    ),
    stat(
        "rejectsSent",
        "Secure mode: REJECT replies sent.",
        |s| s.endpoint.rejects_sent as f64,
    ),
    stat(
        "bytesSentUnvalidated",
        "Secure mode: bytes sent to sources not yet validated (never more than received from them).",
        |s| s.endpoint.bytes_sent_unvalidated as f64,
    ),
    stat(
        "bytesReceivedUnvalidated",
        "Secure mode: handshake bytes received from sources not yet validated.",
        |s| s.endpoint.bytes_received_unvalidated as f64,
    ),
    stat(
        "authRequests",
        "Secure mode: tokens handed to `authenticate`.",
        |s| s.endpoint.auth_requests as f64,
    ),
    stat(
        "pendingAuth",
        "Secure mode: handshakes waiting for `authenticate` now.",
        |s| s.pending_auth as f64,
    ),
    stat(
        "peerAddressChanges",
        "Secure mode: sessions that moved to a new peer address.",
        |s| s.endpoint.peer_address_changes as f64,
    ),
    stat(
        "violationsOversizedMessage",
        "Sends refused: a message over `maxMessageSize` (`kcp:protocol_violation`).",
        |s| s.endpoint.violations[0] as f64,
    ),
    stat(
        "violationsMessageOnClosedConnection",
        "Sends refused: a message on a closed connection.",
        |s| s.endpoint.violations[1] as f64,
    ),
    stat(
        "violationsEmptyMessage",
        "Sends refused: an empty message.",
        |s| s.endpoint.violations[2] as f64,
    ),
    stat(
        "violationsSendQueueFull",
        "Sends refused: the send queue was full.",
        |s| s.endpoint.violations[3] as f64,
    ),
    stat(
        "lateAfterClose",
        "Secure mode: datagrams of sessions that had just closed (the peer's remaining DISCONNECT copies).",
        |s| s.endpoint.late_after_close as f64,
    ),
    stat(
        "alerts",
        "`kcp:alert` records raised by the detectors (first alerts and updates).",
        |s| s.endpoint.alerts as f64,
    ),
    stat(
        "refusedByDetector",
        "New connections refused by detector enforcement.",
        |s| s.endpoint.refused_by_detector as f64,
    ),
    stat(
        "modeMismatch",
        "Datagrams of the other mode (a secure HELLO at a raw server, plain KCP at a secure one): rule `mode_mismatch`.",
        |s| s.endpoint.mode_mismatch as f64,
    ),
    stat(
        "failedHandshakeTimeout",
        "Failed attempts (`kcp:connection_failed`), reason `handshake_timeout`.",
        |s| s.endpoint.failed_by_reason[0] as f64,
    ),
    stat(
        "failedInvalidCookie",
        "Failed attempts (`kcp:connection_failed`), reason `invalid_cookie`.",
        |s| s.endpoint.failed_by_reason[1] as f64,
    ),
    stat(
        "failedExpiredCookie",
        "Failed attempts (`kcp:connection_failed`), reason `expired_cookie`.",
        |s| s.endpoint.failed_by_reason[2] as f64,
    ),
    stat(
        "failedAuthRejected",
        "Failed attempts (`kcp:connection_failed`), reason `auth_rejected`.",
        |s| s.endpoint.failed_by_reason[3] as f64,
    ),
    stat(
        "failedRateLimited",
        "Failed attempts (`kcp:connection_failed`), reason `rate_limited`.",
        |s| s.endpoint.failed_by_reason[4] as f64,
    ),
    stat(
        "failedCapacity",
        "Failed attempts (`kcp:connection_failed`), reason `capacity`.",
        |s| s.endpoint.failed_by_reason[5] as f64,
    ),
    stat(
        "failedVersionMismatch",
        "Failed attempts (`kcp:connection_failed`), reason `version_mismatch`.",
        |s| s.endpoint.failed_by_reason[6] as f64,
    ),
    stat(
        "failedMalformed",
        "Failed attempts (`kcp:connection_failed`), reason `malformed`.",
        |s| s.endpoint.failed_by_reason[7] as f64,
    ),
    stat(
        "failedDecryptFailed",
        "Failed attempts (`kcp:connection_failed`), reason `decrypt_failed`.",
        |s| s.endpoint.failed_by_reason[8] as f64,
    ),
    stat(
        "failedUnknownServerKey",
        "Failed attempts (`kcp:connection_failed`), reason `unknown_server_key`.",
        |s| s.endpoint.failed_by_reason[9] as f64,
    ),
    stat(
        "failedServerAuthFailed",
        "Failed attempts (`kcp:connection_failed`), reason `server_auth_failed`.",
        |s| s.endpoint.failed_by_reason[10] as f64,
    ),
    stat(
        "failedUnreachable",
        "Failed attempts (`kcp:connection_failed`), reason `unreachable`.",
        |s| s.endpoint.failed_by_reason[11] as f64,
    ),
    stat(
        "failedShutdown",
        "Failed attempts (`kcp:connection_failed`), reason `shutdown`.",
        |s| s.endpoint.failed_by_reason[12] as f64,
    ),
    stat(
        "failedHandshakeAbandoned",
        "Failed attempts (`kcp:connection_failed`), reason `handshake_abandoned`.",
        |s| s.endpoint.failed_by_reason[13] as f64,
    ),
    stat(
        "failedStreamMismatch",
        "Failed attempts (`kcp:connection_failed`), reason `stream_mismatch`.",
        |s| s.endpoint.failed_by_reason[14] as f64,
    ),
    stat(
        "sendErrors",
        "Datagrams the OS refused to send.",
        |s| s.send_errors as f64,
    ),
    stat(
        "recvErrors",
        "Receive calls that failed.",
        |s| s.recv_errors as f64,
    ),
    stat(
        "truncated",
        "Datagrams longer than the receive buffer, dropped.",
        |s| s.truncated as f64,
    ),
    stat(
        "sendsToClosed",
        "Messages the application sent to connections that had already closed.",
        |s| s.sends_to_closed as f64,
    ),
    stat(
        "deliveryPauses",
        "Times delivery to JavaScript paused because the event loop had not drained.",
        |s| s.delivery_pauses as f64,
    ),
    stat(
        "sendsOnCaller",
        "Send batches the event loop's thread applied and sent itself while the I/O thread slept (the others were queued for it).",
        |s| s.sends_on_caller as f64,
    ),
    stat(
        "receivesOnLoop",
        "Receive turns the event loop's thread ran itself, woken by the socket while the I/O thread slept (docs/architecture.md, reception).",
        |s| s.receives_on_loop as f64,
    ),
    stat(
        "receptionsHanded",
        "Times the I/O thread, about to sleep, handed reading the socket to the event loop; the event loop gives it back when busy.",
        |s| s.receptions_handed as f64,
    ),
    stat(
        "loopReceiveStalls",
        "Times the I/O thread took reading the socket back because the event loop left datagrams unread for 5 ms (something blocked it).",
        |s| s.loop_receive_stalls as f64,
    ),
    stat(
        "connectionsFailed",
        "Connection attempts that never became connections (malformed first datagram, capacity).",
        |s| s.endpoint.failed as f64,
    ),
    stat(
        "icmpErrors",
        "ICMP errors (port or host unreachable) reported for earlier sends.",
        |s| s.icmp_errors as f64,
    ),
    stat(
        "eventsProduced",
        "Security records produced.",
        |s| s.events_produced as f64,
    ),
    stat(
        "eventsLost",
        "Security records lost before the log thread (each reported by a `kcp:log_loss` record).",
        |s| s.events_lost as f64,
    ),
    stat(
        "eventsLostJs",
        "Security records an `'event'` consumer did not take in time.",
        |s| s.events_lost_js as f64,
    ),
    stat(
        "eventsLostOutput",
        "Security records a log output lost (a failed write, a network output that could not deliver), loss reports included; each is reported by a `kcp:log_loss` naming the output.",
        |s| s.events_lost_output as f64,
    ),
    stat(
        "bytesSent",
        "Payload bytes accepted from the application (kcp-go `BytesSent`).",
        |s| s.sessions.payload_bytes_out as f64,
    ),
    stat(
        "bytesReceived",
        "Payload bytes delivered to the application (kcp-go `BytesReceived`).",
        |s| s.sessions.payload_bytes_in as f64,
    ),
    stat(
        "maxConn",
        "Most connections live at once (kcp-go `MaxConn`).",
        |s| s.sessions.max_live as f64,
    ),
    stat(
        "currEstab",
        "Live connections (kcp-go `CurrEstab`; the same as `connections`).",
        |s| s.connections as f64,
    ),
    stat(
        "inErrs",
        "Receive calls that failed (kcp-go `InErrs`; the same as `recvErrors`).",
        |s| s.recv_errors as f64,
    ),
    stat(
        "inCsumErrors",
        "Secure mode: datagrams whose integrity check failed (kcp-go `InCsumErrors`): `droppedDecryptFailed` (the AEAD refused them) + `droppedBadTag` (a HELLO cookie's MAC or age, a RESET's tag).",
        |s| (s.endpoint.dropped[7] + s.endpoint.dropped[10]) as f64,
    ),
    stat(
        "kcpInErrors",
        "Datagrams the segment guard refused as malformed (kcp-go `KCPInErrors`: too_short + bad_conv + bad_length + bad_cmd + guard_violation).",
        |s| s.endpoint.dropped[..5].iter().sum::<u64>() as f64,
    ),
    stat(
        "inPkts",
        "Datagrams received (kcp-go `InPkts`; the same as `datagramsIn`).",
        |s| s.endpoint.datagrams_in as f64,
    ),
    stat(
        "outPkts",
        "Datagrams sent (kcp-go `OutPkts`; the same as `datagramsOut`).",
        |s| s.datagrams_out as f64,
    ),
    stat(
        "inSegs",
        "KCP segments accepted by the engines (kcp-go `InSegs`).",
        |s| s.sessions.engine.in_segs as f64,
    ),
    stat(
        "outSegs",
        "KCP segments the engines encoded (kcp-go `OutSegs`).",
        |s| s.sessions.engine.out_segs as f64,
    ),
    stat(
        "inBytes",
        "UDP bytes received (kcp-go `InBytes`; the same as `bytesIn`).",
        |s| s.endpoint.bytes_in as f64,
    ),
    stat(
        "outBytes",
        "UDP bytes sent (kcp-go `OutBytes`; the same as `bytesOut`).",
        |s| s.bytes_out as f64,
    ),
    stat(
        "retransSegs",
        "Timeout retransmissions (kcp-go `RetransSegs`).",
        |s| s.sessions.engine.retrans_segs as f64,
    ),
    stat(
        "fastRetransSegs",
        "Fast (duplicate-ack) retransmissions (kcp-go `FastRetransSegs`).",
        |s| s.sessions.engine.fast_retrans_segs as f64,
    ),
    stat(
        "lostSegs",
        "Segments inferred lost (kcp-go `LostSegs`).",
        |s| s.sessions.engine.lost_segs as f64,
    ),
    stat(
        "repeatSegs",
        "Duplicate segments received (kcp-go `RepeatSegs`).",
        |s| s.sessions.engine.repeat_segs as f64,
    ),
    flag_stat(
        "fecEnabled",
        "FEC is on (the four `fec*` counters mean something): raw mode with `fec`; secure mode with `fec` or once a peer's parity arrived.",
        |s| f64::from(u8::from(s.endpoint.fec.enabled)),
    ),
    stat(
        "fecRecovered",
        "FEC: datagrams rebuilt from parity that the guard accepted (kcp-go `FECRecovered`).",
        |s| s.endpoint.fec.recovered as f64,
    ),
    stat(
        "fecErrs",
        "FEC: failed recoveries, rebuilt datagrams the guard refused, shards of the wrong type for their position (kcp-go `FECErrs`).",
        |s| s.endpoint.fec.errors as f64,
    ),
    stat(
        "fecParityShards",
        "FEC: parity shards received (kcp-go `FECParityShards`).",
        |s| s.endpoint.fec.parity_shards as f64,
    ),
    stat(
        "fecShortShards",
        "FEC: data shards of groups dropped before they could rebuild what was missing (kcp-go `FECShortShards`).",
        |s| s.endpoint.fec.short_shards as f64,
    ),
    stat(
        "unreliableSent",
        "Datagrams sealed and queued for the socket.",
        |s| s.endpoint.unreliable.sent as f64,
    ),
    stat(
        "unreliableReceived",
        "Datagrams handed to JavaScript.",
        |s| s.endpoint.unreliable.received as f64,
    ),
    stat(
        "unreliableDroppedStale",
        "Received on a sequenced channel after a newer one was delivered.",
        |s| s.endpoint.unreliable.dropped_stale as f64,
    ),
    stat(
        "unreliableDroppedQueueFull",
        "Dropped because a queue was full: the send queue, the receive queue of the I/O thread, or a connection nobody read (held datagrams past their bound).",
        |s| s.endpoint.unreliable.dropped_queue_full as f64,
    ),
    stat(
        "unreliableDroppedTooLarge",
        "Refused at `sendDatagram()`: larger than one datagram.",
        |s| s.endpoint.unreliable.dropped_too_large as f64,
    ),
    stat(
        "unreliableDroppedNoSession",
        "For a connection that does not exist (closed, or an unknown conv), or not established yet.",
        |s| s.endpoint.unreliable.dropped_no_session as f64,
    ),
    stat(
        "unreliableDroppedMalformed",
        "Authentic datagrams whose content was not a datagram (too short, unknown flags).",
        |s| s.endpoint.unreliable.dropped_malformed as f64,
    ),
    stat(
        "sessionsCounted",
        "Connections the sums cover.",
        |s| s.sessions.sessions as f64,
    ),
    stat(
        "sessionDatagramsIn",
        "Datagrams accepted by the connections' guards, summed over connections.",
        |s| s.sessions.datagrams_in as f64,
    ),
    stat(
        "sessionBytesIn",
        "Bytes of the datagrams accepted by the connections, summed over connections.",
        |s| s.sessions.bytes_in as f64,
    ),
    stat(
        "sessionDatagramsOut",
        "Datagrams the connections produced, summed over connections (handshake replies are not in these).",
        |s| s.sessions.datagrams_out as f64,
    ),
    stat(
        "sessionBytesOut",
        "Bytes of the datagrams the connections produced, summed over connections.",
        |s| s.sessions.bytes_out as f64,
    ),
    stat(
        "messagesIn",
        "Messages delivered to the application, summed over connections.",
        |s| s.sessions.messages_in as f64,
    ),
    stat(
        "messagesOut",
        "Messages accepted by `send()`, summed over connections.",
        |s| s.sessions.messages_out as f64,
    ),
    stat(
        "sessionGuardDrops",
        "Datagrams of a known connection refused by its guard.",
        |s| s.sessions.guard_drops as f64,
    ),
    stat(
        "inPushSegs",
        "KCP data (PUSH) segments accepted by the engines.",
        |s| s.sessions.engine.in_push_segs as f64,
    ),
    stat(
        "outPushSegs",
        "KCP data (PUSH) segments sent, retransmissions included.",
        |s| s.sessions.engine.out_push_segs as f64,
    ),
    stat(
        "acksSent",
        "KCP ACK segments sent.",
        |s| s.sessions.engine.acks_sent as f64,
    ),
    stat(
        "acksReceived",
        "KCP ACK segments received.",
        |s| s.sessions.engine.acks_received as f64,
    ),
    stat(
        "windowProbesSent",
        "KCP window probes (WASK) sent.",
        |s| s.sessions.engine.window_probes_sent as f64,
    ),
    stat(
        "windowProbesReceived",
        "KCP window probes (WASK) received.",
        |s| s.sessions.engine.window_probes_received as f64,
    ),
    stat(
        "rttMinMs",
        "Smallest single RTT sample of any connection, in ms (0 before any).",
        |s| f64::from(s.sessions.engine.rtt_min),
    ),
    stat(
        "rttMaxMs",
        "Largest single RTT sample of any connection, in ms (0 before any).",
        |s| f64::from(s.sessions.engine.rtt_max),
    ),
    stat(
        "srttCount",
        "Smoothed RTTs in the histogram: one per connection that received an ACK (at its close, or now while it lives).",
        |s| s.sessions.srtt.count as f64,
    ),
    stat(
        "srttSumMs",
        "Sum of those smoothed RTTs, in ms.",
        |s| s.sessions.srtt.sum_ms as f64,
    ),
    stat(
        "srttP50Ms",
        "Median smoothed RTT, in ms (the upper bound of its histogram bucket, never above the largest).",
        |s| f64::from(s.sessions.srtt.quantile(0.5)),
    ),
    stat(
        "srttP90Ms",
        "90th percentile smoothed RTT, in ms.",
        |s| f64::from(s.sessions.srtt.quantile(0.9)),
    ),
    stat(
        "srttP99Ms",
        "99th percentile smoothed RTT, in ms.",
        |s| f64::from(s.sessions.srtt.quantile(0.99)),
    ),
    stat(
        "srttMaxMs",
        "Largest smoothed RTT, in ms.",
        |s| f64::from(s.sessions.srtt.max_ms),
    ),
];
