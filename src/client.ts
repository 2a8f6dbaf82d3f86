/**
 * The client side. `createClient()` opens one client endpoint (one UDP socket, one native I/O
 * thread) that carries any number of connections to one server, up to `maxConnections`:
 * bots, load drivers and benchmarks open thousands from one process. `connect()` is the
 * one-connection case: a client whose endpoint closes with its only connection.
 */

import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';

import { Connection, PendingTransport, emptyCloseInfo } from './connection';
import { maxDatagramSize } from './datagram';
import { KcpClosedError, KcpConnectError, KcpConnectionLimitError, KcpError, KcpInvalidOptionError, KcpResolveError, fromNative } from './errors';
import {
  checkKeys,
  checkMessageSize,
  describe,
  kcpOptionKeys,
  keysOf,
  optionsObject,
  resolveHighWaterMark,
  resolveKcpOptions,
  resolveMaxReceiveQueueBytes,
  resolveMode,
  resolvePort,
  type KcpOptions,
  type Mode,
  type ResolvedKcpOptions,
} from './options';
import { rethrowLater, type AuthRequestRecord, type FailReason } from './records';
import type { KcpEvent } from './event-types';
import { eventCallback, resolveLogOptions, type LogOptions } from './log';
import type { AcceptedRecord, CloseInfo, ConnectionLimits } from './records';
import { endpointOptions, resolveHost, resolveHostOption } from './endpoint-options';
import { statsFromValues } from './generated/stats';
import type { AddressInfo, ServerStats } from './server';
import { Transport } from './transport';
import type { NativeEndpointOptions } from './native';

/**
 * The options of {@link createClient}: the server, the mode, and what every connection shares.
 *
 * The server sees every connection of one client from one address and port, so its
 * per-address limits (`limits.maxConnectionsPerIp`, default 64, and the handshake rate per
 * address, default 20/s with a burst of 40) apply to all of them together: a load test that
 * opens more from one machine raises those limits on the server (or spreads the clients over
 * several source addresses).
 */
export interface ClientOptions extends KcpOptions {
  /**
   * Server address (default `'127.0.0.1'`): an IP address or a host name (`'localhost'`
   * included), resolved as the server's `listen()` resolves it (the first address the system's
   * resolver gives, IPv6 or IPv4). Connections opened while it resolves are `connecting`.
   */
  host?: string;
  /** Server port. */
  port: number;
  /**
   * `'secure'` (the default): the kcpwatch handshake (`docs/protocol.md`); each connection is
   * `connecting` until the server accepts (`connect` event, `ready()`).
   * `'raw'`: plain KCP to any KCP server (kcp-go, ikcp, a kcpwatch server in raw mode).
   */
  mode?: Mode;
  /**
   * Secure mode (required): the server's static public key (32 bytes, Buffer or base64/hex
   * text), which the handshake authenticates the server by: `server.publicKey`, or what
   * `kcpwatch keygen` printed, pinned in the game client or handed out with the ticket.
   */
  serverKey?: Uint8Array | string;
  /** Secure mode: give up a handshake without answer after this many ms (default 10000). */
  handshakeTimeout?: number;
  /** Secure mode: a keepalive goes out after this many ms of silence (default: a quarter of the server's idle timeout). */
  keepalive?: number;
  /**
   * Most connections open at once, counting those still closing (default 10000).
   * `connect()` beyond it throws `KcpConnectionLimitError`.
   */
  maxConnections?: number;
  /**
   * Security event logging for the client's endpoint. Off by default for clients (a game
   * client rarely has a SIEM); pass options to turn it on, e.g. `{ onEvent }`.
   */
  log?: LogOptions | false;
}

/** The options of one `client.connect()`. */
export interface ClientConnectOptions {
  /** Secure mode: the application token the server's `authenticate` checks (at most 1024 bytes). */
  token?: Uint8Array | string;
  /**
   * Raw mode: the conversation id; default a random one not used by another connection of
   * this client. Both sides must agree. (Secure mode: the server assigns it.)
   */
  conv?: number;
}

