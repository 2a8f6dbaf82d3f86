/**
 * Decoding the packed record batches the I/O thread publishes (layout documented in the
 * repository's `crates/kcpwatch/src/delivery.rs`). Messages are views into the batch: no copy per message.
 */

export const enum RecordKind {
  Accepted = 1,
  Message = 2,
  Closed = 3,
  Progress = 4,
  Error = 5,
  Established = 6,
  ConnectFailed = 7,
  AuthRequest = 8,
  Datagram = 9,
}

/** Why a secure-mode handshake failed (the `reason` of `kcp:connection_failed`). */
export type FailReason =
  | 'handshake_timeout'
  | 'invalid_cookie'
  | 'expired_cookie'
  | 'auth_rejected'
  | 'rate_limited'
  | 'capacity'
  | 'version_mismatch'
  | 'malformed'
  /** The server does not hold the key the client pinned (`serverKey`): an old or wrong key. */
  | 'unknown_server_key'
  /** The server's answer did not authenticate against the pinned key: not that server. */
  | 'server_auth_failed'
  /** A handshake message did not decrypt. */
  | 'decrypt_failed'
  /** Client: ICMP reported the server's address unreachable for two HELLOs (rule `icmp_unreachable`). */
  | 'unreachable'
  /** The server shut down during the handshake (server: rule `shutdown`; client: a REJECT `shutdown`, rule `server_rejected`). */
  | 'shutdown'
  /** Server: the client never confirmed the ACCEPT within the handshake timeout, or said DISCONNECT first (rule `handshake_abandoned` or `peer_disconnect`); never announced. */
  | 'handshake_abandoned'
  /** `stream: true` on one side only: the server refuses the HELLO with a REJECT `stream_mismatch` (server: trigger `bad_cmd`, rule `hello_stream`; client: rule `server_rejected`). */
  | 'stream_mismatch';

/** A validated client's token, waiting for the server application's `authenticate`. */
export interface AuthRequestRecord {
  id: number;
  uid: string;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  token: Buffer;
}

export type CloseReason =
  | 'idle_timeout'
  | 'dead_link'
  | 'peer_closed'
  | 'local_closed'
  | 'shutdown'
  | 'evicted'
  | 'protocol_violation'
  | 'internal_error'
  /** Client only: the secure handshake never completed (the `error` event says why). */
  | 'connect_failed';

const closeReasons: readonly CloseReason[] = [
  'idle_timeout',
  'dead_link',
  'peer_closed',
  'local_closed',
  'shutdown',
  'evicted',
  'protocol_violation',
  'internal_error',
];

export function closeReasonFromCode(code: number): CloseReason {
  return closeReasons[code - 1] ?? 'internal_error';
}

/** What is known about a connection when it closes (the connection summary). */
export interface CloseInfo {
  reason: CloseReason;
  initiator: 'local' | 'remote';
  durationMs: number;
  datagramsIn: number;
  bytesIn: number;
  datagramsOut: number;
  bytesOut: number;
  payloadBytesIn: number;
  payloadBytesOut: number;
  messagesIn: number;
  messagesOut: number;
  retransmittedSegments: number;
  guardDrops: number;
  srttMs: number;
  rttvarMs: number;
  rtoMs: number;
  /**
   * The application's close code: the one this side gave `connection.close(code, reason)`, or
   * (secure mode, reason `peer_closed`) the one the peer's application gave, carried by its
   * DISCONNECT. Absent when none was given. Raw KCP cannot carry it: a raw peer never sees it.
   */
  code?: number;
  /** The application's close text that came with `code` (this side's, or the secure peer's). */
  description?: string;
  /**
   * Secure mode, reason `peer_closed`: why the peer closed, as its DISCONNECT said:
   * `local_closed` (its application closed the connection: a kick or a leave), `shutdown`
   * (its server or client is closing), `protocol_violation`, `idle_timeout`, ...
   */
  peerReason?: CloseReason;
  /** Secure mode: unreliable datagrams sent with `sendDatagram()` (0 in raw mode). */
  unreliableSent: number;
  /** Secure mode: unreliable datagrams delivered to the application or held for it; with `unreliableDropped`, every one that arrived. */
  unreliableReceived: number;
  /** Secure mode: datagrams that arrived and were discarded unread: stale on a sequenced channel, or a full queue (the connection's 256 unread ones included). */
  unreliableDropped: number;
}

/** Why a secure handshake failed, with the server application's refusal code when it gave one. */
export interface ConnectFailedRecord {
  reason: FailReason;
  /** `auth_rejected` only: the code the server's `authenticate` refused with (absent: none). */
  appCode?: number;
}

/**
 * A connection's size ceilings as its session has them: in secure mode they follow the MTU the
 * handshake agreed, which may be smaller than this side's `mtu`.
 */
export interface ConnectionLimits {
  /** The largest message (message mode). */
  maxMessageSize: number;
  /** The largest unreliable datagram payload (secure mode: agreed MTU − 31; 0 in raw mode). */
  maxDatagramSize: number;
}

export interface AcceptedRecord {
  conv: number;
  remotePort: number;
  localPort: number;
  remoteAddress: string;
  localAddress: string;
  uid: string;
  /** Absent from older addons. */
  limits?: ConnectionLimits;
}

export interface RecordVisitor {
  accepted(handle: number, record: AcceptedRecord): void;
  message(handle: number, data: Buffer): void;
  datagram(handle: number, channel: number, data: Buffer): void;
  closed(handle: number, info: CloseInfo): void;
  progress(handle: number, ackedBytes: number): void;
  error(handle: number, code: string, message: string): void;
  established(handle: number, conv: number, limits?: ConnectionLimits): void;
  connectFailed(handle: number, reason: FailReason, appCode?: number): void;
  authRequest(request: AuthRequestRecord): void;
}

