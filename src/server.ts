/** The server: one UDP socket accepting KCP conversations. */

import { EventEmitter } from 'node:events';

import { Connection, bytesOf, type SendData } from './connection';
import { maxDatagramSize } from './datagram';
import {
  KcpAlreadyListeningError,
  KcpAuthenticateError,
  KcpClosedError,
  KcpError,
  KcpInternalError,
  KcpInvalidOptionError,
  KcpMessageTooLargeError,
  securityRecordOf,
} from './errors';
import {
  checkKeys,
  checkMessageSize,
  describe,
  describeThrown,
  kcpOptionKeys,
  keysOf,
  optionsObject,
  resolveHighWaterMark,
  resolveKcpOptions,
  resolveMaxReceiveQueueBytes,
  resolveMode,
  resolvePort,
  type KcpOptions,
  type LimitOptions,
  type RawLimitOptions,
  type Mode,
  type ResolvedKcpOptions,
} from './options';
import type { KcpEvent } from './event-types';
import { eventCallback, parseEvents, resolveLogOptions, type LogOptions } from './log';
import { rethrowLater, type AcceptedRecord, type AuthRequestRecord, type CloseInfo, type FailReason } from './records';
import type { DetectionOptions } from './detection';
import type { NativeEndpointOptions, NativeLogOptions } from './native';
import { statsFromValues, type ServerStats } from './generated/stats';
import { endpointOptions, resolveHost, resolveHostOption } from './endpoint-options';
import { checkLogFilePath, checkReadableFile, logPaths, openLogFiles, type LogFileOption } from './log-files';
import { Transport } from './transport';
import { generateKeyPair, keyPairFromPrivate } from './keys';
import { renderMetrics } from './metrics';
import { AuthRejection, MAX_USER_ID_BYTES, userIdOf, type AuthPeer, type Authenticate } from './authenticate';

/** Options of every server, whatever its mode. */
export interface CommonServerOptions extends KcpOptions {
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

/** A secure-mode server (the default): the handshake, tags and limits of `docs/protocol.md`. */
export interface SecureServerOptions<Auth = unknown> extends CommonServerOptions {
  /**
   * `'secure'` (the default): a handshake that validates the client's address before any
   * state exists, tagged datagrams, replay protection, limits (`docs/protocol.md`).
   */
  mode?: 'secure';
  /** Checks each client's token before its session exists; what it returns is `connection.auth`. */
  authenticate?: Authenticate<Auth>;
  /** Milliseconds `authenticate` has to answer (default 5000). */
  authTimeout?: number;
  /**
   * Milliseconds a client has, after the server's ACCEPT, to confirm the handshake with its
   * first encrypted datagram (default 10000): until then there is no `connection` event, and
   * without it the attempt fails as `handshake_abandoned` (`docs/protocol.md`).
   */
  handshakeTimeout?: number;
  /**
   * The server's static private keys (32 bytes each, Buffer or base64/hex text; two during a
   * rotation, `docs/security.md`). Without them (and without `keyFile`) the server generates
   * one at `createServer()`: clients must then pin `server.publicKey` of this run. A production
   * server configures its key.
   */
  serverKeys?: (Uint8Array | string)[];
  /** Files holding the private keys (as `kcpwatch keygen` writes them), instead of `serverKeys`. */
  keyFile?: string | string[];
}

/** A raw-mode server: plain KCP, interoperable with kcp-go and ikcp clients; no handshake, so no token. */
export interface RawServerOptions extends CommonServerOptions {
  mode: 'raw';
  /** Raw KCP has no handshake to carry a token: use `mode: 'secure'` to authenticate. */
  authenticate?: never;
  /** Raw KCP has no handshake: there is nothing to time out. */
  authTimeout?: never;
  /** Raw KCP has no handshake: there is nothing to time out. */
  handshakeTimeout?: never;
  /** Raw KCP has no keepalive a plain KCP peer understands. */
  keepalive?: never;
  /** Connection limits; no `maxPendingAuth`: raw KCP has no handshake, so nothing waits for `authenticate`. */
  limits?: RawLimitOptions;
}

/** The options of {@link createServer}: by mode, so that raw mode cannot be given `authenticate`. */
export type ServerOptions<Auth = unknown> = SecureServerOptions<Auth> | RawServerOptions;

/** Every server option's name (checked by the compiler against the interfaces). */
const serverOptionKeys = keysOf<Omit<SecureServerOptions, keyof KcpOptions>>({
  keepalive: true,
  limits: true,
  detection: true,
  host: true,
  port: true,
  ipv6Only: true,
  reusePort: true,
  maxConnections: true,
  deliveryLimit: true,
  log: true,
  mode: true,
  authenticate: true,
  authTimeout: true,
  handshakeTimeout: true,
  serverKeys: true,
  keyFile: true,
}).concat(kcpOptionKeys);

/** The options of `server.listen({ port, host })`. */
export interface ListenOptions {
  port?: number;
  host?: string;
}

const listenOptionKeys = keysOf<ListenOptions>({ port: true, host: true });

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

const closeOptionKeys = keysOf<ServerCloseOptions>({ linger: true, force: true });

export type { ServerStats };

/**
 * Which connections `server.broadcast()` sends to: a test on each, the connections themselves,
 * or a map whose values they are (`server.connections`).
 */
export type BroadcastTarget<Auth = unknown> =
  | ((connection: Connection<Auth>) => boolean)
  | Iterable<Connection<Auth>>
  | ReadonlyMap<unknown, Connection<Auth>>;

/**
 * A live read-only view of a map: the reads of `ReadonlyMap`, and no `set`, `delete` or
 * `clear` at runtime either, so the application cannot corrupt the server's bookkeeping.
 */
class ReadonlyMapView<K, V> implements ReadonlyMap<K, V> {
  readonly #map: Map<K, V>;
  constructor(map: Map<K, V>) {
    this.#map = map;
    Object.freeze(this);
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: K): V | undefined {
    return this.#map.get(key);
  }
  has(key: K): boolean {
    return this.#map.has(key);
  }
  keys(): MapIterator<K> {
    return this.#map.keys();
  }
  values(): MapIterator<V> {
    return this.#map.values();
  }
  entries(): MapIterator<[K, V]> {
    return this.#map.entries();
  }
  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    this.#map.forEach((value, key) => callback.call(thisArg, value, key, this));
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.#map.entries();
  }
  get [Symbol.toStringTag](): string {
    return 'ReadonlyMap';
  }
}

