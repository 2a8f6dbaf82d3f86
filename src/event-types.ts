/**
 * The security event types (`kcp:*`), one interface per event, mirroring the canonical JSON
 * records written by the Rust canonical writer (in the repository, `crates/kcpwatch-log/src/canonical.rs`)
 * field for field. Each event is declared once, in the Rust catalogue
 * (the repository's `crates/kcpwatch-proto/src/events/catalog`); `npm run codegen` writes
 * `schema/events.schema.json`, `./generated/event-catalog.ts` and `./generated/event-checks.ts`
 * from it. These hand-written types keep the prose and the refinements (which fields come
 * together); the generated checks make `tsc` fail when they name other events or fields than
 * the catalogue, or wider types.
 *
 * Counters are u64 in Rust and plain numbers here: exact up to 2^53, far beyond any realistic
 * count.
 */

import type { CloseReason } from './records';
import type { DropRule, UnrefusedAttempt } from './generated/rules';
import type { LibraryErrorCode } from './generated/event-catalog';

// ---- vocabularies ----------------------------------------------------------------------------

/** Syslog severity number (RFC 5424): 0 emergency ... 7 debug; lower is more severe. */
export type SyslogSeverity = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Syslog severity names, as `level_name` carries them (`Severity::as_str`). */
export type EventSeverityName = 'emergency' | 'alert' | 'critical' | 'error' | 'warning' | 'notice' | 'info' | 'debug';

/**
 * pino level number: debug 20, info and notice 30, warning 40, error 50, critical / alert /
 * emergency 60 (pino has no notice, alert or emergency).
 */
export type PinoLevel = 20 | 30 | 40 | 50 | 60;

/**
 * Ring lane that carries an event between the I/O thread and the log thread. Not a record
 * field; each event's lane is documented on its interface.
 */
export type EventLane = 'critical' | 'bulk';

/** Who opened a connection: `inbound` the peer (src is the peer), `outbound` this endpoint. */
export type EventDirection = 'inbound' | 'outbound';

/** Lifecycle states (`handshaking` exists only in secure mode). */
export type EventConnectionState = 'attempted' | 'handshaking' | 'established' | 'closing' | 'closed';

/**
 * Why a connection ended (`CloseReason::as_str` in Rust): the `'close'` event's reasons except
 * `connect_failed`, which only the API has (a client whose handshake failed has a
 * `kcp:connection_failed` record, not a close).
 */
export type EventCloseReason = Exclude<CloseReason, 'connect_failed'>;

/** Which side ended a connection. */
export type EventInitiator = 'local' | 'remote';

/**
 * Why an attempt never became a connection. Raw mode produces `malformed`, `capacity` and
 * `rate_limited`; the others belong to secure mode.
 */
export type FailReason =
  | 'handshake_timeout'
  | 'invalid_cookie'
  | 'expired_cookie'
  | 'auth_rejected'
  | 'rate_limited'
  | 'capacity'
  | 'version_mismatch'
  | 'malformed'
  /** Server: a HELLO's Noise message did not decrypt (trigger `decrypt_failed`, rule `hello_noise`). */
  | 'decrypt_failed'
  /** The HELLO named a server key the server does not hold: the client pinned an old or wrong key. */
  | 'unknown_server_key'
  /** Client: the ACCEPT did not decrypt with the pinned key (rule `accept_noise`): not that server. */
  | 'server_auth_failed'
  /** Client: ICMP reported the server's address unreachable for two HELLOs (rule `icmp_unreachable`). */
  | 'unreachable'
  /** The server shut down during the handshake (server: rule `shutdown`; client: a REJECT `shutdown`, rule `server_rejected`). */
  | 'shutdown'
  /** Server: the client never confirmed the ACCEPT within the handshake timeout, or said DISCONNECT first (rule `handshake_abandoned` or `peer_disconnect`); never announced. */
  | 'handshake_abandoned'
  /** `stream: true` on one side only: the server refuses the HELLO with a REJECT `stream_mismatch` (server: trigger `bad_cmd`, rule `hello_stream`; client: rule `server_rejected`). */
  | 'stream_mismatch';

