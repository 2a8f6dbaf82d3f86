/** The server: one UDP socket accepting KCP conversations. */

import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';

import { Connection } from './connection';
import {
  KcpAlreadyListeningError,
  KcpClosedError,
  KcpError,
  KcpInvalidOptionError,
  KcpResolveError,
  securityRecordOf,
} from './errors';
import {
  resolveHighWaterMark,
  resolveKcpOptions,
  resolveLimits,
  resolveMaxReceiveQueueBytes,
  resolveMode,
  resolvePort,
  resolveTimeout,
  type KcpOptions,
  type LimitOptions,
  type Mode,
  type ResolvedKcpOptions,
} from './options';
import type { KcpEvent } from './event-types';
import { eventCallback, parseEvents, resolveLogOptions, type LogOptions, type NativeLogOptions } from './log';
import { rethrowLater, type AcceptedRecord, type AuthRequestRecord, type CloseInfo, type FailReason } from './records';
import { resolveDetection, type DetectionOptions } from './detection';
import type { NativeEndpointOptions, NativeStats } from './native';
import { Transport, type TransportOwner } from './transport';
import { renderMetrics } from './metrics';

/** Who presented a token to `authenticate`: the validated address and the connection id to be. */
export interface AuthPeer {
  /** The connection id the session will have if accepted (also in `kcp:connection_attempted`). */
  id: string;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/**
 * Decides whether a client's token (a game ticket, a signed join token) may open a session.
 * Return or resolve `true` to accept. A throw, a rejection or an answer later than
 * `authTimeout` refuses, as does anything but `true`.
 */
export type Authenticate = (token: Buffer, peer: AuthPeer) => boolean | Promise<boolean>;

export interface ServerOptions extends KcpOptions {
  /**
   * `'secure'` (the default): a handshake that validates the client's address before any
   * state exists, tagged datagrams, replay protection, limits (`docs/protocol.md`).
   * `'raw'`: plain KCP, interoperable with kcp-go and ikcp clients.
   */
  mode?: Mode;
  /** Secure mode: checks each client's token before its session exists. */
  authenticate?: Authenticate;
  /** Secure mode: milliseconds `authenticate` has to answer (default 5000). */
  authTimeout?: number;
  /** Secure mode: a keepalive goes out after this many ms of silence (default: a quarter of `idleTimeout`). */
  keepalive?: number;
  /** Connection and handshake limits (each refusal is counted and logged). */
  limits?: LimitOptions;
  /** The built-in detectors (`docs/detection.md`); `false` turns them off. */
  detection?: DetectionOptions | false;
  /** Address to bind (default `'0.0.0.0'`; `'::'` is dual-stack). */
  host?: string;
  /** Port to bind (default 0: any free port). */
  port?: number;
  /** With `host: '::'`, refuse IPv4. */
  ipv6Only?: boolean;
  /** Share the port with other sockets (SO_REUSEPORT) for sharding. */
  reusePort?: boolean;
  /** Most connections at once (default 10000); new sources beyond it are dropped and counted. */
  maxConnections?: number;
  /** Bytes of undelivered messages buffered for a blocked event loop before the engines push back (default 64 MiB). */
  deliveryLimit?: number;
  /**
   * Security event logging (default: canonical NDJSON to stdout, written by a Rust thread).
   * `false` turns it off: no records are produced at all.
   */
  log?: LogOptions | false;
}

/** The options of `server.close()`. */
export interface ServerCloseOptions {
  /**
   * Milliseconds each connection may keep flushing what it had queued (and waiting for the
   * peer's acknowledgements) before it is ended; default: the connections' `linger` option
   * (3000). 0 ends every connection at once.
   */
  linger?: number;
  /** End every connection at once, dropping what is queued (as `linger: 0`). */
  force?: boolean;
}

/** Margin over the linger bound for the last close records to arrive before the hard stop. */
const CLOSE_MARGIN_MS = 1000;

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface ServerEvents {
  listening: [address: AddressInfo];
  connection: [connection: Connection];
  close: [];
  error: [error: KcpError];
  /** A security record (`kcp:*`). Listening turns delivery to JavaScript on. */
  event: [event: KcpEvent];
}

/** A host option: a non-empty string (an IP literal or a name to resolve). */
export function resolveHostOption(host: unknown): string {
  if (typeof host !== 'string' || host.length === 0) {
    throw new KcpInvalidOptionError(`host must be a non-empty string (an IP address or a host name), got ${JSON.stringify(host) ?? String(host)}`);
  }
  return host;
}

function resolveLinger(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw new KcpInvalidOptionError(`linger must be an integer in 0..${2 ** 31 - 1}, got ${String(value)}`);
  }
  return value;
}

