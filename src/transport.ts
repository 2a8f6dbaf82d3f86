/**
 * The JavaScript half of one native endpoint: batches outgoing messages into one native call
 * per event-loop turn, and dispatches the record batches the I/O thread publishes.
 */

import { fromNative } from './errors';
import type { KcpEvent } from './event-types';
import { parseEvents } from './log';
import { native, type NativeEndpointHandle, type NativeEndpointOptions } from './native';
import { decodeRecords, type AcceptedRecord, type AuthRequestRecord, type CloseInfo, type FailReason } from './records';

/** What a transport tells its owner (a Server or a client Connection). */
export interface TransportOwner {
  accepted(handle: number, record: AcceptedRecord): void;
  message(handle: number, data: Buffer): void;
  closed(handle: number, info: CloseInfo): void;
  progress(handle: number, ackedBytes: number): void;
  error(handle: number, code: string, message: string): void;
  /** Secure mode, client: the handshake completed with the server-assigned conv. */
  established(handle: number, conv: number): void;
  /** Secure mode, client: the handshake failed. */
  connectFailed(handle: number, reason: FailReason): void;
  /** Secure mode, server: a validated client's token waits for `authenticate`. */
  authRequest(request: AuthRequestRecord): void;
  /** Security records, when event delivery is on. */
  events(events: KcpEvent[]): void;
}

const HEADER = 9;
const WANT_PROGRESS = 1;
const REPORT_ONLY = 2;

/** Why JavaScript refused a send, as the native side logs it (`kcp:protocol_violation`). */
export const enum Refusal {
  OversizedMessage = 1,
  MessageOnClosedConnection = 2,
  EmptyMessage = 3,
  SendQueueFull = 4,
}

export class Transport {
  readonly native: NativeEndpointHandle;
  private pending: { handle: number; data: Uint8Array; flags: number; size: number }[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private readonly visitor: TransportOwner;
  private eventDelivery = false;

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

  /** Queues one message; all messages queued in one turn cross into Rust in one call. */
  send(handle: number, data: Uint8Array, wantProgress: boolean): void {
    this.queue(handle, data, wantProgress ? WANT_PROGRESS : 0);
  }

  /** Tells the native side about a send refused here, so it is logged with the connection's identity. */
  reportRefusal(handle: number, refusal: Refusal, size: number): void {
    if (this.native.closed) return;
    this.pending.push({ handle, data: new Uint8Array(0), flags: REPORT_ONLY | (refusal << 4), size });
    this.pendingBytes += HEADER;
    this.schedule();
  }

  private queue(handle: number, data: Uint8Array, flags: number): void {
    this.pending.push({ handle, data, flags, size: data.length });
    this.pendingBytes += HEADER + data.length;
    this.schedule();
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
    if (this.pending.length === 0 || this.native.closed) {
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    const batch = Buffer.allocUnsafe(this.pendingBytes);
    let at = 0;
    for (const { handle, data, flags, size } of this.pending) {
      batch.writeUInt32LE(handle, at);
      batch.writeUInt32LE(size, at + 4);
      batch[at + 8] = flags;
      batch.set(data, at + HEADER);
      at += HEADER + data.length;
    }
    this.pending = [];
    this.pendingBytes = 0;
    try {
      this.native.sendBatch(batch);
    } catch {
      // Closed underneath us: the close records explain what happened to each connection.
    }
  }

  /** Dispatches every record published so far. */
  drain(): void {
    for (;;) {
      const records = this.native.takeRecords();
      if (!records) return;
      decodeRecords(records, this.visitor);
    }
  }

  closeConnection(handle: number): void {
    this.flush();
    try {
      this.native.closeConnection(handle);
    } catch {
      // Already closed: the close record is on its way or delivered.
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
