/**
 * The JavaScript half of one native endpoint: batches outgoing messages into one native call
 * per event-loop turn, and dispatches the record batches the I/O thread publishes.
 */

import { fromNative } from './errors';
import type { KcpEvent } from './event-types';
import { parseEvents } from './log';
import { native, type NativeEndpointHandle, type NativeEndpointOptions } from './native';
import { JsStages, stageTraceOn } from './stage-trace';
import { decodeRecords, type AcceptedRecord, type AuthRequestRecord, type CloseInfo, type ConnectionLimits, type FailReason } from './records';

/** What a transport tells its owner (a Server or a client Connection). */
export interface TransportOwner {
  accepted(handle: number, record: AcceptedRecord): void;
  message(handle: number, data: Buffer): void;
  /** Secure mode: one unreliable datagram (a view of the batch). */
  datagram(handle: number, channel: number, data: Buffer): void;
  closed(handle: number, info: CloseInfo): void;
  progress(handle: number, ackedBytes: number): void;
  error(handle: number, code: string, message: string): void;
  /**
   * Secure mode, client: the handshake completed with the server-assigned conv, and the
   * connection's size ceilings from the agreed MTU (absent from older addons).
   */
  established(handle: number, conv: number, limits?: ConnectionLimits): void;
  /** Secure mode, client: the handshake failed. */
  connectFailed(handle: number, reason: FailReason, appCode?: number): void;
  /** Secure mode, server: a validated client's token waits for `authenticate`. */
  authRequest(request: AuthRequestRecord): void;
  /** Security records, when event delivery is on. */
  events(events: KcpEvent[]): void;
}

const HEADER = 9;
const WANT_PROGRESS = 1;
const REPORT_ONLY = 2;
const CONTROL = 4;
const DELIVERY_PAUSE = 1;
const DELIVERY_RESUME = 2;
const DATAGRAMS_DROPPED = 3;
/** A datagram batch entry: handle u32, len u32, flags u8, channel u8 (`crates/kcpwatch/src/datagram_batch.rs`). */
const DATAGRAM_HEADER = 10;
const DATAGRAM_REPORT_TOO_LARGE = 0x80;
/** The send batch is kept between turns up to this size; a larger one is let go after use. */
const KEEP_BATCH_BYTES = 1024 * 1024;

/** Why JavaScript refused a send, as the native side logs it (`kcp:protocol_violation`). */
export const enum Refusal {
  OversizedMessage = 1,
  MessageOnClosedConnection = 2,
  EmptyMessage = 3,
  SendQueueFull = 4,
}

export class Transport {
  readonly native: NativeEndpointHandle;
  /**
   * The send batch of the current turn. Each `send()` copies its bytes in at the call, so
   * the caller may reuse, shrink or detach its buffer at once; the native side copies the
   * batch synchronously, so the same buffer serves the next turn.
   */
  private batch: Buffer = Buffer.allocUnsafe(16 * 1024);
  private batchBytes = 0;
  private flushScheduled = false;
  private readonly visitor: TransportOwner;
  private eventDelivery = false;
  /** This turn's datagrams (secure mode), apart from the messages so they can be bounded alone. */
  private datagrams: Buffer = Buffer.alloc(0);
  private datagramBytes = 0;
  /** Datagram bytes the I/O thread had not taken yet when last asked. */
  private datagramBacklog = 0;
  private backlogFresh = false;
  /** @internal The bench's stage trace (`KCPWATCH_STAGE_TRACE=1`), else undefined. */
  readonly stages: JsStages | undefined = stageTraceOn ? new JsStages() : undefined;

  private constructor(
    owner: TransportOwner,
    open: (onRecords: () => void, onEvents: () => void) => NativeEndpointHandle,
  ) {
    this.visitor = owner;
    try {
      this.native = open(
        () => this.drain(),
        () => this.drainEvents(),
      );
    } catch (err) {
      throw fromNative(err);
    }
  }

  static listen(owner: TransportOwner, options: NativeEndpointOptions): Transport {
    return new Transport(owner, (cb, ev) => native.NativeEndpoint.listen(options, cb, ev));
  }

