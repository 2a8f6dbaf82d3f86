/** One KCP conversation as the application sees it. */

import { EventEmitter } from 'node:events';

import { datagramHeader, datagramIterator, HeldDatagrams, MAX_DATAGRAM_QUEUE_BYTES, type Datagram, type DatagramOptions } from './datagram';
import {
  KcpClosedError,
  KcpInvalidOptionError,
  KcpMessageTooLargeError,
  KcpNotSupportedError,
  KcpQueueFullError,
  errorFor,
  handshakeError,
  type KcpError,
} from './errors';
import { rethrowLater, type CloseInfo, type CloseReason, type ConnectionLimits, type FailReason } from './records';
import type { NativeConnectionStats } from './native';
import type { JsStages } from './stage-trace';
import { Refusal } from './transport';
import type { NativeConnectedInfo } from './native';
import { describe } from './options';

/** `host:port`, with an IPv6 host in brackets as in a URL (`[::1]:4000`). */
const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** One connection's counters so far (`connection.stats()`; `docs/metrics.md`). */
export type ConnectionStats = NativeConnectionStats;

/** `connecting` only on a client: a secure handshake runs, or `connect()` resolves its host name. */
export type ConnectionState = 'connecting' | 'established' | 'closing' | 'closed';

/**
 * @internal What a connection needs of its transport: the endpoint's `Transport`, or the stand-in
 * a client uses while it resolves its host name.
 */
export interface ConnectionTransport {
  readonly native: {
    readonly closed: boolean;
    connectionStats(handle: number): NativeConnectionStats | null;
    injectFault(handle: number): void;
  };
  send(handle: number, data: Uint8Array): void;
  sendDatagram(handle: number, data: Uint8Array, flags: number, channel: number, limit: number): boolean;
  reportDatagramTooLarge(handle: number, size: number): void;
  reportDatagramDrops(handle: number, count: number): void;
  reportRefusal(handle: number, refusal: Refusal, size: number): void;
  setDeliveryPaused(handle: number, paused: boolean): void;
  closeConnection(handle: number, code?: number, text?: string): void;
  /** The bench's stage trace, when on. */
  readonly stages?: JsStages | undefined;
}

/** @internal A summary with nothing counted: a connection that never reached the network. */
export function emptyCloseInfo(reason: CloseReason, initiator: CloseInfo['initiator']): CloseInfo {
  return {
    reason,
    initiator,
    durationMs: 0,
    datagramsIn: 0,
    bytesIn: 0,
    datagramsOut: 0,
    bytesOut: 0,
    payloadBytesIn: 0,
    payloadBytesOut: 0,
    messagesIn: 0,
    messagesOut: 0,
    retransmittedSegments: 0,
    guardDrops: 0,
    srttMs: 0,
    rttvarMs: 0,
    rtoMs: 0,
    unreliableSent: 0,
    unreliableReceived: 0,
    unreliableDropped: 0,
  };
}

/** @internal */
export interface ConnectionInit {
  transport: ConnectionTransport;
  handle: number;
  /** What the server's `authenticate` returned for this client. */
  auth?: unknown;
  id: string;
  conv: number;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  maxMessageSize: number;
  /** Secure mode: the largest datagram payload (`mtu` − 31); 0 in raw mode (no datagrams). */
  maxDatagramSize?: number;
  maxSendQueueBytes: number;
  highWaterMark: number;
  maxReceiveQueueBytes: number;
  stream: boolean;
  /** A secure-mode client (or one resolving its host) starts `connecting`; everything else is established at once. */
  connecting?: boolean;
  /** Called once after `close` was emitted (a client uses it to stop its endpoint). */
  onClosed?: () => void;
}

export interface ConnectionEvents {
  /** A client connection is open: its secure handshake completed (or, in raw mode, its host name resolved). */
  connect: [];
  message: [data: Buffer];
  /** Secure mode: an unreliable datagram (`sendDatagram()` on the other side) and its channel. */
  datagram: [data: Buffer, channel: number];
  close: [reason: CloseReason, info: CloseInfo];
  drain: [];
  error: [error: KcpError];
}

/** What `send()` takes: bytes in any binary form (copied at the call), or a string (UTF-8). */
export type SendData = string | ArrayBufferView | ArrayBuffer | SharedArrayBuffer;