/** A secure-mode {@link connect} (the default). */
export interface SecureConnectOptions extends Omit<ClientOptions, 'maxConnections' | 'mode'> {
  mode?: 'secure';
  /** The application token the server's `authenticate` checks (at most 1024 bytes). */
  token?: Uint8Array | string;
  /** The server assigns the conversation id in secure mode. */
  conv?: never;
}

/** A raw-mode {@link connect}: plain KCP, no handshake. */
export interface RawConnectOptions extends Omit<ClientOptions, 'maxConnections' | 'mode'> {
  mode: 'raw';
  /** The conversation id; default random. Both sides must agree. */
  conv?: number;
  /** Raw KCP has no handshake to carry a token: use `mode: 'secure'`. */
  token?: never;
  /** Raw KCP has no handshake, so no server key to pin. */
  serverKey?: never;
  /** Raw KCP has no handshake to time out. */
  handshakeTimeout?: never;
  /** Raw KCP has no keepalive a plain KCP peer understands. */
  keepalive?: never;
}

/** The options of {@link connect}: a client's and one connection's together, by mode. */
export type ConnectOptions = SecureConnectOptions | RawConnectOptions;

const clientOptionKeys = keysOf<Omit<ClientOptions, keyof KcpOptions>>({
  host: true,
  port: true,
  mode: true,
  handshakeTimeout: true,
  serverKey: true,
  keepalive: true,
  maxConnections: true,
  log: true,
}).concat(kcpOptionKeys);

const connectOptionKeys = clientOptionKeys.filter((k) => k !== 'maxConnections').concat(['token', 'conv']);

const clientConnectOptionKeys = keysOf<ClientConnectOptions>({ token: true, conv: true });

/** Secure mode cannot authenticate a server without its public key: refuse early, saying where to get it. */
function requireServerKey(serverKey: unknown, mode: Mode): unknown {
  if (mode === 'secure' && serverKey === undefined) {
    throw new KcpInvalidOptionError(
      "secure mode needs serverKey: the server's public key (server.publicKey on the server, or the public key `kcpwatch keygen` printed), pinned in the client or handed out with the ticket",
    );
  }
  return serverKey;
}

export interface ClientEvents {
  /** The endpoint is closed; every connection's `close` came first. */
  close: [];
}

const MAX_TOKEN = 1024;

function resolveToken(value: unknown, mode: Mode): Buffer | undefined {
  if (value === undefined) return undefined;
  const token = typeof value === 'string' ? Buffer.from(value) : value;
  if (!(token instanceof Uint8Array)) throw new KcpInvalidOptionError(`token must be a string, Buffer or Uint8Array, got ${describe(value)}`);
  if (mode === 'raw') throw new KcpInvalidOptionError("token needs mode 'secure': raw KCP has no handshake to carry it");
  if (token.length > MAX_TOKEN) throw new KcpInvalidOptionError(`token of ${token.length} bytes exceeds ${MAX_TOKEN}`);
  return Buffer.from(token.buffer, token.byteOffset, token.length);
}

function resolveConv(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new KcpInvalidOptionError(`conv must be an integer in 0..4294967295, got ${describe(value)}`);
  }
  return value;
}

// Typed listener methods: a misspelt event name is an error naming the event map, and each
// listener gets its event's arguments.
export interface Client {
  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  once<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  off<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  addListener<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  removeListener<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  prependListener<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  prependOnceListener<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
}

/**
 * A client endpoint: one UDP socket and one native I/O thread carrying every connection it
 * opens to its server. Create it with {@link createClient}.
 *
 * The endpoint keeps the process alive while it has connections (unless `unref()` was called);
 * an idle client does not. `close()` ends every connection (reason `shutdown`; in secure mode
 * the server sees `peer_closed`) and frees the socket and the thread.
 */