  static client(owner: TransportOwner, options: NativeEndpointOptions, remoteAddress: string, remotePort: number): Transport {
    return new Transport(owner, (cb, ev) => native.NativeEndpoint.client(options, remoteAddress, remotePort, cb, ev));
  }

  /**
   * Queues one message, copying its bytes now; all messages queued in one turn cross into
   * Rust in one call. Acknowledgement progress is reported for every connection with bytes
   * outstanding, so `queuedBytes` stays current.
   */
  send(handle: number, data: Uint8Array): void {
    const at = this.reserve(HEADER + data.length);
    try {
      this.batch.set(data, at + HEADER);
    } catch (err) {
      // A view that cannot be read queues nothing: no header without its bytes.
      this.batchBytes = at;
      throw err;
    }
    this.header(at, handle, data.length, WANT_PROGRESS);
    this.stages?.send();
    this.schedule();
  }

  /**
   * Queues one unreliable datagram (copied now; sent with this turn's batch). False when the
   * datagram queue is full: more than `MAX_DATAGRAM_QUEUE_BYTES` wait to be sealed.
   */
  sendDatagram(handle: number, data: Uint8Array, flags: number, channel: number, limit: number): boolean {
    const need = DATAGRAM_HEADER + data.length;
    if (this.datagramBacklog + this.datagramBytes + need > limit) {
      // The backlog read last may be stale: ask once per turn.
      if (this.backlogFresh || this.native.closed) return false;
      this.datagramBacklog = this.native.datagramBacklog();
      this.backlogFresh = true;
      queueMicrotask(() => (this.backlogFresh = false));
      if (this.datagramBacklog + this.datagramBytes + need > limit) return false;
    }
    const at = this.datagramBytes;
    if (at + need > this.datagrams.length) {
      const grown = Buffer.allocUnsafe(Math.max(at + need, this.datagrams.length * 2, 16 * 1024));
      this.datagrams.copy(grown, 0, 0, at);
      this.datagrams = grown;
    }
    this.datagrams.set(data, at + DATAGRAM_HEADER);
    this.datagrams.writeUInt32LE(handle, at);
    this.datagrams.writeUInt32LE(data.length, at + 4);
    this.datagrams[at + 8] = flags;
    this.datagrams[at + 9] = channel;
    this.datagramBytes = at + need;
    this.schedule();
    return true;
  }