/** The range of `close(code)`: WebSocket's 1000 (normal) or its application range 3000..4999. */
const CLOSE_CODE_MIN = 3000;
const CLOSE_CODE_MAX = 4999;
const CLOSE_CODE_NORMAL = 1000;
/** A close reason's longest UTF-8 encoding, as WebSocket's (a control frame's 125 bytes less the code). */
const CLOSE_REASON_MAX_BYTES = 123;

function isDetached(buffer: ArrayBufferLike): boolean {
  const flag = (buffer as { detached?: unknown }).detached;
  if (typeof flag === 'boolean') return flag;
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/** `%TypedArray%.prototype.at`: it validates its receiver, throwing for a view out of bounds or detached. */
const typedArrayAt = (Object.getPrototypeOf(Uint8Array.prototype) as { at: (this: ArrayBufferView, index: number) => unknown }).at;

/**
 * A view whose bytes are gone: its resizable ArrayBuffer shrank below the view's end (or was
 * detached). Its `byteLength` reads 0 (a TypedArray) or throws (a DataView); either way it
 * must not be sent as an empty message.
 */
function outOfBounds(view: ArrayBufferView): boolean {
  try {
    if (view instanceof DataView) void view.byteLength;
    else typedArrayAt.call(view, 0);
    return false;
  } catch {
    return true;
  }
}

/**
 * @internal A Uint8Array over the caller's bytes (no copy: the transport copies at the call).
 * `what` names the call in errors (`send()`, `broadcast()`).
 */
export function bytesOf(data: unknown, what = 'send()'): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data);
  let buffer: ArrayBufferLike;
  let view: () => Uint8Array;
  if (ArrayBuffer.isView(data)) {
    buffer = data.buffer;
    if (!(buffer.byteLength === 0 && isDetached(buffer)) && outOfBounds(data)) {
      throw new KcpInvalidOptionError(
        `${what} was given a ${data instanceof DataView ? 'DataView' : 'TypedArray'} out of bounds of its ArrayBuffer (the buffer was resized below the view's end)`,
      );
    }
    view = () => (data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
    buffer = data;
    view = () => new Uint8Array(data);
  } else {
    throw new KcpInvalidOptionError(`${what} takes a string, Buffer, TypedArray, DataView or ArrayBuffer, got ${describe(data)}`);
  }
  if (buffer.byteLength === 0 && isDetached(buffer)) {
    throw new KcpInvalidOptionError(`${what} was given a detached ArrayBuffer`);
  }
  return view();
}

// Typed listener methods: a misspelt event name is an error naming the event map, and each
// listener gets its event's arguments.
export interface Connection<Auth = unknown> {
  on<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  once<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  off<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  addListener<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  removeListener<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  prependListener<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
  prependOnceListener<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this;
}

/**
 * A KCP connection. Emits `message` (a Buffer per message, or per chunk in stream mode),
 * `drain` when a full send queue has emptied below half the high-water mark, `close` with the
 * reason and summary, and `error` for failures reported by the engine.
 *
 * Received messages wait, like a paused stream, until the connection has a `message` listener
 * or an iterator (`for await (const m of connection)`). Each message goes to one reader: to
 * the iterators while one is being iterated, otherwise to the `message` listeners. Past `maxReceiveQueueBytes` held, the
 * connection stops taking messages from its engine and KCP's receive window pushes back on
 * the peer. Nothing is dropped.
 */