/** Distinct `authenticate` failures warned about at most, per server. */
const MAX_AUTH_WARNINGS = 100;

/** Largest number of accepted identities waiting for their connection's `accepted` record. */
const MAX_PENDING_IDENTITIES = 65_536;

/** Margin over the linger bound for the last close records to arrive before the hard stop. */
const CLOSE_MARGIN_MS = 1000;

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface ServerEvents<Auth = unknown> {
  listening: [address: AddressInfo];
  connection: [connection: Connection<Auth>];
  close: [];
  error: [error: KcpError];
  /** A security record (`kcp:*`). Listening turns delivery to JavaScript on. */
  event: [event: KcpEvent];
}

function resolveLinger(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw new KcpInvalidOptionError(`linger must be an integer in 0..${2 ** 31 - 1}, got ${describe(value)}`);
  }
  return value;
}

// Typed listener methods: a misspelt event name is an error naming the event map, and each
// listener gets its event's arguments.
export interface Server<Auth = unknown, M extends Mode = Mode> {
  on<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  once<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  off<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  addListener<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  removeListener<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  prependListener<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
  prependOnceListener<E extends keyof ServerEvents<Auth>>(event: E, listener: (...args: ServerEvents<Auth>[E]) => void): this;
}

/** `server.publicKey` by mode: a secure server always has a key, a raw one never. */
export type PublicKeyOf<M extends Mode> = M extends 'raw' ? null : string;

/**
 * A KCP server. Create it with {@link createServer}. `Auth` is what `authenticate` returns
 * for an accepted client (`connection.auth`); `M` is its mode, as {@link createServer}'s
 * options say (`'secure'` unless `mode: 'raw'`).
 */
