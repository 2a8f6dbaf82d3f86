/** One KCP conversation as the application sees it. */

import { EventEmitter } from 'node:events';

import {
  KcpClosedError,
  KcpEmptyMessageError,
  KcpInvalidOptionError,
  KcpMessageTooLargeError,
  KcpQueueFullError,
  errorFor,
  handshakeError,
  type KcpError,
} from './errors';
import type { CloseInfo, CloseReason, FailReason } from './records';
import type { NativeConnectionStats } from './native';
import { Refusal, type Transport } from './transport';

/** One connection's counters so far (`connection.stats()`; `docs/metrics.md`). */
export type ConnectionStats = NativeConnectionStats;

/** `connecting` only for a secure-mode client whose handshake runs. */
export type ConnectionState = 'connecting' | 'established' | 'closing' | 'closed';

export interface ConnectionInit {
  transport: Transport;
  handle: number;
  id: string;
  conv: number;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  maxMessageSize: number;
  maxSendQueueBytes: number;
  highWaterMark: number;
  stream: boolean;
  /** A secure-mode client starts `connecting`; everything else is established at once. */
  connecting?: boolean;
  /** Called once after `close` was emitted (a client uses it to stop its endpoint). */
  onClosed?: () => void;
}

export interface ConnectionEvents {
  /** A secure-mode client's handshake completed. */
  connect: [];
  message: [data: Buffer];
  close: [reason: CloseReason, info: CloseInfo];
  drain: [];
  error: [error: KcpError];
}