export class Connection<Auth = unknown> extends EventEmitter<ConnectionEvents> {
  // Identity fields are getters over private state: read-only at runtime too (an assignment
  // throws in strict code), so no application can rename a connection under the server's maps.
  private _id: string;
  private readonly _auth: Auth;
  private _remoteAddress: string;
  private _remotePort: number;
  private _localAddress: string;
  private _localPort: number;
  private readonly _stream: boolean;
  private _state: ConnectionState;
  private _conv: number;
  private failure: KcpError | undefined;
  private wasEstablished: boolean;
  /** The application's `close(code, reason)`, for the local `close` event. */
  private closeCode: number | undefined;
  private closeDescription: string | undefined;
  private transport: ConnectionTransport;
  private handle: number;
  /** Lowered when a secure handshake agrees an MTU smaller than this side's. */
  private _maxMessageSize: number;
  private readonly maxSendQueueBytes: number;
  private readonly highWaterMark: number;
  private onClosed: (() => void) | undefined;
  private sentBytes = 0;
  private ackedBytes = 0;
  /**
   * Messages sent while `connecting` (copies), handed to the native side only once JavaScript
   * hears the handshake completed: a `close()` before then must be able to take them back, and
   * the I/O thread sends what it holds the moment the server's ACCEPT arrives.
   */
  private unsent: Uint8Array[] = [];
  private waitingForDrain = false;
  private _closeInfo: CloseInfo | undefined;
  private readonly maxReceiveQueueBytes: number;
  /** Messages received and not yet handed to a listener or an iterator (copies), from `heldHead`. */
  private held: Buffer[] = [];
  private heldHead = 0;
  private heldBytes = 0;
  /** The native side was asked to stop taking this connection's messages. */
  private deliveryPaused = false;
  private flowScheduled = false;
  private iterators = 0;
  private waiters: (() => void)[] = [];
  /** The agreed MTU − 31 in secure mode (− 61 with `fec`; this side's MTU until established), 0 in raw mode. */
  private _maxDatagramSize: number;
  /**
   * Created by the first datagram held or `datagrams()`: raw-mode connections and those that
   * never use datagrams (most) do not carry the queue (issue #19: memory per idle connection).
   */
  private heldDatagrams: HeldDatagrams | undefined;
  private datagramFlowScheduled = false;

  /** @internal */
  constructor(init: ConnectionInit) {
    super();
    this.transport = init.transport;
    this.handle = init.handle;
    this._id = init.id;
    this._conv = init.conv;
    this._state = init.connecting ? 'connecting' : 'established';
    this.wasEstablished = !init.connecting;
    this._auth = init.auth as Auth;
    this._remoteAddress = init.remoteAddress;
    this._remotePort = init.remotePort;
    this._localAddress = init.localAddress;
    this._localPort = init.localPort;
    this._stream = init.stream;
    this._maxMessageSize = init.maxMessageSize;
    this.maxSendQueueBytes = init.maxSendQueueBytes;
    this.highWaterMark = init.highWaterMark;
    this.onClosed = init.onClosed;
    this.maxReceiveQueueBytes = init.maxReceiveQueueBytes;
    this._maxDatagramSize = init.maxDatagramSize ?? 0;
    this.heldDatagrams = undefined;
    // One listener shared by every connection (EventEmitter calls it with the connection as
    // `this`): no closure per connection.
    (this as EventEmitter).on('newListener', Connection.onNewListener);
  }

  /**
   * A `message` listener added later gets what was held, in order, on the next tick (like a
   * stream's `on('data')`); a `datagram` listener likewise.
   */
  private static onNewListener(this: Connection, name: string | symbol): void {
    if (name === 'message' && this.heldHead < this.held.length) this.scheduleFlow();
    else if (name === 'datagram' && this.heldDatagrams !== undefined && this.heldDatagrams.size > 0) this.scheduleDatagramFlow();
  }

  /** The datagram queue, created on first use. */
  private datagramQueue(): HeldDatagrams {
    this.heldDatagrams ??= new HeldDatagrams((count) => this.transport.reportDatagramDrops(this.handle, count));
    return this.heldDatagrams;
  }

  /** Connection id: unique across processes and restarts, time-sortable. */
  get id(): string {
    return this._id;
  }

  /**
   * On a server: what its `authenticate` returned for this client (the player's identity or
   * context). `undefined` without `authenticate` (raw mode included) and on client connections.
   */
  get auth(): Auth {
    return this._auth;
  }

  get remoteAddress(): string {
    return this._remoteAddress;
  }

  get remotePort(): number {
    return this._remotePort;
  }

  get localAddress(): string {
    return this._localAddress;
  }

  get localPort(): number {
    return this._localPort;
  }