/**
 * Why a datagram was dropped whole. `decrypt_failed` (a session datagram's AEAD tag did not
 * verify, or a HELLO's Noise message did not decrypt), `bad_tag` (a HELLO's cookie MAC or a
 * RESET's echo did not verify) and `replayed` (a packet number seen before or outside the
 * replay window) come from secure mode; `rate_limited` from the handshake rate limits.
 */
export type DropTrigger =
  | 'too_short'
  | 'bad_conv'
  | 'bad_length'
  | 'bad_cmd'
  | 'guard_violation'
  | 'unknown_connection'
  | 'over_limit'
  | 'bad_tag'
  | 'replayed'
  | 'rate_limited'
  | 'decrypt_failed';

// The rule unions (`GuardRule`, `LimitRule`, `SecureRule`, `DropRule`, `FailRule`) are generated
// from the Rust declaration of every rule with its trigger (`npm run codegen`).
export type { DropRule, FailRule, GuardRule, LimitRule, SecureRule } from './generated/rules';

/** How the application misused a connection. */
export type Violation = 'oversized_message' | 'message_on_closed_connection' | 'empty_message' | 'send_queue_full';

/** Which layer an error comes from. */
export type ErrorType = 'library' | 'network' | 'application';

// The engine's error codes (`EngineErrorCode`: a KCP engine call failed although the segment
// guard had accepted its input; `LibraryErrorCode`: those or a caught engine panic) are
// generated from the Rust mapping of every engine error (`npm run codegen`).
export type { EngineErrorCode, LibraryErrorCode } from './generated/event-catalog';

/** `error_code` of an application error (the code the API's thrown error carries too). */
export type ApplicationErrorCode =
  | 'KCP_ERR_MESSAGE_TOO_LARGE'
  | 'KCP_ERR_CLOSED'
  | 'KCP_ERR_EMPTY_MESSAGE'
  | 'KCP_ERR_QUEUE_FULL';

/** `error_code` of a `network` error: an errno name (`EADDRINUSE`, `ECONNREFUSED`, ...; `EIO` when unknown). */
export type NetworkErrorCode = `E${string}`;

/** Listener mode. */
export type ListenerMode = 'raw' | 'secure';

/** `server` accepts inbound connections; `client` is a `connect()` endpoint. */
export type ListenerRole = 'server' | 'client';

// ---- shared field groups ---------------------------------------------------------------------

/** Fields every record carries. */
export interface EventBase {
  /** RFC 3339 UTC time with microseconds, e.g. `2025-11-26T15:13:20.004512Z`. */
  ts: string;
  /** Unix time in milliseconds (pino `time`). */
  time: number;
  /** pino level number, derived from `severity`. */
  level: PinoLevel;
  /** `severity` by name. */
  level_name: EventSeverityName;
  /** Syslog severity 0-7. */
  severity: SyslogSeverity;
  /** The event name, `kcp:<event>`. */
  name: `kcp:${string}`;
  /**
   * Per-listener sequence number: a gap means records were lost (and a `kcp:log_loss` record
   * says how many). `(observer_instance, seq)` is unique.
   */
  seq: number;
  /** Host name. */
  observer_host: string;
  /** The service name the application configured. */
  observer_service: string;
  /** This listener's run: `L` + 22 base62 digits unless the application set it. */
  observer_instance: string;
  /** kcpwatch version. */
  observer_version: string;
  /** Human-readable summary (pino `msg`). */
  msg: string;
  /**
   * How addresses in this record were transformed (`log.ipPrivacy`); absent when they are in
   * full. With `hmac` the `*_ip` fields are replaced by `*_ip_pseudonym`; with `omit` both are
   * absent; with `truncate` and `cryptopan` the `*_ip` fields hold the transformed address.
   */
  ip_privacy?: 'truncate' | 'hmac' | 'cryptopan' | 'omit';
}