export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    const { address } = await lookup(host);
    return address;
  } catch (err) {
    throw new KcpResolveError(`cannot resolve ${host}`, { cause: err });
  }
}

export function endpointOptions(
  host: string,
  port: number,
  kcp: ResolvedKcpOptions,
  extra: {
    ipv6Only?: boolean;
    reusePort?: boolean;
    maxConnections?: number;
    deliveryLimit?: number;
    mode?: Mode;
    authenticate?: unknown;
    authTimeout?: number;
    handshakeTimeout?: number;
    keepalive?: number;
    limits?: LimitOptions;
    detection?: DetectionOptions | false;
  },
  log?: NativeLogOptions,
): NativeEndpointOptions {
  if (extra.authenticate !== undefined && typeof extra.authenticate !== 'function') {
    throw new KcpInvalidOptionError('authenticate must be a function');
  }
  const mode = resolveMode(extra.mode);
  if (mode === 'raw' && extra.authenticate !== undefined) {
    throw new KcpInvalidOptionError("authenticate needs mode 'secure': raw KCP has no handshake to carry a token");
  }
  const count = (v: unknown, name: string, fallback: number) => {
    const value = v ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
      throw new KcpInvalidOptionError(`${name} must be a positive integer, got ${String(value)}`);
    }
    return value;
  };
  return {
    host,
    port,
    ipv6Only: extra.ipv6Only ?? false,
    reusePort: extra.reusePort ?? false,
    maxConnections: count(extra.maxConnections, 'maxConnections', 10000),
    deliveryLimit: count(extra.deliveryLimit, 'deliveryLimit', 64 * 1024 * 1024),
    session: kcp,
    log,
    mode,
    requireAuth: extra.authenticate !== undefined,
    authTimeout: resolveTimeout(extra.authTimeout, 'authTimeout', 5000),
    handshakeTimeout: resolveTimeout(extra.handshakeTimeout, 'handshakeTimeout', 10000),
    keepalive: extra.keepalive === undefined ? 0 : resolveTimeout(extra.keepalive, 'keepalive', 0),
    limits: resolveLimits(extra.limits),
    detection: resolveDetection(extra.detection),
  };
}

