/**
 * Unreliable datagrams (secure mode, `docs/protocol.md` "DATAGRAM"): the option checks, the size
 * ceiling, and the bounded queue a connection holds received datagrams in until they are read.
 */

import { KcpInvalidOptionError } from './errors';
import type { Mode } from './options';
import { describe } from './options';

/** How `sendDatagram()` sends. */
export interface DatagramOptions {
  /**
   * The application's channel id, 0..255 (default 0). The receiver's `datagram` event and
   * iterator report it. Sequencing is per channel.
   */
  channel?: number;
  /**
   * Deliver only if newer than the newest datagram already delivered on this channel (ENet's
   * and Mirror's "unreliable sequenced"): a late one is dropped, nothing waits for a lost one.
   * Default false: every datagram that arrives is delivered, in arrival order.
   */
  sequenced?: boolean;
}

/** One received datagram, as the `datagrams()` iterator yields it. */
export interface Datagram {
  data: Buffer;
  channel: number;
}

/** Session framing (29 bytes) and the datagram header (flags and channel, 2 bytes). */
export const DATAGRAM_OVERHEAD_BYTES = 31;

/**
 * Received datagrams a connection holds while nobody reads them (no `datagram` listener, or an
 * iterator that is behind); past this the oldest is dropped (and counted: stats
 * `unreliableDroppedQueueFull`, and moved from `unreliableReceived` to `unreliableDropped` of
 * the connection, so that the two add up to what arrived). A late datagram is worthless, so the
 * newest are kept.
 */
export const MAX_HELD_DATAGRAMS = 256;

/**
 * Bytes of datagrams waiting to be sealed (this turn's, and batches the I/O thread has not taken
 * yet) past which `sendDatagram()` returns false.
 */
export const MAX_DATAGRAM_QUEUE_BYTES = 1024 * 1024;

/** The largest datagram payload: one UDP datagram of `mtu` bytes less the framing; 0 in raw mode (none). */
export function maxDatagramSize(mtu: number, mode: Mode): number {
  return mode === 'secure' ? Math.max(0, mtu - DATAGRAM_OVERHEAD_BYTES) : 0;
}

const optionKeys = new Set(['channel', 'sequenced']);

/** Checks `sendDatagram()` options: [flags, channel]. */
export function datagramHeader(options: DatagramOptions | undefined): [number, number] {
  if (options === undefined) return [0, 0];
  if (options === null || typeof options !== 'object') {
    throw new KcpInvalidOptionError(`sendDatagram() options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!optionKeys.has(key)) throw new KcpInvalidOptionError(`sendDatagram() has no option ${JSON.stringify(key)} (channel, sequenced)`);
  }
  const channel = options.channel ?? 0;
  if (typeof channel !== 'number' || !Number.isInteger(channel) || channel < 0 || channel > 255) {
    throw new KcpInvalidOptionError(`datagram channel must be an integer in 0..255, got ${describe(channel)}`);
  }
  const sequenced = options.sequenced ?? false;
  if (typeof sequenced !== 'boolean') throw new KcpInvalidOptionError(`datagram sequenced must be a boolean, got ${describe(sequenced)}`);
  return [sequenced ? 1 : 0, channel];
}

/**
 * @internal The datagrams a connection received and nobody has read yet (copies), bounded by
 * {@link MAX_HELD_DATAGRAMS}; drops are reported once per turn.
 */
export class HeldDatagrams {
  private items: Datagram[] = [];
  private head = 0;
  private unreported = 0;
  iterators = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly reportDrops: (count: number) => void) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: Datagram): void {
    if (this.size >= MAX_HELD_DATAGRAMS) {
      this.shift();
      if (this.unreported === 0) queueMicrotask(() => this.report());
      this.unreported += 1;
    }
    this.items.push(item);
    this.wake();
  }

  shift(): Datagram | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = undefined as unknown as Datagram;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Resolves on the next push or `wake()`. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private report(): void {
    const count = this.unreported;
    this.unreported = 0;
    if (count > 0) this.reportDrops(count);
  }
}

/**
 * @internal The `datagrams()` iterator: takes over from the `datagram` listeners from its first
 * `next()` until it ends, as `messages()` does; ends when the connection has closed and every
 * held datagram was read.
 */
export function datagramIterator(held: HeldDatagrams, closed: () => boolean, onStop: () => void): AsyncIterableIterator<Datagram> {
  let phase: 'idle' | 'reading' | 'done' = 'idle';
  const stop = () => {
    const wasReading = phase === 'reading';
    phase = 'done';
    if (!wasReading) return;
    held.iterators -= 1;
    held.wake();
    onStop();
  };
  const iterator: AsyncIterableIterator<Datagram> = {
    next: async () => {
      if (phase === 'idle') {
        phase = 'reading';
        held.iterators += 1;
      }
      while (phase === 'reading' && held.size === 0 && !closed()) await held.wait();
      if (phase !== 'reading') return { value: undefined, done: true };
      const value = held.shift();
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