/**
 * Who a connection-scoped record is about. Source and destination follow the originator, as
 * in Zeek's conn.log: for an inbound connection the peer is the source.
 */
export interface ConnectionFields {
  /** Connection id: `K` + 22 base62 digits of a UUIDv7, shared by every record of the connection. */
  uid: string;
  /**
   * Secure mode, server: the user `authenticate` named (a string answer, or `userId` / `user` /
   * `id` / `user.id` of its answer; at most 128 bytes), on every record from the
   * establishment on. Only without `ipPrivacy` (mode full).
   */
  user_id?: string;
  /** `user_id` under `ipPrivacy` hmac: its keyed pseudonym (`keyId:` + base64url). */
  user_id_pseudonym?: string;
  /** KCP conversation id (u32). */
  conv: number;
  /** Who opened it. */
  direction: EventDirection;
  /** The originator's address. */
  src_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  src_ip_pseudonym?: string;
  src_port: number;
  /** The responder's address (for inbound: the address the datagrams really arrived on). */
  dst_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  dst_ip_pseudonym?: string;
  dst_port: number;
  transport: 'udp';
  /** Community ID v1 of the UDP 5-tuple; absent when the two addresses are of different families. */
  community_id?: string;
}

/** The connection fields, absent (the record is not about a known connection). */
export interface NoConnectionFields {
  uid?: never;
  user_id?: never;
  user_id_pseudonym?: never;
  conv?: never;
  direction?: never;
  src_ip?: never;
  src_ip_pseudonym?: never;
  src_port?: never;
  dst_ip?: never;
  dst_ip_pseudonym?: never;
  dst_port?: never;
  transport?: never;
  community_id?: never;
}

/** The listener's own address. */
export interface LocalAddressFields {
  /** The bound address (may be a wildcard such as `0.0.0.0` or `::`). */
  local_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  local_ip_pseudonym?: string;
  local_port: number;
}

/** The listener's address, absent. */
export interface NoLocalAddressFields {
  local_ip?: never;
  local_ip_pseudonym?: never;
  local_port?: never;
}

/** The KCP session parameters. */
export interface KcpParamsFields {
  /** KCP nodelay mode. */
  kcp_nodelay: boolean;
  /** Internal flush interval (10-5000 ms). */
  kcp_interval_ms: number;
  /** Fast retransmit after this many duplicate ACKs (0 = off). */
  kcp_resend: number;
  /** Congestion window disabled. */
  kcp_nc: boolean;
  /** Send window in segments. */
  kcp_snd_wnd: number;
  /** Receive window in segments. */
  kcp_rcv_wnd: number;
  /** Largest datagram KCP produces, header included. */
  kcp_mtu: number;
  /** Stream mode (message boundaries not kept). */
  kcp_stream: boolean;
  /** Transmissions of one segment after which the link is declared dead. */
  dead_link: number;
  /** A connection with no valid datagram for this long closes with `idle_timeout`. */
  idle_timeout_ms: number;
  /** Largest message accepted. */
  max_message_size: number;
}

// ---- events ----------------------------------------------------------------------------------

/** `kcp:listener_started`: the socket is bound. Lane critical, severity info. */
export interface ListenerStartedEvent extends EventBase, LocalAddressFields, KcpParamsFields {
  name: 'kcp:listener_started';
  severity: 6;
  level: 30;
  level_name: 'info';
  mode: ListenerMode;
  role: ListenerRole;
  /** Connection limit. */
  max_connections: number;
}

/**
 * `kcp:listener_stopped`: the socket is closed, after every connection closed with
 * `shutdown`. Lane critical, severity info.
 */
export interface ListenerStoppedEvent extends EventBase, LocalAddressFields {
  name: 'kcp:listener_stopped';
  severity: 6;
  level: 30;
  level_name: 'info';
  /** Milliseconds the socket was bound. */
  uptime_ms: number;
  /** Connections it carried in total (inbound and outbound). */
  connections_total: number;
}