/** A KCP server. Create it with {@link createServer}. */
export class Server extends EventEmitter<ServerEvents> implements TransportOwner {
  readonly mode: Mode;
  private readonly options: ServerOptions;
  private readonly kcp: ResolvedKcpOptions;
  private readonly highWaterMark: number;
  private readonly maxReceiveQueueBytes: number;
  private transport: Transport | undefined;
  /** A `listen()` is under way or done: one listener per server, whatever the interleaving. */
  private listenClaimed = false;
  /** Resolves the wait of a lingering `close()` once the last connection closed. */
  private onLastClose: (() => void) | undefined;
  private readonly connections = new Map<number, Connection>();
  private _address: AddressInfo | null = null;
  private closing: Promise<void> | undefined;
  private readonly log: NativeLogOptions | undefined;
  private readonly onEvent: ((event: KcpEvent) => void) | undefined;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = { ...options };
    this.mode = resolveMode(options.mode);
    if (options.authenticate !== undefined && typeof options.authenticate !== 'function') {
      throw new KcpInvalidOptionError('authenticate must be a function');
    }
    if (this.mode === 'raw' && options.authenticate !== undefined) {
      throw new KcpInvalidOptionError("authenticate needs mode 'secure': raw KCP has no handshake to carry a token");
    }
    resolveLimits(options.limits);
    resolveDetection(options.detection);
    resolveTimeout(options.authTimeout, 'authTimeout', 5000);
    if (options.keepalive !== undefined) resolveTimeout(options.keepalive, 'keepalive', 0);
    this.kcp = resolveKcpOptions(options);
    this.highWaterMark = resolveHighWaterMark(options.highWaterMark, this.kcp.maxSendQueueBytes);
    this.maxReceiveQueueBytes = resolveMaxReceiveQueueBytes(options.maxReceiveQueueBytes);
    // Every option is checked here, not first at listen().
    endpointOptions('0.0.0.0', 0, this.kcp, this.options, undefined);
    if (options.port !== undefined) resolvePort(options.port);
    if (options.host !== undefined) resolveHostOption(options.host);
    this.log = resolveLogOptions(options.log, { destination: 'stdout' });
    this.onEvent = eventCallback(options.log);
    // Records cross into JavaScript only while someone wants them.
    const emitter = this as EventEmitter;
    emitter.on('newListener', (name: string | symbol) => {
      if (name === 'event') this.transport?.setEventDelivery(true);
    });
    emitter.on('removeListener', (name: string | symbol) => {
      if (name === 'event') this.transport?.setEventDelivery(this.wantsEvents());
    });
  }

  private wantsEvents(): boolean {
    return this.onEvent !== undefined || this.listenerCount('event') > 0;
  }

  /** Binds the socket. Resolves with the bound address. */
  async listen(port?: number, host?: string): Promise<AddressInfo>;
  async listen(options?: { port?: number; host?: string }): Promise<AddressInfo>;
  async listen(portOrOptions?: number | { port?: number; host?: string }, host?: string): Promise<AddressInfo> {
    if (this.closing) throw new KcpClosedError('server is closed');
    if (this.listenClaimed) {
      throw new KcpAlreadyListeningError(this.transport ? 'server is already listening' : 'server is already binding (listen() was called before)');
    }
    const opts = typeof portOrOptions === 'object' && portOrOptions !== null ? portOrOptions : { port: portOrOptions, host };
    const port = resolvePort(opts.port ?? this.options.port);
    const requested = resolveHostOption(opts.host ?? this.options.host ?? '0.0.0.0');
    // Claimed before the first await: a second listen() or a close() during the lookup
    // cannot make a second listener.
    this.listenClaimed = true;
    let address: string;
    try {
      address = await resolveHost(requested);
    } catch (err) {
      this.listenClaimed = false;
      throw err;
    }
    if (this.closing) throw new KcpClosedError('server was closed while listen() resolved its host');
    const log = this.log && { ...this.log, deliverToJs: this.wantsEvents() };
    const native = endpointOptions(address, port, this.kcp, this.options, log);
    try {
      this.transport = Transport.listen(this, native);
    } catch (err) {
      this.listenClaimed = false;
      const error = err instanceof KcpError ? err : new KcpError(String(err));
      // The bind failure's `kcp:error` record went to the log destination already; event
      // listeners get it too.
      const record = securityRecordOf(error);
      if (record && this.wantsEvents()) this.events(parseEvents(Buffer.from(`${record}\n`)));
      if (this.listenerCount('error') > 0) this.emit('error', error);
      throw error;
    }
    if (log?.deliverToJs) this.transport.setEventDelivery(true);
    const bound = this.transport.native.address();
    this._address = { address: bound.address, family: bound.family as AddressInfo['family'], port: bound.port };
    this.emit('listening', this._address);
    return this._address;
  }

  /** The bound address, or null before `listen()` and after `close()`. */
  address(): AddressInfo | null {
    return this._address;
  }

  /** Live connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Counters of the socket and its engines. */
  stats(): NativeStats {
    if (!this.transport || this.transport.native.closed) throw new KcpClosedError('server is not listening');
    return this.transport.native.stats();
  }

  /**
   * The counters of `stats()` in Prometheus text exposition format 0.0.4, labelled with this
   * listener's address (`docs/metrics.md` lists every metric).
   */
  metrics(): string {
    const stats = this.stats();
    const a = this._address;
    const listener = a ? (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`) : '';
    return renderMetrics(stats, { listener });
  }

  /** Lets the process exit while the server is listening. */
  unref(): this {
    this.transport?.native.unref();
    return this;
  }

  /** Keeps the process alive while the server is listening (the default). */
  ref(): this {
    this.transport?.native.ref();
    return this;
  }

  /**
   * Closes every connection with reason `shutdown`, stops the I/O thread and releases the
   * port; accepts no new connection from the call on. Like TCP's graceful close, each
   * connection first delivers what it had queued: it closes once the peer acknowledged
   * everything, or after `linger` ms (default: the `linger` option), whichever comes first.
   * `{ force: true }` (or `linger: 0`) ends them at once. Never blocks the event loop: the
   * I/O thread flushes and waits. Every connection's `close` fires before the server's.
   * Idempotent: later calls return the first call's promise.
   */
  close(options: ServerCloseOptions = {}): Promise<void> {
    if (!options || typeof options !== 'object') throw new KcpInvalidOptionError('close() takes an options object');
    const force = options.force ?? false;
    if (typeof force !== 'boolean') throw new KcpInvalidOptionError(`force must be a boolean, got ${String(force)}`);
    const linger = force ? 0 : options.linger === undefined ? this.kcp.linger : resolveLinger(options.linger);
    if (!this.closing) {
      this.closing = Promise.resolve().then(async () => {
        const transport = this.transport;
        if (transport && linger > 0 && !transport.native.closed) {
          transport.closeAll(linger);
          await this.lastClose(linger + CLOSE_MARGIN_MS);
        }
        if (transport) transport.close();
        this._address = null;
        this.emit('close');
      });
    }
    return this.closing;
  }

  /** Resolves when no connection is left, or after `timeoutMs`. */
  private lastClose(timeoutMs: number): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.onLastClose = undefined;
        resolve();
      }
      this.onLastClose = done;
    });
  }

  /** @internal */
  accepted(handle: number, r: AcceptedRecord): void {
    const transport = this.transport;
    if (!transport) return;
    const connection = new Connection({
      transport,
      handle,
      id: r.uid,
      conv: r.conv,
      remoteAddress: r.remoteAddress,
      remotePort: r.remotePort,
      localAddress: r.localAddress,
      localPort: r.localPort,
      maxMessageSize: this.kcp.maxMessageSize,
      maxSendQueueBytes: this.kcp.maxSendQueueBytes,
      highWaterMark: this.highWaterMark,
      maxReceiveQueueBytes: this.maxReceiveQueueBytes,
      stream: this.kcp.stream,
    });
    this.connections.set(handle, connection);
    // Accepted just before close(): the native side closes it with the rest; the application
    // is not handed a connection that is already ending.
    if (this.closing) return;
    this.emit('connection', connection);
  }

  /** @internal */
  message(handle: number, data: Buffer): void {
    this.connections.get(handle)?._message(data);
  }

  /** @internal */
  closed(handle: number, info: CloseInfo): void {
    const connection = this.connections.get(handle);
    if (!connection) return;
    this.connections.delete(handle);
    if (this.connections.size === 0) this.onLastClose?.();
    connection._closed(info);
  }

  /** @internal */
  progress(handle: number, ackedBytes: number): void {
    this.connections.get(handle)?._progress(ackedBytes);
  }

  /** @internal */
  error(handle: number, code: string, message: string): void {
    this.connections.get(handle)?._error(code, message);
  }

  /** @internal Secure mode: only clients have handshakes of their own. */
  established(_handle: number, _conv: number): void {}

  /** @internal */
  connectFailed(_handle: number, _reason: FailReason): void {}

  /** @internal Runs `authenticate` and answers the native side; never throws. */
  authRequest(request: AuthRequestRecord): void {
    const authenticate = this.options.authenticate;
    const transport = this.transport;
    if (!transport) return;
    const answer = (accept: boolean) => {
      try {
        if (!transport.native.closed) transport.native.resolveAuth(request.id, accept);
      } catch {
        // Closed meanwhile: the pending handshake ended with the endpoint.
      }
    };
    const peer: AuthPeer = {
      id: request.uid,
      remoteAddress: request.remoteAddress,
      remotePort: request.remotePort,
      localAddress: request.localAddress,
      localPort: request.localPort,
    };
    const refused = (err: unknown) => {
      answer(false);
      if (this.listenerCount('error') > 0) {
        this.emit('error', new KcpError('authenticate threw; the client was refused', 'KCP_ERR_AUTHENTICATE', { cause: err }));
      }
    };
    try {
      const verdict = authenticate ? authenticate(request.token, peer) : true;
      if (typeof verdict === 'object' && verdict !== null && typeof (verdict as PromiseLike<boolean>).then === 'function') {
        Promise.resolve(verdict).then((ok) => answer(ok === true), refused);
      } else {
        answer(verdict === true);
      }
    } catch (err) {
      refused(err);
    }
  }

  /** @internal */
  events(events: KcpEvent[]): void {
    // A throwing handler does not cost the other records: its error surfaces afterwards.
    for (const event of events) {
      try {
        if (this.onEvent) this.onEvent(event);
        this.emit('event', event);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }
}

/** Creates a server; `onConnection` is added as a `connection` listener. */
export function createServer(options?: ServerOptions, onConnection?: (connection: Connection) => void): Server {
  const server = new Server(options);
  if (onConnection) server.on('connection', onConnection);
  return server;
}