/**
 * A KCP connection. Emits `message` (a Buffer per message, or per chunk in stream mode),
 * `drain` when a full send queue has emptied below half the high-water mark, `close` with the
 * reason and summary, and `error` for failures reported by the engine.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  /** Connection id: unique across processes and restarts, time-sortable. */
  readonly id: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly stream: boolean;
  private _state: ConnectionState;
  private _conv: number;
  private failure: KcpError | undefined;
  private readonly transport: Transport;
  private readonly handle: number;
  private readonly maxMessageSize: number;
  private readonly maxSendQueueBytes: number;
  private readonly highWaterMark: number;
  private readonly onClosed: (() => void) | undefined;
  private sentBytes = 0;
  private ackedBytes = 0;
  private waitingForDrain = false;
  private _closeInfo: CloseInfo | undefined;

  /** @internal */
  constructor(init: ConnectionInit) {
    super();
    this.transport = init.transport;
    this.handle = init.handle;
    this.id = init.id;
    this._conv = init.conv;
    this._state = init.connecting ? 'connecting' : 'established';
    this.remoteAddress = init.remoteAddress;
    this.remotePort = init.remotePort;
    this.localAddress = init.localAddress;
    this.localPort = init.localPort;
    this.stream = init.stream;
    this.maxMessageSize = init.maxMessageSize;
    this.maxSendQueueBytes = init.maxSendQueueBytes;
    this.highWaterMark = init.highWaterMark;
    this.onClosed = init.onClosed;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The KCP conversation id (secure mode: assigned by the server when the handshake completes; 0 before). */
  get conv(): number {
    return this._conv;
  }

  /**
   * Resolves once the connection is established (at once in raw mode and on a server);
   * rejects with the handshake's typed error (`KcpHandshakeTimeoutError`,
   * `KcpAuthRejectedError`, `KcpServerFullError`, ...) or `KcpClosedError`.
   */
  ready(): Promise<void> {
    if (this._state === 'established' || this._state === 'closing') return Promise.resolve();
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

  /** Bytes accepted by `send()` and not yet acknowledged by the peer (as last reported). */
  get queuedBytes(): number {
    return this.sentBytes - this.ackedBytes;
  }

  /** The summary, once closed. */
  get closeInfo(): CloseInfo | undefined {
    return this._closeInfo;
  }

  /**
   * Queues a message. Returns false when the queue is at or above the high-water mark (wait
   * for `drain`). Throws `KcpQueueFullError` beyond `maxSendQueueBytes`,
   * `KcpMessageTooLargeError` beyond `maxMessageSize`, `KcpClosedError` after `close()`.
   */
  send(data: Uint8Array | string): boolean {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (!(bytes instanceof Uint8Array)) {
      throw new KcpInvalidOptionError('send() takes a Buffer, Uint8Array or string');
    }
    // Each refusal is also reported to the native side, so it is logged with the connection's
    // identity (`kcp:protocol_violation`); the report rides in the next send batch.
    // While a secure handshake runs, messages queue and leave when it completes.
    if (this._state !== 'established' && this._state !== 'connecting') {
      this.transport.reportRefusal(this.handle, Refusal.MessageOnClosedConnection, bytes.length);
      throw new KcpClosedError(`connection ${this.id} is ${this._state}`);
    }
    if (bytes.length === 0) {
      this.transport.reportRefusal(this.handle, Refusal.EmptyMessage, 0);
      throw new KcpEmptyMessageError('cannot send an empty message');
    }
    if (!this.stream && bytes.length > this.maxMessageSize) {
      this.transport.reportRefusal(this.handle, Refusal.OversizedMessage, bytes.length);
      throw new KcpMessageTooLargeError(`message of ${bytes.length} bytes exceeds maxMessageSize ${this.maxMessageSize}`);
    }
    if (this.queuedBytes + bytes.length > this.maxSendQueueBytes) {
      this.transport.reportRefusal(this.handle, Refusal.SendQueueFull, bytes.length);
      throw new KcpQueueFullError(
        `${this.queuedBytes} bytes queued; ${bytes.length} more would exceed maxSendQueueBytes ${this.maxSendQueueBytes}`,
      );
    }
    this.sentBytes += bytes.length;
    const full = this.queuedBytes >= this.highWaterMark;
    if (full) this.waitingForDrain = true;
    this.transport.send(this.handle, bytes, this.waitingForDrain);
    return !full;
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

  /** Closes gracefully: queued messages keep flowing for up to `linger` ms, then `close` fires. */
  close(): void {
    if (this._state !== 'established' && this._state !== 'connecting') return;
    this._state = 'closing';
    this.transport.closeConnection(this.handle);
  }

  /**
   * Messages as an async iterator, buffered from the moment this is called; ends when the
   * connection closes.
   */
  messages(): AsyncIterableIterator<Buffer> {
    const queue: Buffer[] = [];
    let wake: (() => void) | undefined;
    let done = this._state === 'closed';
    const onMessage = (data: Buffer) => {
      queue.push(data);
      wake?.();
    };
    const onClose = () => {
      done = true;
      wake?.();
    };
    this.on('message', onMessage);
    this.once('close', onClose);
    const cleanup = () => {
      this.off('message', onMessage);
      this.off('close', onClose);
    };
    const iterator: AsyncIterableIterator<Buffer> = {
      next: async () => {
        while (queue.length === 0 && !done) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        const value = queue.shift();
        if (value !== undefined) return { value, done: false };
        cleanup();
        return { value: undefined, done: true };
      },
      return: async () => {
        cleanup();
        done = true;
        queue.length = 0;
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

  /** @internal Makes the next engine call of this connection panic (fault drills, tests). */
  _injectEngineFault(): void {
    this.transport.native.injectFault(this.handle);
  }

  /** @internal */
  _message(data: Buffer): void {
    if (this._state === 'closed') return;
    this.emit('message', data);
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

  /** @internal The secure handshake completed. */
  _established(conv: number): void {
    if (this._state !== 'connecting') return;
    this._conv = conv;
    this._state = 'established';
    this.emit('connect');
  }

  /** @internal The secure handshake failed: `error` (if listened to), then `close`. */
  _connectFailed(reason: FailReason): void {
    if (this._state === 'closed') return;
    const error = handshakeError(reason, `${this.remoteAddress}:${this.remotePort}`);
    this.failure = error;
    if (this.listenerCount('error') > 0) this.emit('error', error);
    this._closed({
      reason: 'connect_failed',
      initiator: reason === 'handshake_timeout' ? 'local' : 'remote',
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
    });
  }

  /** @internal */
  _closed(info: CloseInfo): void {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this._closeInfo = info;
    this.emit('close', info.reason, info);
    this.onClosed?.();
  }
}