export class Client extends EventEmitter<ClientEvents> {
  readonly mode: Mode;
  readonly remotePort: number;
  /** The most connections open at once. */
  readonly maxConnections: number;
  /** Undefined while the host name resolves, and for good if it did not resolve. */
  private transport: Transport | undefined;
  private server: string;
  private readonly kcp: ResolvedKcpOptions;
  private readonly highWaterMark: number;
  private readonly maxReceiveQueueBytes: number;
  private readonly connections = new Map<number, Connection>();
  /** Raw mode: the convs in use (a waiting connection's too), so each is its own session at the server. */
  private readonly convs = new Set<number>();
  /** Connections opened while the host name resolves, opened on the socket once it has. */
  private waiting: { connection: Connection; pending: PendingTransport; token: Buffer | undefined; conv: number }[] = [];
  /** Why the host name did not resolve (or the socket did not bind): every connection fails with it. */
  private failure: KcpError | undefined;
  private readonly onEvent: ((event: KcpEvent) => void) | undefined;
  private local: AddressInfo | undefined;
  private closing: Promise<void> | undefined;
  private refWanted = true;
  private refd = true;
  /** @internal `connect()`'s client ends with its one connection. */
  _closeWhenIdle = false;

  /** @internal Use {@link createClient}. */
  constructor(given: ClientOptions, where = 'createClient()', keys: readonly string[] = clientOptionKeys) {
    super();
    const options = optionsObject(given, where) as ClientOptions | undefined;
    if (options === undefined) throw new KcpInvalidOptionError(`${where} takes an options object with at least a port`);
    checkKeys(options, keys, where);
    this.mode = resolveMode(options.mode);
    this.kcp = resolveKcpOptions(options);
    checkMessageSize(this.kcp, this.mode);
    this.highWaterMark = resolveHighWaterMark(options.highWaterMark, this.kcp.maxSendQueueBytes);
    this.maxReceiveQueueBytes = resolveMaxReceiveQueueBytes(options.maxReceiveQueueBytes);
    const port = resolvePort(options.port);
    if (port === 0) throw new KcpInvalidOptionError(`port must be an integer in 1..65535 (the server's port), got ${describe(options.port)}`);
    const host = resolveHostOption(options.host ?? '127.0.0.1');
    this.server = host;
    this.remotePort = port;
    const log = resolveLogOptions(options.log ?? false, { destination: 'none' });
    this.onEvent = eventCallback(options.log);
    // Every option is checked and resolved now, once, whether or not the host is a name; the
    // bind address follows the family the host resolves to.
    const endpoint = endpointOptions(
      '0.0.0.0',
      0,
      this.kcp,
      { maxConnections: options.maxConnections, mode: this.mode, handshakeTimeout: options.handshakeTimeout, keepalive: options.keepalive, fec: options.fec, serverKey: requireServerKey(options.serverKey, this.mode) },
      log && { ...log, deliverToJs: this.onEvent !== undefined },
    );
    const native = (address: string): NativeEndpointOptions => ({ ...endpoint, host: isIP(address) === 6 ? '::' : '0.0.0.0' });
    this.maxConnections = endpoint.maxConnections;
    // Idle: the process may exit. The first connection takes the reference again.
    this.refd = false;
    if (isIP(host)) {
      this.bind(native(host), host);
      return;
    }
    // A name resolves as connect()'s and the server's listen() do; connections opened
    // meanwhile wait, `connecting`, and open on the socket once it is bound.
    void resolveHost(host).then(
      (address) => {
        if (this.closing) return;
        try {
          this.bind(native(address), address);
        } catch (err) {
          this.fail(err instanceof KcpError ? err : fromNative(err));
          return;
        }
        const waiting = this.waiting;
        this.waiting = [];
        for (const w of waiting) {
          if (w.pending.cancelled) continue;
          try {
            this.attach(w.token, w.conv, w.connection);
          } catch (err) {
            this.convs.delete(w.conv);
            w.connection._fail(err instanceof KcpError ? err : fromNative(err));
          }
        }
      },
      (err: unknown) => {
        if (!this.closing) this.fail(err instanceof KcpError ? err : new KcpResolveError(`cannot resolve ${host}`, { cause: err }));
      },
    );
  }

  /** The server: its address once the host name resolved (the name until then). */
  get remoteAddress(): string {
    return this.server;
  }

