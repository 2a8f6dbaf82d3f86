/** The client: `connect()` opens a KCP connection (secure mode by default) on its own UDP socket. */

import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';

import { Connection } from './connection';
import { KcpInvalidOptionError } from './errors';
import { resolveHighWaterMark, resolveKcpOptions, resolveMode, resolvePort, type KcpOptions, type Mode } from './options';
import type { AuthRequestRecord, FailReason } from './records';
import type { KcpEvent } from './event-types';
import { eventCallback, resolveLogOptions, type LogOptions } from './log';
import type { AcceptedRecord, CloseInfo } from './records';
import { endpointOptions } from './server';
import { Transport, type TransportOwner } from './transport';

export interface ConnectOptions extends KcpOptions {
  /** Server address: an IP literal or `'localhost'`. */
  host?: string;
  /** Server port. */
  port: number;
  /** Raw mode: the conversation id; default random. Both sides must agree. (Secure mode: the server assigns it.) */
  conv?: number;
  /**
   * `'secure'` (the default): the kcpwatch handshake (`docs/protocol.md`); the connection is
   * `connecting` until the server accepts (`connect` event, `ready()`).
   * `'raw'`: plain KCP to any KCP server (kcp-go, ikcp, a kcpwatch server in raw mode).
   */
  mode?: Mode;
  /** Secure mode: the application token the server's `authenticate` checks (at most 1024 bytes). */
  token?: Uint8Array | string;
  /** Secure mode: give up a handshake without answer after this many ms (default 10000). */
  handshakeTimeout?: number;
  /** Secure mode: a keepalive goes out after this many ms of silence (default: a quarter of the server's idle timeout). */
  keepalive?: number;
  /**
   * Security event logging for this connection's endpoint. Off by default for clients (a game
   * client rarely has a SIEM); pass options to turn it on, e.g. `{ onEvent }`.
   */
  log?: LogOptions | false;
}

class ClientOwner implements TransportOwner {
  connection: Connection | undefined;
  constructor(private readonly onEvent: ((event: KcpEvent) => void) | undefined) {}
  events(events: KcpEvent[]): void {
    if (this.onEvent) for (const event of events) this.onEvent(event);
  }
  accepted(_handle: number, _record: AcceptedRecord): void {}
  message(_handle: number, data: Buffer): void {
    this.connection?._message(data);
  }
  closed(_handle: number, info: CloseInfo): void {
    this.connection?._closed(info);
  }
  progress(_handle: number, ackedBytes: number): void {
    this.connection?._progress(ackedBytes);
  }
  error(_handle: number, code: string, message: string): void {
    this.connection?._error(code, message);
  }
  established(_handle: number, conv: number): void {
    this.connection?._established(conv);
  }
  connectFailed(_handle: number, reason: FailReason): void {
    this.connection?._connectFailed(reason);
  }
  authRequest(_request: AuthRequestRecord): void {}
}

/**
 * Opens a connection. In secure mode (the default) the handshake starts and the connection is
 * `connecting`: messages sent now leave once it completes; `connect` (or `await ready()`)
 * says it did, and a failure is a typed error (`KcpHandshakeTimeoutError`,
 * `KcpAuthRejectedError`, `KcpServerFullError`, `KcpRateLimitedError`,
 * `KcpVersionMismatchError`) on `error` and from `ready()`, then `close` with reason
 * `connect_failed`. Nothing reconnects by itself: call `connect()` again to retry.
 * In raw mode data may be sent at once; there is no handshake.
 */
export function connect(options: ConnectOptions): Connection {
  if (!options || typeof options !== 'object') throw new KcpInvalidOptionError('connect() takes an options object');
  const mode = resolveMode(options.mode);
  const token = options.token === undefined ? undefined : typeof options.token === 'string' ? Buffer.from(options.token) : options.token;
  if (token !== undefined && !(token instanceof Uint8Array)) throw new KcpInvalidOptionError('token must be a string, Buffer or Uint8Array');
  if (token !== undefined && mode === 'raw') throw new KcpInvalidOptionError("token needs mode 'secure': raw KCP has no handshake to carry it");
  if (token !== undefined && token.length > 1024) throw new KcpInvalidOptionError(`token of ${token.length} bytes exceeds 1024`);
  const kcp = resolveKcpOptions(options);
  const highWaterMark = resolveHighWaterMark(options.highWaterMark);
  const port = resolvePort(options.port);
  if (port === 0) throw new KcpInvalidOptionError('port must be 1..65535');
  const requested = options.host ?? '127.0.0.1';
  const host = requested === 'localhost' ? '127.0.0.1' : requested;
  if (!isIP(host)) {
    throw new KcpInvalidOptionError(`host must be an IP address or 'localhost', got ${requested} (resolve names with dns.lookup first)`);
  }
  const conv = options.conv ?? randomInt(1, 2 ** 32 - 1);
  if (!Number.isInteger(conv) || conv < 0 || conv > 0xffff_ffff) {
    throw new KcpInvalidOptionError(`conv must be a u32, got ${String(conv)}`);
  }
  const log = resolveLogOptions(options.log ?? false, { destination: 'none' });
  const onEvent = eventCallback(options.log);
  const owner = new ClientOwner(onEvent);
  const bindHost = isIP(host) === 6 ? '::' : '0.0.0.0';
  const transport = Transport.client(
    owner,
    endpointOptions(
      bindHost,
      0,
      kcp,
      { maxConnections: 1, mode, handshakeTimeout: options.handshakeTimeout, keepalive: options.keepalive },
      log && { ...log, deliverToJs: onEvent !== undefined },
    ),
    host,
    port,
  );
  let info;
  try {
    info = transport.native.connect(host, port, conv, undefined, token && Buffer.from(token.buffer, token.byteOffset, token.length));
  } catch (err) {
    transport.close();
    throw err;
  }
  const connection = new Connection({
    transport,
    handle: info.handle,
    id: info.uid,
    conv: info.conv,
    remoteAddress: info.remoteAddress,
    remotePort: info.remotePort,
    localAddress: info.localAddress,
    localPort: info.localPort,
    maxMessageSize: kcp.maxMessageSize,
    maxSendQueueBytes: kcp.maxSendQueueBytes,
    highWaterMark,
    stream: kcp.stream,
    connecting: mode === 'secure',
    // The endpoint exists for this one connection; its thread stops with it.
    onClosed: () => queueMicrotask(() => transport.close()),
  });
  owner.connection = connection;
  return connection;
}