/**
 * `kcp:connection_attempted`: the first datagram of a new (address, conv), or `connect()`.
 * Lane critical, severity info.
 */
export interface ConnectionAttemptedEvent extends EventBase, ConnectionFields {
  name: 'kcp:connection_attempted';
  severity: 6;
  level: 30;
  level_name: 'info';
}

/**
 * `kcp:connection_established`: data may flow (raw mode: the first valid datagram; outbound:
 * `connect()`). Lane critical, severity info.
 */
export interface ConnectionEstablishedEvent extends EventBase, ConnectionFields {
  name: 'kcp:connection_established';
  severity: 6;
  level: 30;
  level_name: 'info';
  /** Secure mode: the wire protocol version (`docs/protocol.md`). Absent in raw mode. */
  protocol_version?: 2;
  /** Secure mode: the Noise protocol name of the cipher suite. */
  cipher_suite?: 'Noise_NK_25519_ChaChaPoly_BLAKE2s';
  /** Secure mode: the id (8 hex digits) of the server key the handshake used; during a rotation it tells which key a client pinned. */
  server_key_id?: string;
}

/**
 * `kcp:connection_failed`: an attempt that never became a connection. Sampled per reason: the
 * first attempts of each window are logged one by one, the rest are reported by one aggregate
 * record (`suppressed` > 0) carrying the uid and addresses of the last one. Lane critical,
 * severity notice. `trigger` is present when a datagram was refused, and absent otherwise
 * (see {@link FailRule}): narrow on `'trigger' in event` or on `rule`.
 */
export type ConnectionFailedEvent = ConnectionFailedFields & (RefusedAttempt | UnrefusedAttempt);

/** The fields of `kcp:connection_failed` besides `trigger` and `rule`. */
export interface ConnectionFailedFields extends EventBase, ConnectionFields {
  name: 'kcp:connection_failed';
  severity: 5;
  level: 30;
  level_name: 'notice';
  /** Why. */
  reason: FailReason;
  /** 0 for an individual record; for an aggregate, the attempts it stands for. */
  suppressed: number;
}

/** A failed attempt whose opening datagram was refused. */
export interface RefusedAttempt {
  /** The drop trigger that refused the opening datagram. */
  trigger: DropTrigger;
  /** The exact guard, limit or secure-mode rule. */
  rule: DropRule;
}

/** A failed attempt without a refused datagram: the application, a timeout or the server said no (generated with the rules). */
export type { UnrefusedAttempt } from './generated/rules';

/** `kcp:connection_state_updated`: one lifecycle transition. Lane bulk, severity info. */
export interface ConnectionStateUpdatedEvent extends EventBase, ConnectionFields {
  name: 'kcp:connection_state_updated';
  severity: 6;
  level: 30;
  level_name: 'info';
  /** The state before (never `closed`). */
  prev_state: Exclude<EventConnectionState, 'closed'>;
  /** The state after (never `attempted`). */
  state: Exclude<EventConnectionState, 'attempted'>;
}

/**
 * `kcp:connection_closed`: terminal, one summary record per connection (like a Zeek conn.log
 * line, with the real reason). Lane critical; severity info, notice (`dead_link`, `evicted`)
 * or warning (`protocol_violation`, `internal_error`).
 */
