/**
 * Prometheus text exposition (format 0.0.4) of a listener's counters: a pure function from
 * `server.stats()` to text, so it can be tested without a socket and reused by any HTTP
 * server. `docs/metrics.md` lists every metric and the kcp-go SNMP counter it matches.
 */

import type { NativeStats } from './native';

/** Constant labels put on every sample, e.g. `{ listener: '127.0.0.1:4000' }`. */
export type MetricsLabels = Record<string, string>;

type MetricType = 'counter' | 'gauge' | 'summary';

interface Sample {
  /** Appended to the family name (`_sum`, `_count` of a summary). */
  suffix?: string;
  labels?: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

const seconds = (ms: number) => ms / 1000;

/** Counter families with one sample per label value. */
function byLabel(name: string, help: string, label: string, values: [string, number][]): Family {
  return { name, type: 'counter', help, samples: values.map(([v, value]) => ({ labels: { [label]: v }, value })) };
}

function one(name: string, type: MetricType, help: string, value: number): Family {
  return { name, type, help, samples: [{ value }] };
}

/** Every metric family, in exposition order. */
function families(s: NativeStats): Family[] {
  const counter = (name: string, help: string, value: number) => one(name, 'counter', help, value);
  const gauge = (name: string, help: string, value: number) => one(name, 'gauge', help, value);
  const list: Family[] = [
    // Socket level.
    counter('kcpwatch_datagrams_received_total', 'UDP datagrams received by the listener (kcp-go InPkts).', s.datagramsIn),
    counter('kcpwatch_received_bytes_total', 'UDP bytes received by the listener (kcp-go InBytes).', s.bytesIn),
    counter('kcpwatch_datagrams_sent_total', 'UDP datagrams sent by the listener (kcp-go OutPkts).', s.datagramsOut),
    counter('kcpwatch_sent_bytes_total', 'UDP bytes sent by the listener (kcp-go OutBytes).', s.bytesOut),
    counter('kcpwatch_datagrams_accepted_total', 'Datagrams accepted by a connection\'s segment guard.', s.datagramsAccepted),
    byLabel('kcpwatch_datagrams_dropped_total', 'Datagrams dropped before reaching an engine, by trigger (as in kcp:packet_dropped and kcp:connection_failed).', 'trigger', [
      ['too_short', s.droppedTooShort],
      ['bad_conv', s.droppedBadConv],
      ['bad_length', s.droppedBadLength],
      ['bad_cmd', s.droppedBadCmd],
      ['guard_violation', s.droppedGuardViolation],
      ['unknown_connection', s.droppedUnknownConnection],
      ['over_limit', s.droppedOverLimit],
      ['bad_tag', s.droppedBadTag],
      ['replayed', s.droppedReplayed],
      ['rate_limited', s.droppedRateLimited],
      ['decrypt_failed', s.droppedDecryptFailed],
    ]),
    counter('kcpwatch_datagrams_truncated_total', 'Datagrams longer than the receive buffer, dropped.', s.truncated),
    counter('kcpwatch_datagrams_late_after_close_total', 'Secure mode: datagrams of sessions that had just closed, counted without a record each.', s.lateAfterClose),
    byLabel('kcpwatch_socket_errors_total', 'Socket errors: failed sends, failed receives (kcp-go InErrs) and ICMP errors for earlier sends.', 'kind', [
      ['send', s.sendErrors],
      ['recv', s.recvErrors],
      ['icmp', s.icmpErrors],
    ]),
    // Connections.
    gauge('kcpwatch_connections', 'Live connections (kcp-go CurrEstab).', s.connections),
    gauge('kcpwatch_connections_max', 'Most connections live at once since the listener started (kcp-go MaxConn).', s.maxConn),
    gauge('kcpwatch_pending_auth', 'Secure mode: handshakes waiting for authenticate().', s.pendingAuth),
    byLabel('kcpwatch_connections_opened_total', 'Connections opened, by who opened them (kcp-go PassiveOpens, ActiveOpens).', 'direction', [
      ['passive', s.passiveOpens],
      ['active', s.activeOpens],
    ]),
    counter('kcpwatch_connections_closed_total', 'Connections closed, for any reason (kcp:connection_closed).', s.closed),
    byLabel('kcpwatch_connections_failed_total', 'Connection attempts that never became connections, by reason (kcp:connection_failed).', 'reason', [
      ['handshake_timeout', s.failedHandshakeTimeout],
      ['invalid_cookie', s.failedInvalidCookie],
      ['expired_cookie', s.failedExpiredCookie],
      ['auth_rejected', s.failedAuthRejected],
      ['rate_limited', s.failedRateLimited],
      ['capacity', s.failedCapacity],
      ['version_mismatch', s.failedVersionMismatch],
      ['malformed', s.failedMalformed],
      ['decrypt_failed', s.failedDecryptFailed],
      ['unknown_server_key', s.failedUnknownServerKey],
      ['server_auth_failed', s.failedServerAuthFailed],
      ['unreachable', s.failedUnreachable],
      ['shutdown', s.failedShutdown],
      ['handshake_abandoned', s.failedHandshakeAbandoned],
      ['stream_mismatch', s.failedStreamMismatch],
    ]),
    // Handshakes (secure mode).
    counter('kcpwatch_handshake_hellos_received_total', 'Secure mode: HELLOs received, with or without a cookie.', s.hellosReceived),
    counter('kcpwatch_handshake_cookies_sent_total', 'Secure mode: COOKIE replies sent.', s.cookiesSent),
    counter('kcpwatch_handshake_rejects_sent_total', 'Secure mode: REJECT replies sent.', s.rejectsSent),
    counter('kcpwatch_handshake_auth_requests_total', 'Secure mode: tokens handed to authenticate().', s.authRequests),
    counter('kcpwatch_unvalidated_received_bytes_total', 'Secure mode: handshake bytes received from sources not yet validated.', s.bytesReceivedUnvalidated),
    counter('kcpwatch_unvalidated_sent_bytes_total', 'Secure mode: bytes sent to sources not yet validated (never more than received from them).', s.bytesSentUnvalidated),
    counter('kcpwatch_peer_address_changes_total', 'Secure mode: sessions that moved to a new peer address (kcp:peer_address_changed).', s.peerAddressChanges),
    // Application misuse and detectors.
    byLabel('kcpwatch_protocol_violations_total', 'Sends refused by a limit or misuse, by violation (kcp:protocol_violation).', 'violation', [
      ['oversized_message', s.violationsOversizedMessage],
      ['message_on_closed_connection', s.violationsMessageOnClosedConnection],
      ['empty_message', s.violationsEmptyMessage],
      ['send_queue_full', s.violationsSendQueueFull],
    ]),
    counter('kcpwatch_sends_to_closed_total', 'Messages the application sent to connections that had already closed.', s.sendsToClosed),
    counter('kcpwatch_delivery_pauses_total', 'Times delivery to JavaScript paused because the event loop had not drained.', s.deliveryPauses),
  ];
  list.push(
    counter('kcpwatch_alerts_total', 'Alerts raised by the detectors, first alerts and updates (kcp:alert).', s.alerts),
    counter('kcpwatch_connections_refused_by_detector_total', 'New connections refused by detector enforcement.', s.refusedByDetector),
    counter('kcpwatch_mode_mismatch_datagrams_total', 'Datagrams of the other mode (secure HELLO at a raw server, plain KCP at a secure one), dropped.', s.modeMismatch),
    counter('kcpwatch_panics_total', 'Panics caught inside a connection\'s engine (each closed that connection with internal_error).', s.panics),
    // The security record pipeline.
    counter('kcpwatch_events_produced_total', 'Security records produced.', s.eventsProduced),
    byLabel('kcpwatch_events_lost_total', 'Security records lost, by stage: before the log thread (each reported by kcp:log_loss), not taken in time by a JavaScript consumer, or not written or delivered by a log output (each reported by kcp:log_loss naming it).', 'stage', [
      ['log', s.eventsLost],
      ['js', s.eventsLostJs],
      ['output', s.eventsLostOutput],
    ]),
    // Per-connection counters summed over every connection so far (closed and live).
    counter('kcpwatch_session_datagrams_received_total', 'Datagrams accepted by connections, summed over connections.', s.sessionDatagramsIn),
    counter('kcpwatch_session_received_bytes_total', 'Bytes of datagrams accepted by connections, summed over connections.', s.sessionBytesIn),
    counter('kcpwatch_session_datagrams_sent_total', 'Datagrams produced by connections, summed over connections.', s.sessionDatagramsOut),
    counter('kcpwatch_session_sent_bytes_total', 'Bytes of datagrams produced by connections, summed over connections.', s.sessionBytesOut),
    counter('kcpwatch_payload_received_bytes_total', 'Application payload bytes delivered (kcp-go BytesReceived).', s.bytesReceived),
    counter('kcpwatch_payload_sent_bytes_total', 'Application payload bytes accepted by send() (kcp-go BytesSent).', s.bytesSent),
    counter('kcpwatch_messages_received_total', 'Messages delivered to the application.', s.messagesIn),
    counter('kcpwatch_messages_sent_total', 'Messages accepted by send().', s.messagesOut),
    counter('kcpwatch_session_guard_drops_total', 'Datagrams of a known connection refused by its guard, summed over connections.', s.sessionGuardDrops),
    counter('kcpwatch_segments_received_total', 'KCP segments accepted by the engines (kcp-go InSegs).', s.inSegs),
    counter('kcpwatch_segments_sent_total', 'KCP segments encoded by the engines (kcp-go OutSegs).', s.outSegs),
    counter('kcpwatch_push_segments_received_total', 'KCP data (PUSH) segments accepted by the engines.', s.inPushSegs),
    counter('kcpwatch_push_segments_sent_total', 'KCP data (PUSH) segments sent, retransmissions included.', s.outPushSegs),
    byLabel('kcpwatch_retransmitted_segments_total', 'KCP segments retransmitted, by cause: retransmission timeout (kcp-go RetransSegs) or duplicate acks (kcp-go FastRetransSegs).', 'kind', [
      ['timeout', s.retransSegs],
      ['fast', s.fastRetransSegs],
    ]),
    counter('kcpwatch_lost_segments_total', 'KCP segments inferred lost (kcp-go LostSegs).', s.lostSegs),
    counter('kcpwatch_repeat_segments_total', 'Duplicate KCP data segments received (kcp-go RepeatSegs).', s.repeatSegs),
    counter('kcpwatch_acks_sent_total', 'KCP ACK segments sent.', s.acksSent),
    counter('kcpwatch_acks_received_total', 'KCP ACK segments received.', s.acksReceived),
    counter('kcpwatch_window_probes_sent_total', 'KCP window probes (WASK) sent.', s.windowProbesSent),
    counter('kcpwatch_window_probes_received_total', 'KCP window probes (WASK) received.', s.windowProbesReceived),
    // Secure mode: unreliable datagrams (sendDatagram), apart from the messages.
    counter('kcpwatch_unreliable_sent_total', 'Secure mode: unreliable datagrams sealed and queued for the socket (sendDatagram).', s.unreliableSent),
    counter('kcpwatch_unreliable_received_total', 'Secure mode: unreliable datagrams handed to the application.', s.unreliableReceived),
    byLabel('kcpwatch_unreliable_dropped_total', 'Secure mode: unreliable datagrams dropped, by reason: stale (older than one delivered on its sequenced channel), queue_full (a send or receive queue was full), too_large (refused at sendDatagram), no_session (closed or unknown connection), malformed.', 'reason', [
      ['stale', s.unreliableDroppedStale],
      ['queue_full', s.unreliableDroppedQueueFull],
      ['too_large', s.unreliableDroppedTooLarge],
      ['no_session', s.unreliableDroppedNoSession],
      ['malformed', s.unreliableDroppedMalformed],
    ]),
    // kcp-go FEC (raw mode): only when it is on, so a 0 never reads as "on and idle".
    ...(s.fecEnabled
      ? [
          counter('kcpwatch_fec_recovered_total', 'FEC: datagrams rebuilt from parity that the guard accepted, or in secure mode that authenticated (kcp-go FECRecovered).', s.fecRecovered),
          counter('kcpwatch_fec_errors_total', 'FEC: failed recoveries, rebuilt datagrams the guard refused or that did not authenticate, malformed parity, shards of the wrong type for their position (kcp-go FECErrs).', s.fecErrs),
          counter('kcpwatch_fec_parity_shards_received_total', 'FEC: parity shards received (kcp-go FECParityShards).', s.fecParityShards),
          counter('kcpwatch_fec_short_shards_total', 'FEC: data shards of groups dropped before they could rebuild what was missing (kcp-go FECShortShards).', s.fecShortShards),
        ]
      : []),
    // Round-trip times.
    {
      name: 'kcpwatch_srtt_seconds',
      type: 'summary',
      help: 'Smoothed RTT of each connection with an RTT sample, taken at its close or, for live connections, now; quantiles from a fixed-bucket histogram over the listener\'s life.',
      samples: [
        { labels: { quantile: '0.5' }, value: seconds(s.srttP50Ms) },
        { labels: { quantile: '0.9' }, value: seconds(s.srttP90Ms) },
        { labels: { quantile: '0.99' }, value: seconds(s.srttP99Ms) },
        { suffix: '_sum', value: seconds(s.srttSumMs) },
        { suffix: '_count', value: s.srttCount },
      ],
    },
    gauge('kcpwatch_srtt_max_seconds', 'Largest smoothed RTT in kcpwatch_srtt_seconds.', seconds(s.srttMaxMs)),
    gauge('kcpwatch_rtt_sample_min_seconds', 'Smallest single RTT sample of any connection (0 before any).', seconds(s.rttMinMs)),
    gauge('kcpwatch_rtt_sample_max_seconds', 'Largest single RTT sample of any connection (0 before any).', seconds(s.rttMaxMs)),
  );
  return list;
}

/**
 * Renders `stats` as Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` before
 * each family's samples, every sample carrying `labels`.
 */
export function renderMetrics(stats: NativeStats, labels: MetricsLabels = {}): string {
  for (const name of Object.keys(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new TypeError(`invalid label name ${JSON.stringify(name)}`);
  }
  const constant = Object.entries(labels);
  const lines: string[] = [];
  for (const family of families(stats)) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const pairs = [...constant, ...Object.entries(sample.labels ?? {})];
      const rendered = pairs.length ? `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      lines.push(`${family.name}${sample.suffix ?? ''}${rendered} ${formatValue(sample.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The content type of {@link renderMetrics}'s output. */
export const metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';