  /** Tells the native side a datagram was refused here as too large, so it is counted. */
  reportDatagramTooLarge(handle: number, size: number): void {
    if (this.native.closed) return;
    if (this.datagramBytes + DATAGRAM_HEADER > this.datagrams.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.datagramBytes + DATAGRAM_HEADER, this.datagrams.length * 2, 1024));
      this.datagrams.copy(grown, 0, 0, this.datagramBytes);
      this.datagrams = grown;
    }
    const at = this.datagramBytes;
    this.datagrams.writeUInt32LE(handle, at);
    this.datagrams.writeUInt32LE(size, at + 4);
    this.datagrams[at + 8] = DATAGRAM_REPORT_TOO_LARGE;
    this.datagrams[at + 9] = 0;
    this.datagramBytes = at + DATAGRAM_HEADER;
    this.schedule();
  }

  /** Counts datagrams a connection dropped because nobody read them. */
  reportDatagramDrops(handle: number, count: number): void {
    if (this.native.closed) return;
    this.header(this.reserve(HEADER), handle, count, CONTROL | (DATAGRAMS_DROPPED << 4));
    this.schedule();
  }

  /**
   * Makes room at once for `count` messages of `size` bytes (a broadcast), so the batch grows
   * once rather than doubling its way there.
   */
  expect(count: number, size: number): void {
    const need = this.batchBytes + count * (HEADER + size);
    if (need > this.batch.length) {
      const grown = Buffer.allocUnsafe(need);
      this.batch.copy(grown, 0, 0, this.batchBytes);
      this.batch = grown;
    }
  }

  /** Tells the native side about a send refused here, so it is logged with the connection's identity. */
  reportRefusal(handle: number, refusal: Refusal, size: number): void {
    if (this.native.closed) return;
    this.header(this.reserve(HEADER), handle, size, REPORT_ONLY | (refusal << 4));
    this.schedule();
  }

  /**
   * Stops (or restarts) the I/O thread taking this connection's messages out of its engine:
   * JavaScript holds as many as it may, and KCP's receive window pushes back on the peer.
   */
  setDeliveryPaused(handle: number, paused: boolean): void {
    if (this.native.closed) return;
    const op = paused ? DELIVERY_PAUSE : DELIVERY_RESUME;
    this.header(this.reserve(HEADER), handle, 0, CONTROL | (op << 4));
    // A pause leaves at once: it is usually asked for while a record batch is being dispatched,
    // and the dispatch loop takes the next batch before any microtask would have sent it.
    if (paused) this.flush();
    else this.schedule();
  }

  /** Room for `bytes` more at the end of the batch; returns where they start. */
  private reserve(bytes: number): number {
    const at = this.batchBytes;
    const need = at + bytes;
    if (need > this.batch.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.batch.length * 2));
      this.batch.copy(grown, 0, 0, at);
      this.batch = grown;
    }
    this.batchBytes = need;
    return at;
  }

  private header(at: number, handle: number, size: number, flags: number): void {
    this.batch.writeUInt32LE(handle, at);
    this.batch.writeUInt32LE(size, at + 4);
    this.batch[at + 8] = flags;
  }

  private schedule(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Starts or stops handing security records to the owner. */
  setEventDelivery(enabled: boolean): void {
    if (enabled === this.eventDelivery) return;
    this.eventDelivery = enabled;
    try {
      this.native.setEventDelivery(enabled);
    } catch {
      // Closed: nothing more will come.
    }
  }

  /** Dispatches every security record waiting for JavaScript. */
  drainEvents(): void {
    for (;;) {
      const lines = this.native.takeEvents();
      if (!lines) return;
      this.visitor.events(parseEvents(lines));
    }
  }

  /** Sends everything queued so far. */
  flush(): void {
    this.flushScheduled = false;
    if (this.datagramBytes > 0) {
      const datagramBytes = this.datagramBytes;
      this.datagramBytes = 0;
      try {
        if (!this.native.closed) this.datagramBacklog = this.native.sendDatagramBatch(this.datagrams.subarray(0, datagramBytes));
      } catch {
        // Closed underneath us.
      }
      if (this.datagrams.length > KEEP_BATCH_BYTES) this.datagrams = Buffer.alloc(0);
    }
    const bytes = this.batchBytes;
    this.batchBytes = 0;
    if (bytes === 0 || this.native.closed) return;
    // Stamped before the hand-over: when the I/O thread sleeps, the call itself runs the
    // send turn, whose hops the native side stamps.
    this.stages?.queued();
    try {
      this.native.sendBatch(this.batch.subarray(0, bytes));
    } catch {
      // Closed underneath us: the close records explain what happened to each connection.
    }
    if (this.batch.length > KEEP_BATCH_BYTES) this.batch = Buffer.allocUnsafe(16 * 1024);
  }

  /**
   * Dispatches every record published so far. A throwing handler does not stop the batch:
   * every record is dispatched, then each error is rethrown on its own tick, where
   * `uncaughtException` sees it as it would any handler's error.
   */
  drain(): void {
    this.stages?.woke(this.native.takeStagedAt());
    for (;;) {
      const records = this.native.takeRecords();
      if (!records) return;
      decodeRecords(records, this.visitor);
    }
  }

  closeConnection(handle: number, code?: number, text?: string): void {
    this.flush();
    try {
      this.native.closeConnection(handle, code, text);
    } catch {
      // Already closed: the close record is on its way or delivered.
    }
  }

  /**
   * Closes every connection gracefully with `shutdown` (each lingers at most `lingerMs`,
   * its own `linger` when undefined) and accepts no new ones; returns at once.
   */
  closeAll(lingerMs?: number): void {
    this.flush();
    try {
      this.native.closeAll(lingerMs);
    } catch {
      // Already closed.
    }
  }

  /** Flushes, shuts the endpoint down (joining its thread) and dispatches the final records. */
  close(): void {
    this.flush();
    this.native.close();
    this.drain();
    if (this.eventDelivery) this.drainEvents();
  }
}