export interface ConnectionClosedEvent extends EventBase, ConnectionFields, KcpParamsFields {
  name: 'kcp:connection_closed';
  severity: 4 | 5 | 6;
  level: 30 | 40;
  level_name: 'warning' | 'notice' | 'info';
  /** Why it ended. */
  reason: EventCloseReason;
  /** Who ended it: `remote` for `peer_closed` and `protocol_violation`, else `local`. */
  initiator: EventInitiator;
  /**
   * Secure mode, `peer_closed`: the reason the peer's DISCONNECT gave (`local_closed`: its
   * application closed it, a kick or a leave; `shutdown`; `protocol_violation`; ...).
   */
  peer_reason?: EventCloseReason;
  /** The application's close code: this side's `close(code)`, or the one the peer's DISCONNECT carried. */
  close_code?: number;
  /** The application's close text (at most 123 bytes of UTF-8); written by an application, so untrusted. */
  close_text?: string;
  /** Milliseconds from establishment to close. */
  duration_ms: number;
  /** Bytes of datagrams received and accepted by the guard (wire bytes, KCP headers included). */
  bytes_received: number;
  /** Bytes of datagrams sent (wire). */
  bytes_sent: number;
  /** Datagrams received and accepted by the guard. */
  datagrams_received: number;
  /** Datagrams sent. */
  datagrams_sent: number;
  /** Application payload bytes delivered to the application. */
  payload_bytes_received: number;
  /** Application payload bytes accepted from the application. */
  payload_bytes_sent: number;
  /** Messages (or stream chunks) delivered. */
  messages_received: number;
  /** Messages accepted by `send()`. */
  messages_sent: number;
  /** Secure mode: unreliable datagrams (`sendDatagram()` on the peer) handed to the application; 0 in raw mode. */
  unreliable_received: number;
  /** Secure mode: unreliable datagrams sent with `sendDatagram()`; 0 in raw mode. */
  unreliable_sent: number;
  /** Secure mode: authentic unreliable datagrams not delivered (stale on a sequenced channel, or the receive queue full). */
  unreliable_dropped: number;
  /** KCP segments of any kind accepted by the engine. */
  segments_received: number;
  /** KCP segments of any kind sent. */
  segments_sent: number;
  /** Retransmissions on timeout. */
  segments_retransmitted: number;
  /** Fast retransmissions (duplicate ACKs). */
  segments_fast_retransmitted: number;
  /** Segments counted lost (kcp-go `LostSegs`). */
  segments_lost: number;
  /** Duplicate data segments received (kcp-go `RepeatSegs`). */
  segments_duplicate_received: number;
  acks_sent: number;
  acks_received: number;
  window_probes_sent: number;
  window_probes_received: number;
  /** Datagrams for this connection refused by the segment guard. */
  guard_drops: number;
  /** Smoothed RTT. */
  srtt_ms: number;
  /** RTT variance. */
  rttvar_ms: number;
  /** Retransmission timeout at close. */
  rto_ms: number;
  /** Smallest RTT sample (0: none). */
  rtt_min_ms: number;
  /** Largest RTT sample (0: none). */
  rtt_max_ms: number;
  /**
   * Zeek-style history: one letter per kind of activity in the order each first happened,
   * upper case for the originator. D data, A acknowledgement, W window probe, R retransmitted
   * or duplicate data, G a datagram the guard refused.
   */
  history: string;
}

/**
 * `kcp:peer_address_changed`: a secure-mode session moved to a new peer address (NAT
 * rebinding, a client changing networks) on a fresh datagram whose tag verified. The
 * connection fields carry the new addresses (and the Community ID of the new flow); the
 * `old_*` fields the previous ones, transformed by `log.ipPrivacy` like every other address.
 * Lane critical, severity notice.
 */
export interface PeerAddressChangedEvent extends EventBase, ConnectionFields {
  name: 'kcp:peer_address_changed';
  severity: 5;
  level: 30;
  level_name: 'notice';
  /** The peer's address before the move. */
  old_peer_ip?: string;
  /** With `ipPrivacy` hmac: the old address's keyed pseudonym (`keyId:` + base64url). */
  old_peer_ip_pseudonym?: string;
  old_peer_port: number;
  /** Our address the peer talked to before the move. */
  old_local_ip?: string;
  /** With `ipPrivacy` hmac: the old address's keyed pseudonym (`keyId:` + base64url). */
  old_local_ip_pseudonym?: string;
  old_local_port: number;
}

/** The datagram's session, when it had a header and a session exists for it. */
export type DroppedDatagramSession = { uid: string; conv: number } | { uid?: never; conv?: number };

