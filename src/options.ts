/** Presets, defaults and validation of every KCP knob (DESIGN §3). */

import { KcpInvalidOptionError } from './errors';

export type PresetName = 'normal' | 'fast' | 'fast2' | 'fast3' | 'game';
export type Mode = 'raw' | 'secure';

/** Every engine knob; each overrides the preset's value. */
export interface KcpOptions {
  /** Named set of knobs; default `'game'`. */
  preset?: PresetName;
  /** KCP nodelay mode. */
  nodelay?: boolean;
  /** Internal flush interval in ms (10..5000). */
  interval?: number;
  /** Fast retransmit after this many duplicate ACKs (0 disables). */
  resend?: number;
  /** Disable congestion control. */
  nc?: boolean;
  /** Send window in segments. */
  sndWnd?: number;
  /** Receive window in segments. */
  rcvWnd?: number;
  /** Largest datagram KCP produces (50..65507). */
  mtu?: number;
  /** Minimum retransmission timeout in ms. */
  minRto?: number;
  /** Stream mode: no message boundaries, `message` events carry chunks. */
  stream?: boolean;
  /** Transmissions of one segment after which the link is declared dead. */
  deadLink?: number;
  /** Close after this many ms without a valid datagram from the peer (default 30000). */
  idleTimeout?: number;
  /** Largest message in bytes (default 65536). */
  maxMessageSize?: number;
  /** Bytes that may wait unacknowledged before `send()` throws `KcpQueueFullError` (default 4 MiB). */
  maxSendQueueBytes?: number;
  /**
   * `send()` returns false at or above this many queued bytes, and `drain` follows (default
   * 256 KiB, or half of `maxSendQueueBytes` when that is smaller). Must be below `maxSendQueueBytes`.
   */
  highWaterMark?: number;
  /**
   * Bytes of received messages a connection holds while nobody reads them (no `message`
   * listener, no iterator, or an iterator that is behind) before it stops taking more from
   * its engine, so KCP's receive window pushes back on the peer (default 4 MiB).
   */
  maxReceiveQueueBytes?: number;
  /** How long a closed connection keeps flushing queued data, in ms (default 3000). */
  linger?: number;
}

export interface ResolvedKcpOptions {
  nodelay: boolean;
  interval: number;
  resend: number;
  nc: boolean;
  sndWnd: number;
  rcvWnd: number;
  mtu: number;
  minRto?: number;
  stream: boolean;
  deadLink: number;
  idleTimeout: number;
  maxMessageSize: number;
  maxSendQueueBytes: number;
  linger: number;
}

type PresetKnobs = Pick<ResolvedKcpOptions, 'nodelay' | 'interval' | 'resend' | 'nc' | 'sndWnd' | 'rcvWnd' | 'mtu'>;

/** The presets of DESIGN §3: (nodelay, interval, resend, nc) plus windows and MTU. */
export const presets: Readonly<Record<PresetName, Readonly<PresetKnobs>>> = Object.freeze({
  normal: { nodelay: false, interval: 40, resend: 2, nc: true, sndWnd: 32, rcvWnd: 128, mtu: 1400 },
  fast: { nodelay: false, interval: 30, resend: 2, nc: true, sndWnd: 32, rcvWnd: 128, mtu: 1400 },
  fast2: { nodelay: true, interval: 20, resend: 2, nc: true, sndWnd: 32, rcvWnd: 128, mtu: 1400 },
  fast3: { nodelay: true, interval: 10, resend: 2, nc: true, sndWnd: 32, rcvWnd: 128, mtu: 1400 },
  game: { nodelay: true, interval: 10, resend: 2, nc: true, sndWnd: 256, rcvWnd: 256, mtu: 1200 },
});

export const DEFAULT_HIGH_WATER_MARK = 256 * 1024;

function int(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KcpInvalidOptionError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new KcpInvalidOptionError(`${name} must be a boolean, got ${String(value)}`);
  return value;
}