  /** Stream mode: no message boundaries, `message` events carry chunks. */
  get stream(): boolean {
    return this._stream;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The KCP conversation id (secure mode: assigned by the server when the handshake completes; 0 before). */
  get conv(): number {
    return this._conv;
  }

  /**
   * The largest message `send()` takes (message mode). In secure mode the handshake agrees it:
   * the smallest of this side's `maxMessageSize`, the peer's, and what the peer's receive
   * window (`rcvWnd`, at most 127 fragments) holds at the agreed MTU, so the peer can always
   * receive it. A client's value is final once `ready()` resolves. Raw mode cannot agree it:
   * both sides must be configured alike.
   */
  get maxMessageSize(): number {
    return this._maxMessageSize;
  }

  /**
   * The largest payload `sendDatagram()` takes: the agreed MTU − 31 in secure mode, − 61 when
   * this side sends `fec` parity (final once `ready()` resolves); 0 in raw mode, which has no
   * datagrams.
   */
  get maxDatagramSize(): number {
    return this._maxDatagramSize;
  }

  /**
   * Resolves once the connection is established (at once in raw mode and on a server), and
   * for good: a connection that was established and then closed still resolves. Rejects for
   * one that closed before it was established, with the handshake's typed error
   * (`KcpHandshakeTimeoutError`, `KcpAuthRejectedError`, `KcpServerFullError`, ...), a
   * `KcpResolveError` for a host name, or `KcpClosedError` when the application closed it.
   */
  ready(): Promise<void> {
    // Established once is ready for good, whatever followed: `ready()` says the handshake
    // succeeded, `close` says the connection ended.
    if (this.wasEstablished) return Promise.resolve();
    if (this._state === 'closed') {
      return Promise.reject(this.failure ?? new KcpClosedError(`connection ${this.id} closed before it was established`));
    }
    return new Promise((resolve, reject) => {
      const onConnect = () => {
        this.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.off('connect', onConnect);
        reject(this.failure ?? new KcpClosedError(`connection ${this.id} closed before it was established`));
      };
      this.once('connect', onConnect);
      this.once('close', onClose);
    });
  }

  /**
   * Bytes accepted by `send()` and not yet acknowledged by the peer, like `ws`'s
   * `bufferedAmount`: it falls as acknowledgements arrive (updated once per batch the I/O
   * thread publishes), whether or not anyone waits for `drain`.
   */
  get queuedBytes(): number {
    return this.sentBytes - this.ackedBytes;
  }

  /** The summary, once closed. */
  get closeInfo(): CloseInfo | undefined {
    return this._closeInfo;
  }

  /**
   * Queues a message: a string (UTF-8), a Buffer, any TypedArray, a DataView or an
   * ArrayBuffer. The bytes are copied at the call: the caller may reuse, shrink or detach its
   * buffer as soon as `send()` returns. Returns false when the queue is at or above the
   * high-water mark (wait for `drain`). Throws `KcpQueueFullError` beyond
   * `maxSendQueueBytes`, `KcpMessageTooLargeError` beyond `maxMessageSize`,
   * `KcpClosedError` after `close()`, and
   * `KcpInvalidOptionError` for anything else (a detached buffer included).
   */
  send(data: SendData): boolean {
    return this.queue(bytesOf(data));
  }

  /**
   * Secure mode: sends `data` as one unreliable datagram, outside the reliable stream: never
   * retransmitted, never waiting for (or holding back) anything. For updates that are worthless
   * once a newer one exists (positions, inputs). `options.channel` (0..255) tags it;
   * `options.sequenced` makes the receiver drop it if a newer datagram of that channel was
   * already delivered. Same buffer rules as `send()` (copied at the call). At most
   * `maxDatagramSize` bytes: the agreed MTU − 31 (1169 with the `game` preset), or − 61 when
   * this side sends `fec` parity; larger throws `KcpMessageTooLargeError`.
   * Returns false, without blocking or queueing, when the datagram queue is full (about 1 MiB
   * waiting to be sealed) or while a secure client is still `connecting`. Throws
   * `KcpClosedError` once closing, and `KcpNotSupportedError` in raw mode: no plain KCP peer
   * understands datagrams.
   */
  sendDatagram(data: SendData, options?: DatagramOptions): boolean {
    if (this._maxDatagramSize === 0) {
      throw new KcpNotSupportedError('sendDatagram() needs secure mode: raw KCP has no datagrams (no plain KCP peer understands them)');
    }
    const [flags, channel] = datagramHeader(options);
    const bytes = bytesOf(data, 'sendDatagram()');
    if (this._state !== 'established' && this._state !== 'connecting') {
      throw new KcpClosedError(`connection ${this.id} is ${this._state}`);
    }
    if (bytes.length > this._maxDatagramSize) {
      this.transport.reportDatagramTooLarge(this.handle, bytes.length);
      throw new KcpMessageTooLargeError(`datagram of ${bytes.length} bytes exceeds ${this._maxDatagramSize}, the most one datagram carries at the agreed MTU (maxDatagramSize)`);
    }
    if (this._state === 'connecting') return false;
    return this.transport.sendDatagram(this.handle, bytes, flags, channel, MAX_DATAGRAM_QUEUE_BYTES);
  }

  /**
   * Secure mode: received datagrams as an async iterator of `{ data, channel }`. Like
   * `messages()`: it takes over from `datagram` listeners from its first `next()` until it ends,
   * and ends when the connection has closed and every held datagram was read. A reader that
   * falls behind holds at most 256 datagrams; older ones are dropped (a late datagram is
   * worthless) and counted.
   */
  datagrams(): AsyncIterableIterator<Datagram> {
    const held = this.datagramQueue();
    return datagramIterator(
      held,
      () => this._state === 'closed',
      () => {
        if (held.iterators === 0 && held.size > 0 && this.listenerCount('datagram') > 0) this.scheduleDatagramFlow();
      },
    );
  }

  /** @internal `data` is a view of a record batch: copied when held. */
  _datagram(data: Buffer, channel: number): void {
    if (this._state === 'closed') return;
    const idle = this.heldDatagrams === undefined || (this.heldDatagrams.iterators === 0 && this.heldDatagrams.size === 0);
    if (idle && this.listenerCount('datagram') > 0) {
      this.emit('datagram', data, channel);
      return;
    }
    const held = this.datagramQueue();
    held.push({ data: Buffer.from(data), channel });
    if (held.iterators === 0 && this.listenerCount('datagram') > 0) this.scheduleDatagramFlow();
  }

  private scheduleDatagramFlow(): void {
    if (this.datagramFlowScheduled) return;
    this.datagramFlowScheduled = true;
    process.nextTick(() => {
      this.datagramFlowScheduled = false;
      const held = this.datagramQueue();
      while (held.iterators === 0 && this.listenerCount('datagram') > 0) {
        const item = held.shift();
        if (item === undefined) break;
        try {
          this.emit('datagram', item.data, item.channel);
        } catch (error) {
          rethrowLater(error);
        }
      }
    });
  }

  /** @internal The connection's handle on its transport. */
  get _handle(): number {
    return this.handle;
  }

  /**
   * @internal One connection's share of a broadcast (size already checked): queued when
   * established and the queue has room, otherwise skipped (a full queue is reported as
   * `send()` reports it). Never throws.
   */
  _offer(bytes: Uint8Array): boolean {
    if (this._state !== 'established') return false;
    // A broadcast is checked against the server's ceiling; a secure session may have agreed a
    // smaller MTU, and is then skipped with the refusal logged, as send() would refuse it.
    if (!this.stream && bytes.length > this._maxMessageSize) {
      this.transport.reportRefusal(this.handle, Refusal.OversizedMessage, bytes.length);
      return false;
    }
    if (this.queuedBytes + bytes.length > this.maxSendQueueBytes) {
      this.transport.reportRefusal(this.handle, Refusal.SendQueueFull, bytes.length);
      return false;
    }
    this.enqueue(bytes);
    return true;
  }

  private queue(bytes: Uint8Array): boolean {
    // Each refusal is also reported to the native side, so it is logged with the connection's
    // identity (`kcp:protocol_violation`); the report rides in the next send batch.
    // While a secure handshake runs, messages wait here and leave when it completes.
    if (this._state !== 'established' && this._state !== 'connecting') {
      this.transport.reportRefusal(this.handle, Refusal.MessageOnClosedConnection, bytes.length);
      throw new KcpClosedError(`connection ${this.id} is ${this._state}`);
    }
    if (!this.stream && bytes.length > this._maxMessageSize) {
      this.transport.reportRefusal(this.handle, Refusal.OversizedMessage, bytes.length);
      throw new KcpMessageTooLargeError(`message of ${bytes.length} bytes exceeds maxMessageSize ${this._maxMessageSize}`);
    }
    if (this.queuedBytes + bytes.length > this.maxSendQueueBytes) {
      this.transport.reportRefusal(this.handle, Refusal.SendQueueFull, bytes.length);
      throw new KcpQueueFullError(
        `${this.queuedBytes} bytes queued; ${bytes.length} more would exceed maxSendQueueBytes ${this.maxSendQueueBytes}`,
      );
    }
    return this.enqueue(bytes);
  }

  private enqueue(bytes: Uint8Array): boolean {
    this.sentBytes += bytes.length;
    const full = this.queuedBytes >= this.highWaterMark;
    if (full) this.waitingForDrain = true;
    if (this._state === 'connecting') this.unsent.push(Buffer.from(bytes));
    else this.transport.send(this.handle, bytes);
    return !full;
  }

  /** Forgets what was sent while `connecting`: it never left, and is no longer queued. */
  private dropUnsent(): void {
    for (const bytes of this.unsent) this.sentBytes -= bytes.length;
    this.unsent = [];
  }

  /**
   * The connection's counters so far, read from its engine (datagrams, bytes, messages, KCP
   * segments in and out, retransmissions, srtt, ...); `null` once it has closed (its final
   * summary is `closeInfo`).
   */
  stats(): ConnectionStats | null {
    if (this._state === 'closed' || this.transport.native.closed) return null;
    try {
      return this.transport.native.connectionStats(this.handle);
    } catch {
      // The endpoint closed meanwhile.
      return null;
    }
  }

  /**
   * Closes gracefully: queued messages keep flowing for up to `linger` ms, then `close`
   * fires (reason `local_closed`). `code` (1000, or 3000..4999 as WebSocket's application
   * range) and `reason` (at most 123 bytes of UTF-8) are the application's own and appear in
   * this side's `close` info as `code` and `description`. In secure mode the DISCONNECT carries
   * them, so the peer's `close` info (reason `peer_closed`) has them too; raw KCP cannot carry
   * them, so a raw peer sees its usual close. Idempotent: once closing or closed, a further
   * call does nothing whatever its arguments (the first call's code and reason stand).
   */
  close(code?: number, reason?: string): void {
    if (this._state !== 'established' && this._state !== 'connecting') return;
    if (code !== undefined) {
      if (typeof code !== 'number' || !Number.isInteger(code) || (code !== CLOSE_CODE_NORMAL && (code < CLOSE_CODE_MIN || code > CLOSE_CODE_MAX))) {
        throw new KcpInvalidOptionError(`close code must be ${CLOSE_CODE_NORMAL} or an integer in ${CLOSE_CODE_MIN}..${CLOSE_CODE_MAX}, got ${describe(code)}`);
      }
    }
    if (reason !== undefined) {
      if (typeof reason !== 'string') throw new KcpInvalidOptionError(`close reason must be a string, got ${describe(reason)}`);
      if (code === undefined) throw new KcpInvalidOptionError('a close reason needs a close code');
      const length = Buffer.byteLength(reason);
      if (length > CLOSE_REASON_MAX_BYTES) {
        throw new KcpInvalidOptionError(`close reason is ${length} bytes of UTF-8; at most ${CLOSE_REASON_MAX_BYTES}`);
      }
    }
    this.closeCode = code;
    this.closeDescription = reason;
    // Closed before it was ready: the handshake is abandoned and nothing sent meanwhile leaves
    // (nor is counted), even if the handshake completes on the I/O thread before it hears of
    // this close (the server then sees the connection close at once, as `peer_closed`).
    if (this._state === 'connecting') this.dropUnsent();
    this._state = 'closing';
    this.transport.closeConnection(this.handle, code, reason);
  }

  /**
   * Messages as an async iterator: every message not yet handed to a `message` listener,
   * including those that arrived before this was called; ends when the connection has closed
   * and every message was read. Each message goes to exactly one reader: an iterator takes
   * over from the first `next()` call (the first turn of a `for await` loop) until it ends
   * (`break`, `return()`, or the end of the messages); meanwhile `message` listeners get
   * nothing. An iterator that was created and never iterated reads nothing and holds nothing.
   * An iterator that falls behind holds at most `maxReceiveQueueBytes` before the peer is
   * pushed back. Several iterators at once share the messages (each message goes to one of
   * them). Leaving the loop keeps later messages for the next reader (a listener or iterator).
   */
  messages(): AsyncIterableIterator<Buffer> {
    // 'idle' until the first next(): a forgotten iterator must not take messages from listeners.
    let phase: 'idle' | 'reading' | 'done' = 'idle';
    const stop = () => {
      const wasReading = phase === 'reading';
      phase = 'done';
      if (!wasReading) return;
      this.iterators -= 1;
      // A next() of this iterator still waiting resolves `done` (it re-checks `phase`).
      this.wakeIterators();
      // Held messages go to `message` listeners again once no iterator reads them.
      if (this.iterators === 0 && this.heldHead < this.held.length && this.listenerCount('message') > 0) this.scheduleFlow();
    };
    const iterator: AsyncIterableIterator<Buffer> = {
      next: async () => {
        if (phase === 'idle') {
          phase = 'reading';
          this.iterators += 1;
        }
        while (phase === 'reading' && this.heldHead === this.held.length && this._state !== 'closed') {
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
        if (phase !== 'reading') return { value: undefined, done: true };
        const value = this.takeHeld();
        if (value !== undefined) return { value, done: false };
        stop();
        return { value: undefined, done: true };
      },
      return: async () => {
        stop();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this.messages();
  }

  /** @internal Sets what runs once after `close` was emitted (a client stops its endpoint). */
  _onClosed(callback: () => void): void {
    this.onClosed = callback;
  }

  /** @internal Makes the next engine call of this connection panic (fault drills, tests). */
  _injectEngineFault(): void {
    this.transport.native.injectFault(this.handle);
  }

  /** @internal `data` is a view of a record batch: copied when held. */
  _message(data: Buffer): void {
    if (this._state === 'closed') return;
    const listening = this.listenerCount('message') > 0;
    if (this.iterators > 0) {
      // A reading iterator has the messages: listeners get none of them (one reader per message).
      this.hold(Buffer.from(data));
      return;
    }
    if (listening && this.heldHead === this.held.length) {
      this.transport.stages?.handler();
      this.emit('message', data);
      return;
    }
    this.hold(Buffer.from(data));
    if (listening) this.scheduleFlow();
  }

  /** @internal Bytes of received messages waiting for a listener or an iterator. */
  _heldBytes(): number {
    return this.heldBytes;
  }

  private hold(copy: Buffer): void {
    this.held.push(copy);
    this.heldBytes += copy.length;
    if (!this.deliveryPaused && this.heldBytes >= this.maxReceiveQueueBytes && this._state !== 'closed') {
      this.deliveryPaused = true;
      this.transport.setDeliveryPaused(this.handle, true);
    }
    this.wakeIterators();
  }

  private takeHeld(): Buffer | undefined {
    if (this.heldHead === this.held.length) return undefined;
    const value = this.held[this.heldHead]!;
    this.held[this.heldHead] = undefined as unknown as Buffer;
    this.heldHead += 1;
    if (this.heldHead === this.held.length) {
      this.held = [];
      this.heldHead = 0;
    } else if (this.heldHead >= 1024 && this.heldHead * 2 >= this.held.length) {
      this.held = this.held.slice(this.heldHead);
      this.heldHead = 0;
    }
    this.heldBytes -= value.length;
    if (this.deliveryPaused && this.heldBytes <= this.maxReceiveQueueBytes / 2) {
      this.deliveryPaused = false;
      if (this._state !== 'closed') this.transport.setDeliveryPaused(this.handle, false);
    }
    return value;
  }

  private wakeIterators(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private scheduleFlow(): void {
    if (this.flowScheduled) return;
    this.flowScheduled = true;
    process.nextTick(() => this.flow());
  }

  /** Hands held messages to `message` listeners, in order, while there are listeners. */
  private flow(): void {
    this.flowScheduled = false;
    while (this.iterators === 0 && this.listenerCount('message') > 0) {
      const data = this.takeHeld();
      if (data === undefined) break;
      try {
        this.emit('message', data);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }

  /** @internal */
  _progress(ackedBytes: number): void {
    this.ackedBytes = ackedBytes;
    if (this.waitingForDrain && this.queuedBytes <= this.highWaterMark / 2) {
      this.waitingForDrain = false;
      this.emit('drain');
    }
  }

  /** @internal */
  _error(code: string, message: string): void {
    const error = errorFor(code, message);
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  /** @internal The secure handshake completed; `limits` follow the MTU it agreed. */
  _established(conv: number, limits?: ConnectionLimits): void {
    if (this._state !== 'connecting') return;
    this._conv = conv;
    if (limits) {
      this._maxMessageSize = limits.maxMessageSize;
      this._maxDatagramSize = limits.maxDatagramSize;
    }
    // A secure handshake may agree a ceiling below ours (a smaller MTU, the server's
    // maxMessageSize or its receive window): a message sent meanwhile that no longer fits fails
    // the connection, and nothing sent meanwhile leaves (none is lost or cut alone).
    const tooLarge = this.stream ? undefined : this.unsent.find((bytes) => bytes.length > this._maxMessageSize);
    if (tooLarge !== undefined) {
      this.dropUnsent();
      this.transport.reportRefusal(this.handle, Refusal.OversizedMessage, tooLarge.length);
      this.transport.closeConnection(this.handle);
      this._fail(
        new KcpMessageTooLargeError(
          `a message of ${tooLarge.length} bytes sent while connecting exceeds maxMessageSize ${this._maxMessageSize} as agreed with the server (its maxMessageSize, its receive window and the MTU); nothing was sent`,
        ),
      );
      return;
    }
    this._state = 'established';
    this.wasEstablished = true;
    // What was sent while connecting leaves first, in order, ahead of anything sent on `connect`.
    const unsent = this.unsent;
    this.unsent = [];
    for (const bytes of unsent) this.transport.send(this.handle, bytes);
    this.emit('connect');
  }

  /** @internal The secure handshake failed: `error` (if listened to), then `close`. */
  _connectFailed(reason: FailReason, appCode?: number): void {
    this._fail(handshakeError(reason, hostPort(this.remoteAddress, this.remotePort), appCode), reason === 'handshake_timeout' || reason === 'unreachable' ? 'local' : 'remote');
  }

  /**
   * @internal The connection never got going (a failed handshake, a host name that did not
   * resolve, a socket that could not bind): `error` (if listened to), then `close` with
   * `connect_failed`; `ready()` rejects with `error`.
   */
  _fail(error: KcpError, initiator: CloseInfo['initiator'] = 'local'): void {
    if (this._state === 'closed') return;
    this.failure = error;
    this.dropUnsent();
    if (this.listenerCount('error') > 0) this.emit('error', error);
    this._closed(emptyCloseInfo('connect_failed', initiator));
  }

  /**
   * @internal A client resolved the host and opened the connection on its endpoint: from now on
   * the connection is that session. What was sent meanwhile goes out, in order.
   */
  _attach(transport: ConnectionTransport, info: NativeConnectedInfo, established: boolean): void {
    this._id = info.uid;
    this._remoteAddress = info.remoteAddress;
    this._remotePort = info.remotePort;
    this._localAddress = info.localAddress;
    this._localPort = info.localPort;
    this._conv = info.conv;
    const pending = this.transport;
    this.transport = transport;
    this.handle = info.handle;
    if (pending instanceof PendingTransport) pending.replay(transport, info.handle);
    if (established) this._established(info.conv);
  }

  /** @internal */
  _closed(given: CloseInfo): void {
    if (this._state === 'closed') return;
    const info: CloseInfo =
      this.closeCode === undefined ? given : { ...given, code: this.closeCode, ...(this.closeDescription !== undefined ? { description: this.closeDescription } : {}) };
    this._state = 'closed';
    this._closeInfo = info;
    this.deliveryPaused = false;
    this.dropUnsent();
    // Iterators end once they have read what is held.
    this.wakeIterators();
    this.heldDatagrams?.wake();
    try {
      this.emit('close', info.reason, info);
    } finally {
      this.onClosed?.();
    }
  }
}

/**
 * @internal Stands in for a client connection's transport while its host name resolves:
 * refusals reported meanwhile are replayed once the connection is open (the connection itself
 * holds the messages sent while `connecting`), and a `close()` ends the connection at once.
 */
export class PendingTransport implements ConnectionTransport {
  readonly native = {
    closed: false,
    connectionStats: (): NativeConnectionStats | null => null,
    injectFault: (): void => undefined,
  };
  private queued: ((transport: ConnectionTransport, handle: number) => void)[] = [];
  /** The application closed the connection before it was opened. */
  cancelled = false;

  constructor(private readonly onClose: () => void) {}

  send(_handle: number, data: Uint8Array): void {
    const copy = Buffer.from(data);
    this.queued.push((t, handle) => t.send(handle, copy));
  }

  reportRefusal(_handle: number, refusal: Refusal, size: number): void {
    this.queued.push((t, handle) => t.reportRefusal(handle, refusal, size));
  }

  setDeliveryPaused(): void {
    // Nothing can arrive before the connection is open.
  }

  sendDatagram(): boolean {
    // Unreliable and worthless late: not queued while the host resolves.
    return false;
  }

  reportDatagramTooLarge(_handle: number, size: number): void {
    this.queued.push((t, handle) => t.reportDatagramTooLarge(handle, size));
  }

  reportDatagramDrops(): void {
    // Nothing can arrive before the connection is open.
  }

  closeConnection(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.queued = [];
    this.onClose();
  }

  replay(transport: ConnectionTransport, handle: number): void {
    const queued = this.queued;
    this.queued = [];
    for (const op of queued) op(transport, handle);
  }
}