/**
 * `kcp:packet_dropped`: a datagram dropped whole before reaching any engine. Sampled per
 * trigger like failed attempts. Lane bulk, severity notice. `src` is the datagram's sender,
 * whatever the direction of the connection it claims to belong to.
 */
export type PacketDroppedEvent = PacketDroppedFields & DroppedDatagramSession;

/** The fields of `kcp:packet_dropped` besides `uid` and `conv`. */
export interface PacketDroppedFields extends EventBase {
  name: 'kcp:packet_dropped';
  severity: 5;
  level: 30;
  level_name: 'notice';
  /** The datagram's sender. */
  src_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  src_ip_pseudonym?: string;
  src_port: number;
  /** Our address it arrived on. */
  dst_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  dst_ip_pseudonym?: string;
  dst_port: number;
  transport: 'udp';
  /** Community ID v1 of the 5-tuple (absent across address families). */
  community_id?: string;
  /** Why. */
  trigger: DropTrigger;
  /** The exact rule. */
  rule: DropRule;
  /** Length of the datagram. */
  datagram_bytes: number;
  /** 0 for an individual record; for an aggregate, the drops of this trigger it stands for. */
  suppressed: number;
}

/**
 * `kcp:protocol_violation`: the application misused a connection (the same refusal the API
 * reports to it). The connection fields are present while the connection is known. Lane
 * critical, severity warning.
 */
export type ProtocolViolationEvent = ProtocolViolationFields & (ConnectionFields | NoConnectionFields);

/** The fields of `kcp:protocol_violation` besides the connection. */
export interface ProtocolViolationFields extends EventBase {
  name: 'kcp:protocol_violation';
  severity: 4;
  level: 40;
  level_name: 'warning';
  /** What happened. */
  violation: Violation;
  error_type: 'application';
  /** The code the API's error carries for the same refusal. */
  error_code: ApplicationErrorCode;
  /** The size involved (message bytes). */
  size: number;
  /** The limit it broke; absent where there is none. */
  limit?: number;
}

/** The peer an error concerns when no connection is known for it. */
export interface PeerAddressFields {
  peer_ip?: string;
  /** With `ipPrivacy` hmac: the address's keyed pseudonym (`keyId:` + base64url). */
  peer_ip_pseudonym?: string;
  peer_port: number;
}

/** No peer address. */
export interface NoPeerAddressFields {
  peer_ip?: never;
  peer_ip_pseudonym?: never;
  peer_port?: never;
}

/** What a `kcp:error` is about: a connection, a peer without one, or neither. */
export type ErrorSubject =
  | (ConnectionFields & NoPeerAddressFields)
  | (NoConnectionFields & PeerAddressFields)
  | (NoConnectionFields & NoPeerAddressFields);

/** `error_type` and `error_code`, which belong together. */
export type ErrorKind =
  | { error_type: 'library'; error_code: LibraryErrorCode }
  | { error_type: 'network'; error_code: NetworkErrorCode }
  | { error_type: 'application'; error_code: ApplicationErrorCode };

/**
 * `kcp:error`: something failed (a bind or send error, an engine error, a caught engine
 * panic). Lane critical, severity error.
 */
export type ErrorEvent = ErrorFields & ErrorSubject & ErrorKind & (LocalAddressFields | NoLocalAddressFields);

/** The fields of `kcp:error` besides its subject and kind. */
export interface ErrorFields extends EventBase {
  name: 'kcp:error';
  severity: 3;
  level: 50;
  level_name: 'error';
  /** Human-readable detail, at most 160 bytes. */
  error_message: string;
  /** Errors of the same kind not logged one by one since the last record of that kind; absent when 0. */
  suppressed?: number;
}

/**
 * `kcp:stats`: periodic counters of one listener, cumulative since it started (except
 * `interval_ms` and `connections`). Lane bulk, severity info.
 */
export type StatsEvent = StatsFields & (LocalAddressFields | NoLocalAddressFields);