/** Applies the preset, then each explicit knob, and checks every value. */
export function resolveKcpOptions(options: KcpOptions = {}): ResolvedKcpOptions {
  const presetName = options.preset ?? 'game';
  const preset = presets[presetName];
  if (!preset) {
    throw new KcpInvalidOptionError(`preset must be one of ${Object.keys(presets).join(', ')}, got ${String(presetName)}`);
  }
  const pick = <K extends keyof KcpOptions>(key: K, fallback: NonNullable<KcpOptions[K]>): NonNullable<KcpOptions[K]> =>
    (options[key] ?? fallback) as NonNullable<KcpOptions[K]>;
  const resolved: ResolvedKcpOptions = {
    nodelay: bool(pick('nodelay', preset.nodelay), 'nodelay'),
    interval: int(pick('interval', preset.interval), 'interval', 10, 5000),
    resend: int(pick('resend', preset.resend), 'resend', 0, 1000),
    nc: bool(pick('nc', preset.nc), 'nc'),
    sndWnd: int(pick('sndWnd', preset.sndWnd), 'sndWnd', 1, 65535),
    rcvWnd: int(pick('rcvWnd', preset.rcvWnd), 'rcvWnd', 1, 65535),
    mtu: int(pick('mtu', preset.mtu), 'mtu', 50, 65507),
    stream: bool(pick('stream', false), 'stream'),
    deadLink: int(pick('deadLink', 20), 'deadLink', 2, 1000),
    idleTimeout: int(pick('idleTimeout', 30000), 'idleTimeout', 1, 2 ** 31 - 1),
    maxMessageSize: int(pick('maxMessageSize', 65536), 'maxMessageSize', 1, 2 ** 31 - 1),
    maxSendQueueBytes: int(pick('maxSendQueueBytes', 4 * 1024 * 1024), 'maxSendQueueBytes', 1, 2 ** 31 - 1),
    linger: int(pick('linger', 3000), 'linger', 0, 2 ** 31 - 1),
  };
  if (options.minRto !== undefined) resolved.minRto = int(options.minRto, 'minRto', 1, 60000);
  return resolved;
}

/** `'secure'` unless asked otherwise: the handshake, tags and limits of DESIGN §4. */
export function resolveMode(mode: unknown): Mode {
  const value = mode ?? 'secure';
  if (value !== 'raw' && value !== 'secure') throw new KcpInvalidOptionError(`mode must be 'raw' or 'secure', got ${String(value)}`);
  return value;
}

/** Admission limits (DESIGN §4). Each refusal is counted and logged with its rule. */
export interface LimitOptions {
  /** Live connections from one IP address (default 64: room for players behind one NAT). */
  maxConnectionsPerIp?: number;
  /** Live connections from one IPv4 /24 or IPv6 /64 (default 256). */
  maxConnectionsPerPrefix?: number;
  /** Handshakes per second from one IPv4 address or IPv6 /64 (default 20). */
  handshakesPerSecondPerIp?: number;
  /** Handshakes one source may open in a burst (default 40). */
  handshakeBurstPerIp?: number;
  /** Handshakes per second from everyone (default 2000). */
  handshakesPerSecond?: number;
  /** Handshakes from everyone in a burst (default 4000). */
  handshakeBurst?: number;
  /** Secure mode: handshakes waiting for `authenticate` at once (default 1024). */
  maxPendingAuth?: number;
}

export type ResolvedLimits = Required<LimitOptions>;

export const defaultLimits: Readonly<ResolvedLimits> = Object.freeze({
  maxConnectionsPerIp: 64,
  maxConnectionsPerPrefix: 256,
  handshakesPerSecondPerIp: 20,
  handshakeBurstPerIp: 40,
  handshakesPerSecond: 2000,
  handshakeBurst: 4000,
  maxPendingAuth: 1024,
});

export function resolveLimits(limits: unknown): ResolvedLimits {
  if (limits === undefined) return { ...defaultLimits };
  if (!limits || typeof limits !== 'object') throw new KcpInvalidOptionError('limits must be an object');
  const given = limits as Record<string, unknown>;
  const out = { ...defaultLimits };
  for (const key of Object.keys(given)) {
    if (!(key in defaultLimits)) throw new KcpInvalidOptionError(`unknown limit ${key}`);
    if (given[key] === undefined) continue;
    out[key as keyof ResolvedLimits] = int(given[key], `limits.${key}`, 0, 2 ** 31 - 1);
  }
  return out;
}

/** A timeout in milliseconds, within 1 ms .. 1 day. */
export function resolveTimeout(value: unknown, name: string, fallback: number): number {
  return value === undefined ? fallback : int(value, name, 1, 86_400_000);
}

/**
 * The high-water mark, below `maxSendQueueBytes`: at or above it `send()` would throw
 * `KcpQueueFullError` before ever returning false, so `drain` could never be awaited.
 */
export function resolveHighWaterMark(value: unknown, maxSendQueueBytes: number): number {
  if (value === undefined) return Math.max(1, Math.min(DEFAULT_HIGH_WATER_MARK, Math.floor(maxSendQueueBytes / 2)));
  const hwm = int(value, 'highWaterMark', 1, 2 ** 31 - 1);
  if (hwm >= maxSendQueueBytes) {
    throw new KcpInvalidOptionError(`highWaterMark (${hwm}) must be below maxSendQueueBytes (${maxSendQueueBytes})`);
  }
  return hwm;
}

export const DEFAULT_MAX_RECEIVE_QUEUE_BYTES = 4 * 1024 * 1024;

export function resolveMaxReceiveQueueBytes(value: unknown): number {
  return value === undefined ? DEFAULT_MAX_RECEIVE_QUEUE_BYTES : int(value, 'maxReceiveQueueBytes', 1, 2 ** 31 - 1);
}

export function resolvePort(value: unknown, name = 'port'): number {
  return int(value ?? 0, name, 0, 65535);
}