export class Server<Auth = unknown, M extends Mode = Mode> extends EventEmitter<ServerEvents<Auth>> {
  readonly mode: M;
  private readonly options: ServerOptions<Auth>;
  private readonly kcp: ResolvedKcpOptions;
  private readonly highWaterMark: number;
  private readonly maxReceiveQueueBytes: number;
  private transport: Transport | undefined;
  /** A `listen()` is under way or done: one listener per server, whatever the interleaving. */
  private listenClaimed = false;
  /** Resolves the wait of a lingering `close()` once the last connection closed. */
  private onLastClose: (() => void) | undefined;
  private readonly byHandle = new Map<number, Connection<Auth>>();
  private readonly byId = new Map<string, Connection<Auth>>();
  /** Each live connection's id as it was accepted: the key of `byId`, whatever the application does. */
  private readonly idByHandle = new Map<number, string>();
  private readonly connectionsView = new ReadonlyMapView(this.byId);
  /** `authenticate` failures already warned about (no `error` listener), by message. */
  private readonly authWarnings = new Set<string>();
  /** Identities `authenticate` returned, by connection id, until the connection is accepted. */
  private readonly identities = new Map<string, Auth>();
  private _address: AddressInfo | null = null;
  private closing: Promise<void> | undefined;
  private readonly log: NativeLogOptions | undefined;
  /** Every endpoint option, checked and resolved by the constructor (address and log aside). */
  private readonly endpoint: NativeEndpointOptions;
  /** Secure mode: the public keys (base64) of `endpoint.serverKeys`, current first. */
  private readonly publicKeyList: readonly string[];
  private readonly logFiles: LogFileOption[];
  private readonly onEvent: ((event: KcpEvent) => void) | undefined;