/** The fields of `kcp:stats` besides the listener address. */
export interface StatsFields extends EventBase {
  name: 'kcp:stats';
  severity: 6;
  level: 30;
  level_name: 'info';
  /** Milliseconds since the previous stats record (or since start). */
  interval_ms: number;
  /** Live connections. */
  connections: number;
  datagrams_received: number;
  bytes_received: number;
  datagrams_sent: number;
  bytes_sent: number;
  /** Connections opened by peers. */
  passive_opens: number;
  /** Connections opened locally. */
  active_opens: number;
  connections_closed: number;
  /** Datagrams dropped by the guard and limits, all triggers (failed attempts included). */
  datagrams_dropped: number;
  /** Failed connection attempts. */
  connections_failed: number;
  /** Send system calls that failed. */
  send_errors: number;
  /** ICMP errors reported for earlier sends. */
  icmp_errors: number;
  /** Engine panics caught. */
  panics: number;
  /** Security records lost so far, all lanes. */
  log_lost: number;
}

/**
 * `kcp:log_loss`: security records were lost (ring lane full, endpoint queue full, or an
 * `'event'` consumer too slow). Never itself lost. Lane critical, severity warning.
 */
export interface LogLossEvent extends EventBase {
  name: 'kcp:log_loss';
  severity: 4;
  level: 40;
  level_name: 'warning';
  /** `lost_critical + lost_bulk + lost_output`. */
  lost_total: number;
  /** Records one output could not deliver (its queue or spool overflowed); the others got them. */
  lost_output?: number;
  /** The output that lost them, e.g. `syslog+tcp://192.0.2.10:6514`. */
  output?: string;
  /**
   * Records lost from the critical lane. (A per-severity count for syslog "critical" would
   * share this name; no event has that severity.)
   */
  lost_critical: number;
  /** Records lost from the bulk lane. */
  lost_bulk: number;
  /** Lost records by severity; each present only when non-zero. */
  lost_severity_emergency?: number;
  lost_severity_alert?: number;
  lost_severity_critical?: number;
  lost_severity_error?: number;
  lost_severity_warning?: number;
  lost_severity_notice?: number;
  lost_severity_info?: number;
  lost_severity_debug?: number;
  /** When the first loss reported here happened (RFC 3339, microseconds). */
  since?: string;
}

/** A detector rule's stable id (`rule_id`); `docs/detection.md` documents each rule. */
export type AlertRuleId =
  | 'KCPW-001'
  | 'KCPW-002'
  | 'KCPW-003'
  | 'KCPW-004'
  | 'KCPW-005'
  | 'KCPW-006'
  | 'KCPW-007'
  | 'KCPW-008'
  | 'KCPW-009'
  | 'KCPW-010';

/** A detector rule's stable name (`rule_name`), one per {@link AlertRuleId}. */
export type AlertRuleName =
  | 'handshake_flood_source'
  | 'handshake_flood_global'
  | 'failed_handshakes_source'
  | 'conv_scan_source'
  | 'invalid_datagram_burst'
  | 'dead_link_burst'
  | 'error_rate_spike'
  | 'connection_churn_source'
  | 'per_ip_cap_reached'
  | 'decrypt_failed_source';

/**
 * The MITRE ATT&CK technique a rule detects: `T1498.001` Network Denial of Service: Direct
 * Network Flood, `T1499.002` Endpoint Denial of Service: Service Exhaustion Flood, `T1110` Brute
 * Force, `T1046` Network Service Discovery, `T1565.002` Data Manipulation: Transmitted Data
 * Manipulation.
 */
export type MitreTechnique = 'T1498.001' | 'T1499.002' | 'T1110' | 'T1046' | 'T1565.002';

/** An alert about one source (an address, or an IPv6 /64 keyed by its first address). */
export interface AlertSourceGroup {
  group: 'source';
  /** The source, transformed by `log.ipPrivacy` (absent with `hmac` and `omit`). */
  group_ip?: string;
  /** With `ipPrivacy` hmac: the source's keyed pseudonym (`keyId:` + base64url). */
  group_ip_pseudonym?: string;
}