  private bind(native: ReturnType<typeof endpointOptions>, address: string): void {
    const transport = Transport.client(this, native, address, this.remotePort);
    this.transport = transport;
    this.server = address;
    const bound = transport.native.address();
    this.local = { address: bound.address, family: bound.family as AddressInfo['family'], port: bound.port };
    transport.native.unref();
    this.setRef(this.refWanted && this.connectionCount > 0);
  }

  /** The host name did not resolve (or the socket did not bind): every waiting connection fails. */
  private fail(error: KcpError): void {
    this.failure = error;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      this.convs.delete(w.conv);
      if (!w.pending.cancelled) w.connection._fail(error);
    }
    if (this._closeWhenIdle) void this.close();
  }

  /**
   * Opens a connection to the server on this client's socket. In secure mode the handshake
   * starts and the connection is `connecting` (see {@link connect} for what follows); a failed
   * handshake ends that connection only. While a host name resolves the connection is
   * `connecting` in either mode (what is sent meanwhile leaves once it is open); a name that
   * does not resolve fails it with `KcpResolveError`. Throws `KcpClosedError` once `close()`
   * was called, `KcpConnectionLimitError` at `maxConnections`, `KcpInvalidOptionError` for bad
   * options, `KcpConnectError` for a raw-mode conv already used by another connection of this
   * client.
   */
  connect(options: ClientConnectOptions = {}): Connection {
    if (this.closing || this.transport?.native.closed) throw new KcpClosedError('client is closed');
    if (!options || typeof options !== 'object') throw new KcpInvalidOptionError(`client.connect() takes an options object, got ${describe(options)}`);
    checkKeys(options, clientConnectOptionKeys, 'client.connect()');
    const token = resolveToken(options.token, this.mode);
    let conv = 0;
    if (this.mode === 'raw') {
      if (options.conv === undefined) {
        do conv = randomInt(1, 2 ** 32 - 1);
        while (this.convs.has(conv));
      } else {
        conv = resolveConv(options.conv);
        if (this.convs.has(conv)) throw new KcpConnectError(`conv ${conv} is in use by another connection of this client`);
      }
    } else if (options.conv !== undefined) {
      throw new KcpInvalidOptionError("conv needs mode 'raw': in secure mode the server assigns it");
    }
    if (this.connectionCount >= this.maxConnections) {
      throw new KcpConnectionLimitError(`client is at maxConnections (${this.maxConnections})`);
    }
    if (this.transport) return this.attach(token, conv);
    return this.wait(token, conv);
  }

  /** A connection opened before the socket exists: `connecting`, its sends queued. */
  private wait(token: Buffer | undefined, conv: number): Connection {
    const entry = { token, conv } as (typeof this.waiting)[number];
    entry.pending = new PendingTransport(() => {
      this.waiting = this.waiting.filter((w) => w !== entry);
      this.convs.delete(conv);
      process.nextTick(() => entry.connection._closed(emptyCloseInfo('local_closed', 'local')));
      if (this.connectionCount === 0 && this._closeWhenIdle) void this.close();
    });
    entry.connection = new Connection({
      transport: entry.pending,
      handle: 0,
      id: '',
      conv,
      remoteAddress: this.server,
      remotePort: this.remotePort,
      localAddress: '',
      localPort: 0,
      maxMessageSize: this.kcp.maxMessageSize,
      maxDatagramSize: maxDatagramSize(this.kcp.mtu, this.mode),
      maxSendQueueBytes: this.kcp.maxSendQueueBytes,
      highWaterMark: this.highWaterMark,
      maxReceiveQueueBytes: this.maxReceiveQueueBytes,
      stream: this.kcp.stream,
      connecting: true,
    });
    const failure = this.failure;
    if (failure) {
      process.nextTick(() => entry.connection._fail(failure));
      return entry.connection;
    }
    if (this.mode === 'raw') this.convs.add(conv);
    this.waiting.push(entry);
    return entry.connection;
  }

  /** Opens a connection on the socket; with `pending`, that waiting connection becomes it. */
  private attach(token: Buffer | undefined, conv: number, pending?: Connection): Connection {
    const transport = this.transport!;
    let info;
    try {
      info = transport.native.connect(this.server, this.remotePort, conv, undefined, token);
    } catch (err) {
      throw fromNative(err);
    }
    const handle = info.handle;
    if (this.mode === 'raw') this.convs.add(conv);
    if (pending) {
      this.connections.set(handle, pending);
      pending._onClosed(() => this.forget(handle));
      pending._attach(transport, info, this.mode === 'raw');
      if (this.connections.size === 1) this.setRef(this.refWanted);
      return pending;
    }
    const connection = new Connection({
      transport,
      handle,
      id: info.uid,
      conv: info.conv,
      remoteAddress: info.remoteAddress,
      remotePort: info.remotePort,
      localAddress: info.localAddress,
      localPort: info.localPort,
      maxMessageSize: this.kcp.maxMessageSize,
      maxDatagramSize: maxDatagramSize(this.kcp.mtu, this.mode),
      maxSendQueueBytes: this.kcp.maxSendQueueBytes,
      highWaterMark: this.highWaterMark,
      maxReceiveQueueBytes: this.maxReceiveQueueBytes,
      stream: this.kcp.stream,
      connecting: this.mode === 'secure',
      onClosed: () => this.forget(handle),
    });
    this.connections.set(handle, connection);
    if (this.connections.size === 1) this.setRef(this.refWanted);
    return connection;
  }

  /** Connections open now (`connecting`, `established` or `closing`). */
  get connectionCount(): number {
    return this.connections.size + this.waiting.length;
  }

  /**
   * The local address of the client's socket (every connection shares it); null once closed,
   * and while the host name resolves (or if it did not).
   */
  address(): AddressInfo | null {
    return !this.transport || this.transport.native.closed || !this.local ? null : { ...this.local };
  }

  /**
   * Counters of the socket and its engines (as `server.stats()`); once closed, the totals it
   * ended with. Throws `KcpClosedError` while the host name resolves (there is no socket yet).
   */
  stats(): ServerStats {
    if (!this.transport) throw new KcpClosedError(this.failure ? `client has no socket: ${this.failure.message}` : `client has no socket yet: resolving ${this.server}`);
    return statsFromValues(this.transport.native.stats());
  }

  /** Lets the process exit while connections are open. */
  unref(): this {
    this.refWanted = false;
    this.setRef(false);
    return this;
  }

  /** Keeps the process alive while connections are open (the default). */
  ref(): this {
    this.refWanted = true;
    this.setRef(this.connectionCount > 0);
    return this;
  }

  /**
   * Closes every connection at once (reason `shutdown`; secure mode tells the server, which
   * closes them as `peer_closed`), stops the I/O thread and releases the socket. Every
   * connection's `close` fires before the client's. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = Promise.resolve().then(() => {
        // Connections still waiting for the name close as the others do, before the client.
        const waiting = this.waiting;
        this.waiting = [];
        for (const w of waiting) {
          this.convs.delete(w.conv);
          if (!w.pending.cancelled) w.connection._closed(emptyCloseInfo('shutdown', 'local'));
        }
        this.transport?.close();
        this.emit('close');
      });
    }
    return this.closing;
  }

  private setRef(want: boolean): void {
    // Without a socket, the pending name lookup is what keeps the process alive.
    if (want === this.refd || !this.transport || this.transport.native.closed) return;
    this.refd = want;
    if (want) this.transport.native.ref();
    else this.transport.native.unref();
  }

  private forget(handle: number): void {
    const connection = this.connections.get(handle);
    if (!connection) return;
    this.connections.delete(handle);
    if (this.mode === 'raw') this.convs.delete(connection.conv);
    if (this.connectionCount === 0) {
      if (this._closeWhenIdle) void this.close();
      else this.setRef(false);
    }
  }

  /** @internal */
  events(events: KcpEvent[]): void {
    if (!this.onEvent) return;
    // A throwing handler does not cost the other records: its error surfaces afterwards.
    for (const event of events) {
      try {
        this.onEvent(event);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }

  /** @internal Clients do not accept connections. */
  accepted(_handle: number, _record: AcceptedRecord): void {}

  /** @internal */
  message(handle: number, data: Buffer): void {
    this.connections.get(handle)?._message(data);
  }

  /** @internal */
  datagram(handle: number, channel: number, data: Buffer): void {
    this.connections.get(handle)?._datagram(data, channel);
  }

  /** @internal */
  closed(handle: number, info: CloseInfo): void {
    this.connections.get(handle)?._closed(info);
  }

  /** @internal */
  progress(handle: number, ackedBytes: number): void {
    this.connections.get(handle)?._progress(ackedBytes);
  }

  /** @internal */
  error(handle: number, code: string, message: string): void {
    this.connections.get(handle)?._error(code, message);
  }

  /** @internal */
  established(handle: number, conv: number, limits?: ConnectionLimits): void {
    // close() ends every connection at once: an ACCEPT that the I/O thread read before it
    // stopped does not make one `connect` after the application closed the client.
    if (this.closing) return;
    this.connections.get(handle)?._established(conv, limits);
  }

  /** @internal */
  connectFailed(handle: number, reason: FailReason, appCode?: number): void {
    this.connections.get(handle)?._connectFailed(reason, appCode);
  }

  /** @internal Only servers authenticate. */
  authRequest(_request: AuthRequestRecord): void {}
}

/**
 * Creates a client endpoint for many connections to one server over one UDP socket and one
 * native I/O thread: `client.connect({ token?, conv? })` opens each, `client.close()` ends
 * them all. Options are those of {@link connect} (less the per-connection `token` and `conv`)
 * plus `maxConnections`. A host name resolves once, in the background: connections opened
 * meanwhile are `connecting` and open once it has; a name that does not resolve fails each
 * with `KcpResolveError`.
 *
 * The server sees every connection of one client from one address and port, so its
 * per-address limits (`limits.maxConnectionsPerIp`, the handshake rate per address) apply to
 * all of them together.
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

/**
 * Opens a connection on its own UDP socket (a client of one connection, closed with it). In
 * secure mode (the default) the handshake starts and the connection is `connecting`: messages
 * sent now leave once it completes; `connect` (or `await ready()`) says it did, and a failure
 * is a typed error (`KcpHandshakeTimeoutError`, also for a server over its handshake rate, which
 * does not answer; `KcpAuthRejectedError`, `KcpServerFullError`, `KcpVersionMismatchError`) on
 * `error` and from `ready()`, then `close` with reason `connect_failed`. Nothing reconnects by itself: call `connect()` again to retry.
 * In raw mode data may be sent at once; there is no handshake.
 *
 * `host` may be a name (`localhost` included): the connection is returned at once, `connecting`,
 * while the name resolves as the server's `listen()` resolves it; what is sent meanwhile leaves
 * once it is open, and a name that does not resolve fails it with `KcpResolveError`.
 */
export function connect(given: ConnectOptions): Connection {
  if (!given || typeof given !== 'object') throw new KcpInvalidOptionError(`connect() takes an options object with at least a port, got ${describe(given)}`);
  // Inherited options are read (and checked) like own ones: the spread below would drop them.
  const options = optionsObject(given, 'connect()') as unknown as ConnectOptions;
  checkKeys(options, connectOptionKeys, 'connect()');
  const mode = resolveMode(options.mode);
  // Checked before the socket is bound, as before.
  resolveToken(options.token, mode);
  const conv = options.conv === undefined ? undefined : resolveConv(options.conv);
  if (conv !== undefined && mode !== 'raw') throw new KcpInvalidOptionError("conv needs mode 'raw': in secure mode the server assigns it");
  const { token, conv: _conv, ...rest } = options;
  const per: ClientConnectOptions = mode === 'raw' ? { conv } : { token };
  // A host name resolves inside the client, as createClient()'s does.
  const client = new Client({ ...rest, maxConnections: 1 } as ClientOptions, 'connect()', clientOptionKeys);
  client._closeWhenIdle = true;
  try {
    return client.connect(per);
  } catch (err) {
    void client.close();
    throw err;
  }
}