  /** Prefer {@link createServer}, which also takes a connection handler. */
  constructor(given: ServerOptions<Auth> | undefined = {}) {
    super();
    const options = (optionsObject(given, 'createServer()') ?? {}) as ServerOptions<Auth>;
    checkKeys(options, serverOptionKeys, 'createServer()');
    this.options = { ...options };
    this.mode = resolveMode(options.mode) as M;
    this.kcp = resolveKcpOptions(options);
    checkMessageSize(this.kcp, this.mode);
    this.highWaterMark = resolveHighWaterMark(options.highWaterMark, this.kcp.maxSendQueueBytes);
    this.maxReceiveQueueBytes = resolveMaxReceiveQueueBytes(options.maxReceiveQueueBytes);
    // Every option is checked and resolved here, once, not first at listen(); listen() adds
    // only the address and the log's delivery.
    const endpoint = endpointOptions('0.0.0.0', 0, this.kcp, this.options, undefined);
    if (this.mode === 'secure' && endpoint.serverKeys === undefined) {
      // No key configured: one for this server's life, made now rather than at listen(), so
      // that `publicKey` is a key from the start (a server listens once).
      endpoint.serverKeys = [generateKeyPair().privateKey];
    }
    this.endpoint = endpoint;
    this.publicKeyList = this.mode === 'secure' ? (endpoint.serverKeys ?? []).map((k) => keyPairFromPrivate(k).publicKey.toString('base64')) : [];
    if (options.port !== undefined) resolvePort(options.port);
    if (options.host !== undefined) resolveHostOption(options.host);
    this.log = resolveLogOptions(options.log, { destination: 'stdout' });
    const paths = logPaths(options.log, this.log);
    this.logFiles = paths.appended;
    for (const { path, option } of this.logFiles) checkLogFilePath(path, option);
    for (const { path, option } of paths.read) checkReadableFile(path, option);
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

  /**
   * Binds the socket. Resolves with the bound address. As with `net` and `dgram`, a callback
   * may be given last: it is called with the address once listening (a `listening` listener);
   * a failure still rejects the returned promise.
   */
  async listen(port?: number, host?: string, callback?: (address: AddressInfo) => void): Promise<AddressInfo>;
  async listen(port: number, callback: (address: AddressInfo) => void): Promise<AddressInfo>;
  async listen(options?: ListenOptions, callback?: (address: AddressInfo) => void): Promise<AddressInfo>;
  async listen(
    portOrOptions?: number | ListenOptions,
    hostOrCallback?: string | ((address: AddressInfo) => void),
    lastCallback?: (address: AddressInfo) => void,
  ): Promise<AddressInfo> {
    if (this.closing) throw new KcpClosedError('server is closed');
    if (this.listenClaimed) {
      throw new KcpAlreadyListeningError(this.transport ? 'server is already listening' : 'server is already binding (listen() was called before)');
    }
    if (portOrOptions === null || (typeof portOrOptions !== 'object' && typeof portOrOptions !== 'number' && portOrOptions !== undefined)) {
      throw new KcpInvalidOptionError(`listen() takes a port number or { port, host }, got ${describe(portOrOptions)}`);
    }
    let host: string | undefined;
    let callback: unknown = lastCallback;
    if (typeof hostOrCallback === 'function') {
      if (lastCallback !== undefined) throw new KcpInvalidOptionError('listen(port, callback) takes nothing after the callback');
      callback = hostOrCallback;
    } else if (typeof portOrOptions === 'object' && hostOrCallback !== undefined) {
      throw new KcpInvalidOptionError(`listen(options, callback): the second argument is the callback, got ${describe(hostOrCallback)}`);
    } else {
      host = hostOrCallback;
    }
    if (callback !== undefined && typeof callback !== 'function') {
      throw new KcpInvalidOptionError(`listen()'s callback must be a function (called with the address once listening), got ${describe(callback)}`);
    }
    if (typeof portOrOptions === 'object') checkKeys(portOrOptions, listenOptionKeys, 'listen()');
    const opts = typeof portOrOptions === 'object' ? portOrOptions : { port: portOrOptions, host };
    const port = resolvePort(opts.port ?? this.options.port);
    const requested = resolveHostOption(opts.host ?? this.options.host ?? '0.0.0.0');
    const onListening = callback as ((address: AddressInfo) => void) | undefined;
    if (onListening) this.once('listening', onListening);
    try {
      return await this.bind(port, requested);
    } catch (err) {
      if (onListening) this.off('listening', onListening);
      throw err;
    }
  }

  private async bind(port: number, requested: string): Promise<AddressInfo> {
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
    const native: NativeEndpointOptions = { ...this.endpoint, host: address, port, log };
    try {
      openLogFiles(this.logFiles);
      this.transport = Transport.listen(this, native);
    } catch (err) {
      this.listenClaimed = false;
      const error = err instanceof KcpError ? err : new KcpInternalError(describeThrown(err), { cause: err });
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
    // The server is bound and serving: a throwing `listening` handler does not make listen()
    // fail; its error surfaces on its own tick, as other handlers' do.
    try {
      this.emit('listening', this._address);
    } catch (error) {
      rethrowLater(error);
    }
    return this._address;
  }

  /** The bound address, or null before `listen()` and after `close()`. */
  address(): AddressInfo | null {
    return this._address;
  }

  /**
   * Secure mode: the public key (base64) clients pin as `serverKey` — of the first key when
   * several are configured. A server given no key generated one at `createServer()`: it
   * changes every run, so configure `serverKeys`/`keyFile` in production. `null` in raw mode.
   */
  get publicKey(): PublicKeyOf<M> {
    return (this.publicKeyList[0] ?? null) as PublicKeyOf<M>;
  }

  /** Secure mode: the public keys (base64) of every configured key, current first; `[]` in raw mode. */
  get publicKeys(): string[] {
    return [...this.publicKeyList];
  }

  /** Live connections. */
  get connectionCount(): number {
    return this.byHandle.size;
  }

  /**
   * The live connections by id: a read-only view that follows connections as they come and
   * go (iterate it, `.get(id)`, `.size`). A connection leaves it just before its `close` event.
   */
  get connections(): ReadonlyMap<string, Connection<Auth>> {
    return this.connectionsView;
  }

  /** The live connection with this id, or `undefined`. */
  connection(id: string): Connection<Auth> | undefined {
    return this.byId.get(id);
  }

  /**
   * Sends one message to many connections: every established connection, those `target`
   * accepts (a function), those it lists (an iterable), or the values of a map
   * (`server.connections`). The bytes are taken once (a string is encoded once) and the whole
   * broadcast crosses into Rust with this turn's other sends, in one native call. Returns how
   * many connections it was queued for. All or nothing: the target is evaluated whole before
   * anything is queued, so a filter that throws (its error is rethrown) sends to nobody.
   *
   * Throws only what concerns the message itself (`KcpMessageTooLargeError`, `KcpInvalidOptionError` for a bad `data` or `target`). A
   * connection that is not established (connecting, closing, closed, or another server's) is
   * skipped; one whose queue cannot take the message (`maxSendQueueBytes`), or whose own
   * `maxMessageSize` it exceeds (a secure session that agreed a smaller MTU), is skipped and
   * the refusal logged as for `send()`. A connection at its high-water mark gets the message and
   * emits `drain` later, as with `send()`.
   */
  broadcast(data: SendData, target?: BroadcastTarget<Auth>): number {
    const bytes = bytesOf(data, 'broadcast()');
    if (!this.kcp.stream && bytes.length > this.kcp.maxMessageSize) {
      throw new KcpMessageTooLargeError(`message of ${bytes.length} bytes exceeds maxMessageSize ${this.kcp.maxMessageSize}`);
    }
    const transport = this.transport;
    if (target === undefined) {
      if (!transport || transport.native.closed) return 0;
      transport.expect(this.byHandle.size, bytes.length);
      let sent = 0;
      for (const connection of this.byHandle.values()) if (connection._offer(bytes)) sent += 1;
      return sent;
    }
    // The whole target is known before anything is queued: a filter that throws, or a bad
    // entry in a list, sends to nobody.
    const chosen = new Set<Connection<Auth>>();
    if (typeof target === 'function') {
      for (const connection of this.byHandle.values()) if (target(connection)) chosen.add(connection);
    } else if (target !== null && typeof target === 'object' && typeof (target as Iterable<unknown>)[Symbol.iterator] === 'function') {
      // A Map (`server.connections`, or the application's own map by id) yields [key, value]
      // pairs: its values are the connections.
      const entries: Iterable<unknown> = target instanceof Map || target instanceof ReadonlyMapView ? target.values() : target;
      let index = 0;
      for (const connection of entries) {
        if (!(connection instanceof Connection)) {
          throw new KcpInvalidOptionError(`broadcast() target entry ${index} is not a Connection, got ${describe(connection)}`);
        }
        chosen.add(connection as Connection<Auth>);
        index += 1;
      }
    } else {
      throw new KcpInvalidOptionError(`broadcast() takes a filter function or an iterable of connections as its target, got ${describe(target)}`);
    }
    if (!transport || transport.native.closed) return 0;
    let sent = 0;
    for (const connection of chosen) {
      // Only this server's live connections (another server's, or one closed meanwhile, is
      // skipped); a connection listed twice gets the message once.
      if (this.byHandle.get(connection._handle) !== connection) continue;
      if (connection._offer(bytes)) sent += 1;
    }
    return sent;
  }

  /**
   * @internal The bench's stage trace (`KCPWATCH_STAGE_TRACE=1`): each hop's durations in
   * nanoseconds, the I/O thread's and JavaScript's; undefined when off or not listening.
   */
  _stageTrace(): { hops: Record<string, number[]>; overflow: number } | undefined {
    const transport = this.transport;
    const io = transport && !transport.native.closed ? transport.native.stageTrace() : null;
    if (!transport?.stages || !io) return undefined;
    const hops: Record<string, number[]> = {};
    for (const hop of io.hops) hops[hop.name] = hop.nanos;
    Object.assign(hops, transport.stages.hops);
    return { hops, overflow: io.overflow + transport.stages.overflow };
  }

  /**
   * Counters of the socket and its engines; once closed, the totals it ended with (every
   * connection's close included). Throws `KcpClosedError` before `listen()` has bound.
   */
  stats(): ServerStats {
    if (!this.transport) throw new KcpClosedError('server is not listening');
    return statsFromValues(this.transport.native.stats());
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
   * Idempotent: later calls return the first call's promise. Bad options reject the returned
   * promise (`KcpInvalidOptionError`); `close()` never throws.
   */
  close(options: ServerCloseOptions = {}): Promise<void> {
    let linger: number;
    try {
      linger = this.closeLinger(options);
    } catch (err) {
      // An async method reports every failure through its promise, bad options included.
      return Promise.reject(err);
    }
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

  private closeLinger(options: ServerCloseOptions): number {
    if (!options || typeof options !== 'object') throw new KcpInvalidOptionError(`close() takes an options object, got ${describe(options)}`);
    checkKeys(options, closeOptionKeys, 'server.close()');
    const force = options.force ?? false;
    if (typeof force !== 'boolean') throw new KcpInvalidOptionError(`force must be a boolean, got ${describe(force)}`);
    return force ? 0 : options.linger === undefined ? this.kcp.linger : resolveLinger(options.linger);
  }

  /** Resolves when no connection is left, or after `timeoutMs`. */
  private lastClose(timeoutMs: number): Promise<void> {
    if (this.byHandle.size === 0) return Promise.resolve();
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
    const identity = this.identities.get(r.uid);
    this.identities.delete(r.uid);
    const connection = new Connection<Auth>({
      transport,
      handle,
      auth: identity,
      id: r.uid,
      conv: r.conv,
      remoteAddress: r.remoteAddress,
      remotePort: r.remotePort,
      localAddress: r.localAddress,
      localPort: r.localPort,
      // The session's own ceilings: a secure handshake may have agreed an MTU below ours.
      maxMessageSize: r.limits?.maxMessageSize ?? this.kcp.maxMessageSize,
      maxDatagramSize: r.limits?.maxDatagramSize ?? maxDatagramSize(this.kcp.mtu, this.mode),
      maxSendQueueBytes: this.kcp.maxSendQueueBytes,
      highWaterMark: this.highWaterMark,
      maxReceiveQueueBytes: this.maxReceiveQueueBytes,
      stream: this.kcp.stream,
    });
    this.byHandle.set(handle, connection);
    this.byId.set(r.uid, connection);
    this.idByHandle.set(handle, r.uid);
    // Accepted just before close(): the native side closes it with the rest; the application
    // is not handed a connection that is already ending.
    if (this.closing) return;
    this.emit('connection', connection);
  }

  /** @internal */
  message(handle: number, data: Buffer): void {
    this.byHandle.get(handle)?._message(data);
  }

  /** @internal */
  datagram(handle: number, channel: number, data: Buffer): void {
    this.byHandle.get(handle)?._datagram(data, channel);
  }

  /** @internal */
  closed(handle: number, info: CloseInfo): void {
    const connection = this.byHandle.get(handle);
    if (!connection) return;
    this.byHandle.delete(handle);
    const id = this.idByHandle.get(handle);
    this.idByHandle.delete(handle);
    if (id !== undefined) this.byId.delete(id);
    if (this.byHandle.size === 0) this.onLastClose?.();
    connection._closed(info);
  }

  /** @internal */
  progress(handle: number, ackedBytes: number): void {
    this.byHandle.get(handle)?._progress(ackedBytes);
  }

  /** @internal */
  error(handle: number, code: string, message: string): void {
    this.byHandle.get(handle)?._error(code, message);
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
    const answer = (verdict: unknown) => {
      let rejection: AuthRejection | undefined;
      try {
        // A Proxy's getPrototypeOf trap can throw here: that refuses, as a throw would.
        rejection = verdict instanceof AuthRejection ? verdict : undefined;
      } catch (err) {
        refused(err);
        return;
      }
      const accept = verdict !== false && verdict !== null && verdict !== undefined && rejection === undefined;
      const user = accept ? userIdOf(verdict) : undefined;
      if (user !== undefined && Buffer.byteLength(user) > MAX_USER_ID_BYTES) {
        refused(
          new RangeError(`authenticate answered a user id of ${Buffer.byteLength(user)} bytes of UTF-8; at most ${MAX_USER_ID_BYTES}`),
          `authenticate answered a user id longer than ${MAX_USER_ID_BYTES} bytes; the client was refused`,
        );
        return;
      }
      try {
        // A close() issued while authenticate ran (even from inside it, before this answer)
        // ends the attempt as `shutdown`: the close refuses every pending authentication with
        // a REJECT `shutdown`, so answering here would race it with an ACCEPT or a refusal.
        if (transport.native.closed || this.closing) return;
        if (rejection) {
          transport.native.rejectAuth(request.id, rejection.code);
          return;
        }
        if (accept) {
          // Kept until the connection's `accepted` record; bounded in case one never comes.
          if (this.identities.size >= MAX_PENDING_IDENTITIES) {
            this.identities.delete(this.identities.keys().next().value as string);
          }
          this.identities.set(request.uid, verdict as Auth);
        }
        // The user id crosses once, here: the native side puts it in every record of the
        // connection.
        transport.native.resolveAuth(request.id, accept, user);
      } catch {
        // Closed meanwhile: the pending handshake ended with the endpoint.
        this.identities.delete(request.uid);
      }
    };
    const peer: AuthPeer = {
      id: request.uid,
      remoteAddress: request.remoteAddress,
      remotePort: request.remotePort,
      localAddress: request.localAddress,
      localPort: request.localPort,
    };
    const refused = (err: unknown, message = 'authenticate threw; the client was refused') => {
      answer(false);
      const error = new KcpAuthenticateError(message, { cause: err });
      if (this.listenerCount('error') > 0) {
        // A throwing `error` listener surfaces on its own tick, as other handlers' errors do,
        // not as an unhandled rejection of the authenticate promise.
        try {
          this.emit('error', error);
        } catch (listenerError) {
          rethrowLater(listenerError);
        }
        return;
      }
      this.warnAuthenticateFailure(err);
    };
    try {
      const verdict: unknown = authenticate ? authenticate(request.token, peer) : true;
      if (typeof verdict === 'object' && verdict !== null && typeof (verdict as PromiseLike<unknown>).then === 'function') {
        Promise.resolve(verdict).then(answer, refused);
      } else {
        answer(verdict);
      }
    } catch (err) {
      refused(err);
    }
  }

  /**
   * Without an `error` listener a throwing `authenticate` would refuse clients unseen (its
   * record reads as an ordinary refusal): a process warning names the cause, once per distinct
   * message so that a failing database does not flood stderr.
   */
  private warnAuthenticateFailure(err: unknown): void {
    const detail = describeThrown(err);
    if (this.authWarnings.has(detail)) return;
    if (this.authWarnings.size >= MAX_AUTH_WARNINGS) return;
    this.authWarnings.add(detail);
    process.emitWarning(`authenticate threw (${detail}); the client was refused. Add a server 'error' listener to handle this.`, {
      type: 'KcpAuthenticateWarning',
      code: KcpAuthenticateError.code,
    });
  }

  /** @internal */
  events(events: KcpEvent[]): void {
    // A throwing handler does not cost the other records, nor the other handlers of the same
    // record: its error surfaces afterwards.
    for (const event of events) {
      if (this.onEvent) {
        try {
          this.onEvent(event);
        } catch (error) {
          rethrowLater(error);
        }
      }
      try {
        this.emit('event', event);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }
}

/**
 * Creates a server; `onConnection` is added as a `connection` listener. Like
 * `http.createServer`, the handler alone works too: `createServer((conn) => ...)`.
 * Every option is checked here (`KcpInvalidOptionError`), including unknown keys.
 */
export function createServer<Auth = unknown>(onConnection?: (connection: Connection<Auth>) => void): Server<Auth, 'secure'>;
export function createServer<Auth = unknown>(options: RawServerOptions, onConnection?: (connection: Connection<Auth>) => void): Server<Auth, 'raw'>;
export function createServer<Auth = unknown>(options?: SecureServerOptions<Auth>, onConnection?: (connection: Connection<Auth>) => void): Server<Auth, 'secure'>;
export function createServer<Auth = unknown>(options?: ServerOptions<Auth>, onConnection?: (connection: Connection<Auth>) => void): Server<Auth>;
export function createServer<Auth = unknown>(
  optionsOrHandler?: ServerOptions<Auth> | ((connection: Connection<Auth>) => void),
  onConnection?: (connection: Connection<Auth>) => void,
): Server<Auth> {
  let options = optionsOrHandler;
  let handler = onConnection;
  if (typeof optionsOrHandler === 'function') {
    if (onConnection !== undefined) throw new KcpInvalidOptionError('createServer(handler) takes no second argument');
    options = undefined;
    handler = optionsOrHandler;
  } else if (optionsOrHandler === null || (optionsOrHandler !== undefined && typeof optionsOrHandler !== 'object')) {
    throw new KcpInvalidOptionError(`createServer() takes an options object and/or a connection handler, got ${describe(optionsOrHandler)}`);
  }
  if (handler !== undefined && typeof handler !== 'function') {
    throw new KcpInvalidOptionError(`the connection handler must be a function, got ${describe(handler)}`);
  }
  const server = new Server<Auth>(options as ServerOptions<Auth> | undefined);
  if (handler) server.on('connection', handler);
  return server;
}