/** An alert about the whole listener. */
export interface AlertListenerGroup {
  group: 'listener';
  group_ip?: never;
  group_ip_pseudonym?: never;
}

type AlertRuleOf<Id extends AlertRuleId, Name extends AlertRuleName, Technique extends MitreTechnique | undefined> = {
  rule_id: Id;
  rule_name: Name;
} & (Technique extends MitreTechnique ? { mitre_technique: Technique } : { mitre_technique?: never });

type WarningAlert = { severity: 4; level: 40; level_name: 'warning' };
type AlertSeverityAlert = { severity: 1; level: 60; level_name: 'alert' };

/** Each rule with its name, group, severity and technique (`detect::Rule` in Rust). */
export type AlertRule =
  | (AlertRuleOf<'KCPW-001', 'handshake_flood_source', 'T1498.001'> & AlertSourceGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-002', 'handshake_flood_global', 'T1498.001'> & AlertListenerGroup & AlertSeverityAlert)
  | (AlertRuleOf<'KCPW-003', 'failed_handshakes_source', 'T1110'> & AlertSourceGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-004', 'conv_scan_source', 'T1046'> & AlertSourceGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-005', 'invalid_datagram_burst', 'T1498.001'> & AlertListenerGroup & AlertSeverityAlert)
  | (AlertRuleOf<'KCPW-006', 'dead_link_burst', undefined> & AlertListenerGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-007', 'error_rate_spike', undefined> & AlertListenerGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-008', 'connection_churn_source', 'T1499.002'> & AlertSourceGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-009', 'per_ip_cap_reached', 'T1499.002'> & AlertSourceGroup & WarningAlert)
  | (AlertRuleOf<'KCPW-010', 'decrypt_failed_source', 'T1565.002'> & AlertSourceGroup & WarningAlert);

/**
 * `kcp:alert`: a built-in detector fired (`docs/detection.md`): one alert per episode and group,
 * then an update (`update: true`) per update interval while it lasts. No connection fields. Lane
 * critical; severity alert for `KCPW-002` and `KCPW-005`, warning otherwise. Narrow on `rule_id`
 * or `group`.
 */
export type AlertEvent = AlertFields & AlertRule;

/** The fields of `kcp:alert` besides its rule and group. */
export interface AlertFields extends EventBase, NoConnectionFields {
  name: 'kcp:alert';
  severity: 1 | 4;
  level: 40 | 60;
  level_name: 'alert' | 'warning';
  /** The threshold reached: a count per window (for `KCPW-002` the effective one, baseline included; for `KCPW-007` a percentage). */
  threshold: number;
  /** The rule's sliding window in milliseconds. */
  window_ms: number;
  /** What the window held when this alert or update was written. */
  observed: number;
  /** When the episode started (RFC 3339); the same on the alert and its updates. */
  first_seen: string;
  /** When this alert or update was raised (RFC 3339). */
  last_seen: string;
  /** `false` for the first alert of an episode, `true` for its periodic updates. */
  update: boolean;
}

// ---- the union -------------------------------------------------------------------------------

/** Any security record, discriminated by `name`. */
export type KcpEvent =
  | ListenerStartedEvent
  | ListenerStoppedEvent
  | ConnectionAttemptedEvent
  | ConnectionEstablishedEvent
  | ConnectionFailedEvent
  | ConnectionStateUpdatedEvent
  | ConnectionClosedEvent
  | PeerAddressChangedEvent
  | PacketDroppedEvent
  | ProtocolViolationEvent
  | ErrorEvent
  | StatsEvent
  | LogLossEvent
  | AlertEvent;

/** Every event name. */
export type KcpEventName = KcpEvent['name'];

/** Event type by name: `KcpEventMap['kcp:connection_closed']` is `ConnectionClosedEvent`. */
export type KcpEventMap = { [E in KcpEvent as E['name']]: E };
