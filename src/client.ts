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
import type { AcceptedRecord, CloseInfo } from './records';
import { endpointOptions, resolveHost, type AddressInfo, type ServerStats } from './server';
import { Transport } from './transport';

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
   * Server address (default `'127.0.0.1'`). `createClient()`: an IP address or `'localhost'`
   * (127.0.0.1). `connect()`: also a host name, resolved as the server's `listen()` resolves it.
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
  /** The server. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The most connections open at once. */
  readonly maxConnections: number;
  private readonly transport: Transport;
  private readonly kcp: ResolvedKcpOptions;
  private readonly highWaterMark: number;
  private readonly maxReceiveQueueBytes: number;
  private readonly connections = new Map<number, Connection>();
  /** Raw mode: the convs in use, so each connection is its own session at the server. */
  private readonly convs = new Map<number, number>();
  private readonly onEvent: ((event: KcpEvent) => void) | undefined;
  private readonly local: AddressInfo;
  private closing: Promise<void> | undefined;
  private refWanted = true;
  private refd = true;
  /** @internal `connect()`'s client ends with its one connection. */
  _closeWhenIdle = false;

  /** @internal Use {@link createClient}. */
  constructor(options: ClientOptions, where = 'createClient()', keys: readonly string[] = clientOptionKeys) {
    super();
    if (optionsObject(options, where) === undefined) throw new KcpInvalidOptionError(`${where} takes an options object with at least a port`);
    checkKeys(options, keys, where);
    this.mode = resolveMode(options.mode);
    this.kcp = resolveKcpOptions(options);
    checkMessageSize(this.kcp, this.mode);
    this.highWaterMark = resolveHighWaterMark(options.highWaterMark, this.kcp.maxSendQueueBytes);
    this.maxReceiveQueueBytes = resolveMaxReceiveQueueBytes(options.maxReceiveQueueBytes);
    const port = resolvePort(options.port);
    if (port === 0) throw new KcpInvalidOptionError('port must be 1..65535');
    const requested = options.host ?? '127.0.0.1';
    if (typeof requested !== 'string' || requested.length === 0) {
      throw new KcpInvalidOptionError(`host must be a non-empty string (an IP address${where === 'createClient()' ? " or 'localhost'" : ' or a host name'}), got ${requested === '' ? 'an empty string' : describe(requested)}`);
    }
    const host = requested === 'localhost' && where === 'createClient()' ? '127.0.0.1' : requested;
    if (!isIP(host)) {
      throw new KcpInvalidOptionError(
        `${where}: host must be an IP address${where === 'createClient()' ? " or 'localhost'" : ''}, got ${describe(requested)} (connect() resolves names; for createClient, resolve with dns.promises.lookup first)`,
      );
    }
    this.remoteAddress = host;
    this.remotePort = port;
    const log = resolveLogOptions(options.log ?? false, { destination: 'none' });
    this.onEvent = eventCallback(options.log);
    const native = endpointOptions(
      isIP(host) === 6 ? '::' : '0.0.0.0',
      0,
      this.kcp,
      { maxConnections: options.maxConnections, mode: this.mode, handshakeTimeout: options.handshakeTimeout, keepalive: options.keepalive, fec: options.fec, serverKey: requireServerKey(options.serverKey, this.mode) },
      log && { ...log, deliverToJs: this.onEvent !== undefined },
    );
    this.maxConnections = native.maxConnections;
    this.transport = Transport.client(this, native, host, port);
    const bound = this.transport.native.address();
    this.local = { address: bound.address, family: bound.family as AddressInfo['family'], port: bound.port };
    // Idle: the process may exit. The first connection takes the reference again.
    this.setRef(false);
  }

  /**
   * Opens a connection to the server on this client's socket. In secure mode the handshake
   * starts and the connection is `connecting` (see {@link connect} for what follows); a failed
   * handshake ends that connection only. Throws `KcpClosedError` once `close()` was called,
   * `KcpConnectionLimitError` at `maxConnections`, `KcpInvalidOptionError` for bad options,
   * `KcpConnectError` for a raw-mode conv already used by another connection of this client.
   */
  connect(options: ClientConnectOptions = {}): Connection {
    return this.open(options);
  }

  /**
   * @internal Opens a connection; with `pending`, that connection (made by {@link connect} while
   * it resolved the host) becomes it.
   */
  _open(options: ClientConnectOptions, pending: Connection): Connection {
    return this.open(options, pending);
  }

  private open(options: ClientConnectOptions, pending?: Connection): Connection {
    if (this.closing || this.transport.native.closed) throw new KcpClosedError('client is closed');
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
    if (this.connections.size >= this.maxConnections) {
      throw new KcpConnectionLimitError(`client is at maxConnections (${this.maxConnections})`);
    }
    let info;
    try {
      info = this.transport.native.connect(this.remoteAddress, this.remotePort, conv, undefined, token);
    } catch (err) {
      throw fromNative(err);
    }
    const handle = info.handle;
    if (pending) {
      this.connections.set(handle, pending);
      if (this.mode === 'raw') this.convs.set(conv, handle);
      pending._onClosed(() => this.forget(handle));
      pending._attach(this.transport, info, this.mode === 'raw');
      if (this.connections.size === 1) this.setRef(this.refWanted);
      return pending;
    }
    const connection = new Connection({
      transport: this.transport,
      handle,
      id: info.uid,
      conv: info.conv,
      remoteAddress: info.remoteAddress,
      remotePort: info.remotePort,
      localAddress: info.localAddress,
      localPort: info.localPort,
      maxMessageSize: this.kcp.maxMessageSize,
      maxSendQueueBytes: this.kcp.maxSendQueueBytes,
      highWaterMark: this.highWaterMark,
      maxReceiveQueueBytes: this.maxReceiveQueueBytes,
      stream: this.kcp.stream,
      connecting: this.mode === 'secure',
      onClosed: () => this.forget(handle),
    });
    this.connections.set(handle, connection);
    if (this.mode === 'raw') this.convs.set(conv, handle);
    if (this.connections.size === 1) this.setRef(this.refWanted);
    return connection;
  }

  /** Connections open now (`connecting`, `established` or `closing`). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** The local address of the client's socket (every connection shares it); null once closed. */
  address(): AddressInfo | null {
    return this.transport.native.closed ? null : { ...this.local };
  }

  /** Counters of the socket and its engines (as `server.stats()`). */
  stats(): ServerStats {
    if (this.transport.native.closed) throw new KcpClosedError('client is closed');
    return this.transport.native.stats();
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
    this.setRef(this.connections.size > 0);
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
        this.transport.close();
        this.emit('close');
      });
    }
    return this.closing;
  }

  private setRef(want: boolean): void {
    if (want === this.refd || this.transport.native.closed) return;
    this.refd = want;
    if (want) this.transport.native.ref();
    else this.transport.native.unref();
  }

  private forget(handle: number): void {
    const connection = this.connections.get(handle);
    if (!connection) return;
    this.connections.delete(handle);
    if (this.mode === 'raw' && this.convs.get(connection.conv) === handle) this.convs.delete(connection.conv);
    if (this.connections.size === 0) {
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
  established(handle: number, conv: number): void {
    this.connections.get(handle)?._established(conv);
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
 * plus `maxConnections`.
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

/**
 * Opens a connection on its own UDP socket (a client of one connection, closed with it). In
 * secure mode (the default) the handshake starts and the connection is `connecting`: messages
 * sent now leave once it completes; `connect` (or `await ready()`) says it did, and a failure
 * is a typed error (`KcpHandshakeTimeoutError`, `KcpAuthRejectedError`, `KcpServerFullError`,
 * `KcpRateLimitedError`, `KcpVersionMismatchError`) on `error` and from `ready()`, then `close`
 * with reason `connect_failed`. Nothing reconnects by itself: call `connect()` again to retry.
 * In raw mode data may be sent at once; there is no handshake.
 *
 * `host` may be a name (`localhost` included): the connection is returned at once, `connecting`,
 * while the name resolves as the server's `listen()` resolves it; what is sent meanwhile leaves
 * once it is open, and a name that does not resolve fails it with `KcpResolveError`.
 */
export function connect(options: ConnectOptions): Connection {
  if (!options || typeof options !== 'object') throw new KcpInvalidOptionError(`connect() takes an options object with at least a port, got ${describe(options)}`);
  checkKeys(options, connectOptionKeys, 'connect()');
  const mode = resolveMode(options.mode);
  // Checked before the socket is bound, as before.
  resolveToken(options.token, mode);
  const conv = options.conv === undefined ? undefined : resolveConv(options.conv);
  if (conv !== undefined && mode !== 'raw') throw new KcpInvalidOptionError("conv needs mode 'raw': in secure mode the server assigns it");
  const { token, conv: _conv, ...rest } = options;
  const per: ClientConnectOptions = mode === 'raw' ? { conv } : { token };
  const host = rest.host ?? '127.0.0.1';
  if (typeof host === 'string' && host.length > 0 && !isIP(host)) return connectByName({ ...rest, host }, per);
  const client = new Client({ ...rest, maxConnections: 1 } as ClientOptions, 'connect()', clientOptionKeys);
  client._closeWhenIdle = true;
  try {
    return client.connect(per);
  } catch (err) {
    void client.close();
    throw err;
  }
}

/**
 * `connect()` to a host name (`localhost` included): the connection is returned at once, in
 * state `connecting`, and the name resolves as the server's `listen()` resolves it (the first
 * address the system's resolver gives, IPv6 or IPv4). Messages sent meanwhile queue and leave
 * once it is open; a name that does not resolve, or a socket that cannot bind, fails the
 * connection (`error`, `close` with `connect_failed`, `ready()` rejects with the typed error).
 */
function connectByName(options: Omit<ConnectOptions, 'token' | 'conv'> & { host: string }, per: ClientConnectOptions): Connection {
  // Every option is checked now, on a stand-in address of the same kind of host.
  const checked = checkOnly({ ...options, host: '127.0.0.1', maxConnections: 1 } as ClientOptions);
  const pending = new PendingTransport(() => process.nextTick(() => connection._closed(emptyCloseInfo('local_closed', 'local'))));
  const connection = new Connection({
    transport: pending,
    handle: 0,
    id: '',
    conv: per.conv ?? 0,
    remoteAddress: options.host,
    remotePort: checked.port,
    localAddress: '',
    localPort: 0,
    maxMessageSize: checked.kcp.maxMessageSize,
    maxSendQueueBytes: checked.kcp.maxSendQueueBytes,
    highWaterMark: checked.highWaterMark,
    maxReceiveQueueBytes: checked.maxReceiveQueueBytes,
    stream: checked.kcp.stream,
    connecting: true,
  });
  void resolveHost(options.host).then(
    (address) => {
      if (pending.cancelled) return;
      let client: Client | undefined;
      try {
        client = new Client({ ...options, host: address, maxConnections: 1 } as ClientOptions, 'connect()', clientOptionKeys);
        client._closeWhenIdle = true;
        client._open(per, connection);
      } catch (err) {
        if (client) void client.close();
        connection._fail(err instanceof KcpError ? err : fromNative(err));
      }
    },
    (err: unknown) => {
      if (!pending.cancelled) connection._fail(err instanceof KcpError ? err : new KcpResolveError(`cannot resolve ${options.host}`, { cause: err }));
    },
  );
  return connection;
}

/** Checks a client's options as its constructor would, without binding a socket. */
function checkOnly(options: ClientOptions): { kcp: ResolvedKcpOptions; highWaterMark: number; maxReceiveQueueBytes: number; port: number } {
  const mode = resolveMode(options.mode);
  const kcp = resolveKcpOptions(options);
  checkMessageSize(kcp, mode);
  const highWaterMark = resolveHighWaterMark(options.highWaterMark, kcp.maxSendQueueBytes);
  const maxReceiveQueueBytes = resolveMaxReceiveQueueBytes(options.maxReceiveQueueBytes);
  const port = resolvePort(options.port);
  if (port === 0) throw new KcpInvalidOptionError('port must be 1..65535');
  const log = resolveLogOptions(options.log ?? false, { destination: 'none' });
  eventCallback(options.log);
  endpointOptions(
    '0.0.0.0',
    0,
    kcp,
    { maxConnections: options.maxConnections, mode, handshakeTimeout: options.handshakeTimeout, keepalive: options.keepalive, fec: options.fec, serverKey: requireServerKey(options.serverKey, mode) },
    log,
  );
  return { kcp, highWaterMark, maxReceiveQueueBytes, port };
}
