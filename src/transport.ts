/**
 * The JavaScript half of one native endpoint: batches outgoing messages into one native call
 * per event-loop turn, and dispatches the record batches the I/O thread publishes.
 */

import { fromNative } from './errors';
import { native, type NativeEndpointHandle, type NativeEndpointOptions } from './native';
import { decodeRecords, type AcceptedRecord, type CloseInfo, type RecordVisitor } from './records';

/** What a transport tells its owner (a Server or a client Connection). */
export interface TransportOwner {
  accepted(handle: number, record: AcceptedRecord): void;
  message(handle: number, data: Buffer): void;
  closed(handle: number, info: CloseInfo): void;
  progress(handle: number, ackedBytes: number): void;
  error(handle: number, code: string, message: string): void;
}

const HEADER = 9;

export class Transport {
  readonly native: NativeEndpointHandle;
  private pending: { handle: number; data: Uint8Array; flags: number }[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private readonly visitor: RecordVisitor;

  private constructor(owner: TransportOwner, open: (onRecords: () => void) => NativeEndpointHandle) {
    this.visitor = owner;
    try {
      this.native = open(() => this.drain());
    } catch (err) {
      throw fromNative(err);
    }
  }

  static listen(owner: TransportOwner, options: NativeEndpointOptions): Transport {
    return new Transport(owner, (cb) => native.NativeEndpoint.listen(options, cb));
  }

  static client(owner: TransportOwner, options: NativeEndpointOptions, remoteAddress: string, remotePort: number): Transport {
    return new Transport(owner, (cb) => native.NativeEndpoint.client(options, remoteAddress, remotePort, cb));
  }

  /** Queues one message; all messages queued in one turn cross into Rust in one call. */
  send(handle: number, data: Uint8Array, wantProgress: boolean): void {
    this.pending.push({ handle, data, flags: wantProgress ? 1 : 0 });
    this.pendingBytes += HEADER + data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
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
    for (const { handle, data, flags } of this.pending) {
      batch.writeUInt32LE(handle, at);
      batch.writeUInt32LE(data.length, at + 4);
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
  }
}