function shortString(buf: Buffer, at: number): [string, number] {
  const len = buf[at]!;
  return [buf.toString('utf8', at + 1, at + 1 + len), at + 1 + len];
}

function readLimits(buf: Buffer, at: number): ConnectionLimits {
  return { maxMessageSize: buf.readUInt32LE(at), maxDatagramSize: buf.readUInt32LE(at + 4) };
}

function u64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}

/**
 * Rethrows an application's error on its own tick, after the library finished what it was
 * doing: `uncaughtException` (or the crash) sees it as it would any handler's error.
 */
export function rethrowLater(error: unknown): void {
  process.nextTick(() => {
    throw error;
  });
}

/**
 * Dispatches every record of a batch. An exception from a visitor (an application handler)
 * does not stop the batch: the rest is dispatched, and each exception is rethrown on its own
 * tick once the batch is done.
 */
export function decodeRecords(buf: Buffer, visit: RecordVisitor): void {
  let at = 0;
  while (at + 9 <= buf.length) {
    const kind = buf[at]!;
    const handle = buf.readUInt32LE(at + 1);
    const len = buf.readUInt32LE(at + 5);
    const start = at + 9;
    const end = start + len;
    at = end;
    try {
      dispatch(buf, kind, handle, start, end, visit);
    } catch (error) {
      rethrowLater(error);
    }
  }
}

function dispatch(buf: Buffer, kind: number, handle: number, start: number, end: number, visit: RecordVisitor): void {
  {
    switch (kind) {
      case RecordKind.Message:
        visit.message(handle, buf.subarray(start, end));
        break;
      case RecordKind.Datagram:
        visit.datagram(handle, buf[start]!, buf.subarray(start + 1, end));
        break;
      case RecordKind.Accepted: {
        const conv = buf.readUInt32LE(start);
        const remotePort = buf.readUInt16LE(start + 4);
        const localPort = buf.readUInt16LE(start + 6);
        const [remoteAddress, a] = shortString(buf, start + 8);
        const [localAddress, b] = shortString(buf, a);
        const [uid, c] = shortString(buf, b);
        const record: AcceptedRecord = { conv, remotePort, localPort, remoteAddress, localAddress, uid };
        if (c + 8 <= end) record.limits = readLimits(buf, c);
        visit.accepted(handle, record);
        break;
      }
      case RecordKind.Closed: {
        let p = start + 2;
        const next = () => {
          const v = u64(buf, p);
          p += 8;
          return v;
        };
        const info: CloseInfo = {
          reason: closeReasonFromCode(buf[start]!),
          initiator: buf[start + 1] === 1 ? 'remote' : 'local',
          durationMs: next(),
          datagramsIn: next(),
          bytesIn: next(),
          datagramsOut: next(),
          bytesOut: next(),
          payloadBytesIn: next(),
          payloadBytesOut: next(),
          messagesIn: next(),
          messagesOut: next(),
          retransmittedSegments: next(),
          guardDrops: next(),
          srttMs: buf.readUInt32LE(p),
          rttvarMs: buf.readUInt32LE(p + 4),
          rtoMs: buf.readUInt32LE(p + 8),
          unreliableSent: 0,
          unreliableReceived: 0,
          unreliableDropped: 0,
        };
        p += 12;
        // Older addons end here; newer ones add the peer's reason and the application's close.
        if (p + 4 <= end) {
          const peerReason = buf[p]!;
          const code = buf.readUInt16LE(p + 1);
          const [text, afterText] = shortString(buf, p + 3);
          if (afterText + 24 <= end) {
            p = afterText;
            info.unreliableSent = next();
            info.unreliableReceived = next();
            info.unreliableDropped = next();
          }
          if (peerReason !== 0) info.peerReason = closeReasonFromCode(peerReason);
          if (code !== 0) {
            info.code = code;
            if (text !== '') info.description = text;
          }
        }
        visit.closed(handle, info);
        break;
      }
      case RecordKind.Progress:
        visit.progress(handle, u64(buf, start));
        break;
      case RecordKind.Error: {
        const [code, p] = shortString(buf, start);
        const mlen = buf.readUInt16LE(p);
        visit.error(handle, code, buf.toString('utf8', p + 2, p + 2 + mlen));
        break;
      }
      case RecordKind.Established:
        visit.established(handle, buf.readUInt32LE(start), start + 12 <= end ? readLimits(buf, start + 4) : undefined);
        break;
      case RecordKind.ConnectFailed: {
        const [reason, p] = shortString(buf, start);
        const appCode = p + 2 <= end ? buf.readUInt16LE(p) : 0;
        visit.connectFailed(handle, reason as FailReason, appCode === 0 ? undefined : appCode);
        break;
      }
      case RecordKind.AuthRequest: {
        const id = u64(buf, start);
        const remotePort = buf.readUInt16LE(start + 8);
        const localPort = buf.readUInt16LE(start + 10);
        const [remoteAddress, a] = shortString(buf, start + 12);
        const [localAddress, b] = shortString(buf, a);
        const [uid, c] = shortString(buf, b);
        const tokenLen = buf.readUInt16LE(c);
        // Copied: the application may keep the token beyond this batch.
        const token = Buffer.from(buf.subarray(c + 2, c + 2 + tokenLen));
        visit.authRequest({ id, uid, remoteAddress, remotePort, localAddress, localPort, token });
        break;
      }
      default:
        // A newer addon may add kinds; skipping keeps the stream aligned.
        break;
    }
  }
}
