/** Presets, defaults and validation of every KCP knob. */

import { inspect } from 'node:util';

import { KcpInvalidOptionError } from './errors';
import {
  defaultPresetName,
  kcpKnobs,
  kcpPresets,
  type KcpKnob,
  type KcpKnobName,
  type KcpKnobValues,
  type PresetKnobs,
  type PresetName,
} from './generated/kcp-options';

export type { PresetName };
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
  /** Largest datagram KCP produces: 79..65507 in secure mode, 50..65507 in raw mode (more with `fec`, `docs/fec.md`). */
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
   * its engine, so KCP's receive window pushes back on the peer (default 4 MiB). What the
   * I/O thread had already delivered may exceed it by at most twice `deliveryLimit` (a server
   * option, 64 MiB by default) and two messages.
   */
  maxReceiveQueueBytes?: number;
  /** How long a closed connection keeps flushing queued data, in ms (default 3000). */
  linger?: number;
  /**
   * Forward error correction (`docs/fec.md`). Raw mode: kcp-go's Reed-Solomon FEC, the same shard
   * counts as the kcp-go peer's `DialWithOptions(addr, nil, dataShards, parityShards)`.
   * Secure mode: this side sends authenticated parity (FEC_PARITY) after every `dataShards`
   * datagrams; the peer needs no option (at most 64 shards a group).
   */
  fec?: FecOptions;
}

/** kcp-go FEC shard counts: each group of `dataShards` datagrams is followed by `parityShards` parity datagrams. */
export interface FecOptions {
  /** Datagrams per group (1 or more). */
  dataShards: number;
  /** Parity datagrams per group (1 or more; `dataShards + parityShards` at most 256). */
  parityShards: number;
}

/** Every knob's value once the preset, defaults and options are applied (declared in Rust, generated as `generated/kcp-options.ts`). */
export type ResolvedKcpOptions = KcpKnobValues;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/**
 * Compile-time check that every knob of the generated table is an option of {@link KcpOptions}
 * with the same type: `tsc` fails here when a knob is added in Rust and not documented above.
 * @internal
 */
export type KnobsAreOptions = Assert<Same<Required<Pick<KcpOptions, KcpKnobName>>, Required<KcpKnobValues>>>;

/** The presets: (nodelay, interval, resend, nc) plus windows and MTU; declared in Rust (`Preset::values`). */
export const presets: Readonly<Record<PresetName, Readonly<PresetKnobs>>> = kcpPresets;

/** An integer knob's declaration. */
function intKnob(name: KcpKnobName): Extract<KcpKnob, { type: 'integer' }> {
  const knob = kcpKnobs.find((k) => k.name === name);
  if (knob?.type !== 'integer') throw new Error(`${name} is not an integer knob`);
  return knob;
}

const MTU = intKnob('mtu');

export const DEFAULT_HIGH_WATER_MARK = 256 * 1024;

/** A value as an error message shows it: its type when that is the problem (`the string "4000"`). */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Longest text {@link describeThrown} gives: a thrown value's message can be any size. */
const MAX_THROWN_TEXT = 500;

/**
 * What the application threw or rejected with, as text for a warning or a message, whatever it
 * is: an `Error` whose `name` or `message` getter throws, an object without a prototype (no
 * `toString`), a symbol, or one whose `toString` throws would make `String(value)` itself throw
 * (and crash a server that was only reporting it). Cut to 500 characters.
 */
export function describeThrown(value: unknown): string {
  let text: string;
  try {
    if (value instanceof Error) {
      const name: unknown = value.name;
      const message: unknown = value.message;
      text = `${typeof name === 'string' ? name : 'Error'}: ${typeof message === 'string' ? message : describeThrown(message)}`;
    } else if (typeof value === 'object' && value !== null) {
      // inspect calls no toString and no getter: a null-prototype object shows as such.
      text = inspect(value, { depth: 1, breakLength: Infinity, maxArrayLength: 10, maxStringLength: MAX_THROWN_TEXT });
    } else {
      // Primitives and symbols: String() takes them all (a template literal refuses symbols).
      text = String(value);
    }
  } catch {
    // Only the tag is left to say: `[object Object]`, `[object Error]`, ...
    try {
      text = Object.prototype.toString.call(value);
    } catch {
      text = 'a value that cannot be shown';
    }
  }
  return text.length > MAX_THROWN_TEXT ? `${text.slice(0, MAX_THROWN_TEXT)}... (${text.length} characters)` : text;
}

function int(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KcpInvalidOptionError(`${name} must be an integer in ${min}..${max}, got ${describe(value)}`);
  }
  return value;
}

function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new KcpInvalidOptionError(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/** Levenshtein distance, for naming the option a misspelt key probably meant. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length]!;
}

/** The valid key closest to `key`, if one is close enough to be a typo of it. */
export function closest(key: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of valid) {
    const d = distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/**
 * The keys of an options interface, all of them and nothing else (the compiler checks the
 * record against the interface), for {@link checkKeys}.
 */
export function keysOf<T>(keys: { [K in keyof Required<T>]: true }): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Throws `KcpInvalidOptionError` for a key that is not an option here, naming the closest valid
 * one: a misspelt option must not be silently ignored (`idleTimout` would leave the default).
 */
export function checkKeys(options: object, valid: readonly string[], where: string): void {
  for (const key of optionKeys(options)) {
    if (valid.includes(key)) continue;
    const near = closest(key, valid);
    throw new KcpInvalidOptionError(
      `${where}: unknown option ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; valid options: ${valid.join(', ')}`,
    );
  }
}

/**
 * The keys an options object gives: its own and inherited enumerable string keys, as a `for..in`
 * (and a property read such as `options.mtu`) sees them. Options read as properties take a value
 * from a prototype (`Object.create(defaults)`, as Node's own `createServer` options do), so the
 * key check must see the same keys: a misspelt inherited key would otherwise pass unchecked.
 */
export function optionKeys(options: object): string[] {
  const keys: string[] = [];
  for (const key in options) keys.push(key);
  return keys;
}

/**
 * An options argument (or undefined, for all defaults) as one flat snapshot of
 * {@link optionKeys}: what is checked is what is read, once (a getter runs once, and a spread
 * of the snapshot keeps inherited options that a spread of the argument would drop).
 */
export function optionsObject(value: unknown, where: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new KcpInvalidOptionError(`${where} takes an options object, got ${describe(value)}`);
  }
  // No prototype: an own "__proto__" key (JSON.parse makes them) stays a key, checked and refused.
  const flat: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const key of optionKeys(value)) flat[key] = (value as Record<string, unknown>)[key];
  return flat;
}

/** Every engine knob's name. */
export const kcpOptionKeys = keysOf<KcpOptions>({
  preset: true,
  nodelay: true,
  interval: true,
  resend: true,
  nc: true,
  sndWnd: true,
  rcvWnd: true,
  mtu: true,
  minRto: true,
  stream: true,
  deadLink: true,
  idleTimeout: true,
  maxMessageSize: true,
  maxSendQueueBytes: true,
  highWaterMark: true,
  maxReceiveQueueBytes: true,
  linger: true,
  fec: true,
});

/** KCP's header, before each segment's payload. */
const KCP_HEADER_BYTES = 24;
/** KCP numbers fragments in one byte and counts down to 0: at most 127 per message here. */
const KCP_MAX_FRAGMENTS = 127;
/**
 * Secure mode (protocol v2, `docs/protocol.md` "Session datagrams"): the 13-byte session
 * header (type, conv, packet number) and the 16-byte Poly1305 tag around each KCP datagram;
 * the native side's `SESSION_OVERHEAD` (crates/kcpwatch-proto/src/secure/wire.rs), which
 * `listen()` enforces. The addon does not export it, so it is mirrored here, once.
 */
export const SECURE_OVERHEAD_BYTES = 1 + 4 + 8 + 16;

/** KCP's smallest MTU: the engine refuses a smaller one. */
export const KCP_MIN_MTU = MTU.min;

/** What FEC adds before KCP's header in every datagram: kcp-go's seqid, type and size fields. */
const FEC_OVERHEAD_BYTES = 8;

/**
 * Secure mode with FEC (`docs/fec.md`, "Secure mode"): every datagram leaves room for a parity
 * datagram over it (the FEC_PARITY framing and header, less the conv and packet number a shard
 * leaves out); the native side's `secure::fec::OVERHEAD`.
 */
const SECURE_FEC_OVERHEAD_BYTES = 30;

/** Secure mode's limit on data + parity shards (it bounds what a receiver keeps). */
const SECURE_FEC_MAX_SHARDS = 64;

/** What FEC takes from each datagram in a mode. */
function fecBytes(mode: Mode): number {
  return mode === 'secure' ? SECURE_FEC_OVERHEAD_BYTES : FEC_OVERHEAD_BYTES;
}

/** Bytes of each datagram that are not KCP's: the secure session's header and tag, FEC's room. */
function envelopeBytes(mode: Mode, fec: boolean): number {
  return (mode === 'secure' ? SECURE_OVERHEAD_BYTES : 0) + (fec ? fecBytes(mode) : 0);
}

/**
 * The smallest `mtu` a mode takes: KCP inside the envelope still needs its own smallest MTU
 * (50), so secure mode needs 50 + 29 = 79 (109 with FEC), and raw mode with FEC 50 + 8 = 58.
 */
export function minimumMtu(mode: Mode, fec = false): number {
  return KCP_MIN_MTU + envelopeBytes(mode, fec);
}

/**
 * The largest message these knobs can carry in message mode:
 * `min(127, rcvWnd) × (mtu − 24 − envelope)`, where the envelope is 29 bytes in secure mode
 * (59 when this side sends `fec` parity) and 8 in raw mode with `fec` (0 without): a message
 * travels as at most 127 fragments, and no more than the receive window, each at most one
 * segment's payload.
 */
export function messageSizeLimit(kcp: Pick<ResolvedKcpOptions, 'mtu' | 'rcvWnd'>, mode: Mode, fec = false): number {
  const mss = kcp.mtu - KCP_HEADER_BYTES - envelopeBytes(mode, fec);
  return Math.max(0, Math.min(KCP_MAX_FRAGMENTS, kcp.rcvWnd) * mss);
}

/**
 * Checks `mtu` against the mode's envelope (the error names the user's `mtu` and the real
 * minimum, never the inner MTU the engine would run with) and `maxMessageSize` against what
 * the MTU, window and mode can carry.
 */
export function checkMessageSize(kcp: ResolvedKcpOptions, mode: Mode, fec = false): void {
  checkMinimumMtu(kcp.mtu, mode, fec);
  if (kcp.stream) return;
  const limit = messageSizeLimit(kcp, mode, fec);
  if (kcp.maxMessageSize > limit) {
    const envelope = envelopeBytes(mode, fec);
    throw new KcpInvalidOptionError(
      `maxMessageSize ${kcp.maxMessageSize} exceeds ${limit}, the most that mtu ${kcp.mtu} and rcvWnd ${kcp.rcvWnd} carry in ${mode} mode${fec ? ' with fec' : ''} ` +
        `(min(127, rcvWnd) x (mtu - 24${envelope > 0 ? ` - ${envelope}` : ''})): lower maxMessageSize, raise mtu or rcvWnd, ` +
        'or use stream: true for payloads of any size',
    );
  }
}

/** kcp-go's FEC handles datagrams of at most this many bytes (raw mode). */
const RAW_FEC_MAX_MTU = 1500;

/** The largest `mtu`: a UDP payload over IPv4; kcp-go's FEC limit in raw mode with `fec`. */
function maximumMtu(mode: Mode, fec: boolean): number {
  return mode === 'raw' && fec ? RAW_FEC_MAX_MTU : MTU.max;
}

/** Refuses an `mtu` below the mode's minimum, saying where the bytes go. */
function checkMinimumMtu(mtu: number, mode: Mode, fec: boolean): void {
  const minimum = minimumMtu(mode, fec);
  if (mtu >= minimum) return;
  const envelope = [
    mode === 'secure' ? `the ${SECURE_OVERHEAD_BYTES} bytes of the session header and tag` : '',
    fec ? (mode === 'secure' ? `the ${SECURE_FEC_OVERHEAD_BYTES} bytes FEC parity needs` : `the ${FEC_OVERHEAD_BYTES}-byte FEC header`) : '',
  ]
    .filter(Boolean)
    .join(' and ');
  throw new KcpInvalidOptionError(
    `mtu ${mtu} is too small for ${mode} mode${fec ? ' with fec' : ''}: at least ${minimum} (KCP's smallest MTU, ${KCP_MIN_MTU}, plus ${envelope})`,
  );
}

/**
 * `mtu`: an integer in the range of the mode (and of `fec`), which the message names: 79..65507
 * in secure mode, 50..65507 raw, 58..1500 raw with fec, 109..65507 secure with fec.
 */
function resolveMtu(value: unknown, mode: Mode, fec: boolean): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MTU.min || value > MTU.max) {
    const range = `${minimumMtu(mode, fec)}..${maximumMtu(mode, fec)}`;
    throw new KcpInvalidOptionError(`mtu must be an integer in ${range} in ${mode} mode${fec ? ' with fec' : ''}, got ${describe(value)}`);
  }
  // An integer under the mode's minimum: the message says where the bytes go. Above kcp-go's
  // limit with raw fec, resolveFec says so in its own words.
  checkMinimumMtu(value, mode, fec);
  return value;
}

/**
 * Applies the preset, then each explicit knob, and checks every value; `mtu` against the range
 * of the mode the options ask for (`mode`, `fec`).
 */
export function resolveKcpOptions(options: KcpOptions & { mode?: unknown } = {}): ResolvedKcpOptions {
  const mode = resolveMode(options.mode);
  const presetName = options.preset ?? defaultPresetName;
  const preset = typeof presetName === 'string' && Object.hasOwn(presets, presetName) ? presets[presetName] : undefined;
  if (!preset) {
    throw new KcpInvalidOptionError(`preset must be one of ${Object.keys(presets).join(', ')}, got ${describe(presetName)}`);
  }
  const given = options as Partial<Record<KcpKnobName, unknown>>;
  const fromPreset: Partial<Record<KcpKnobName, unknown>> = preset;
  const resolved: Partial<Record<KcpKnobName, number | boolean>> = {};
  for (const knob of kcpKnobs) {
    // Unset (undefined or null) takes the preset's value, then the default. A knob without a
    // default (minRto) is left unset only when undefined: null is a value, and refused.
    const value = knob.default === undefined ? given[knob.name] : (given[knob.name] ?? fromPreset[knob.name] ?? knob.default);
    if (value === undefined) continue;
    if (knob.type === 'boolean') resolved[knob.name] = bool(value, knob.name);
    else if (knob.name === 'mtu') resolved.mtu = resolveMtu(value, mode, options.fec !== undefined);
    else resolved[knob.name] = int(value, knob.name, knob.min, knob.max);
  }
  // Every knob with a default was set above, each checked against its type.
  return resolved as ResolvedKcpOptions;
}

/**
 * Checks the `fec` option. Raw mode: kcp-go's shard limits, an MTU kcp-go's FEC handles (at
 * most 1500) and room for `maxMessageSize` with the 8 bytes each datagram gives up to FEC.
 * Secure mode: at most 64 shards a group, and room with the 30 bytes each datagram leaves for
 * parity (only the sender needs the option; every secure peer reads parity).
 */
export function resolveFec(value: unknown, mode: Mode, kcp: ResolvedKcpOptions): FecOptions | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KcpInvalidOptionError(`fec must be an object { dataShards, parityShards }, got ${describe(value)}`);
  }
  checkKeys(value, keysOf<FecOptions>({ dataShards: true, parityShards: true }), 'fec');
  const given = value as Record<string, unknown>;
  const dataShards = int(given.dataShards, 'fec.dataShards', 1, 255);
  const parityShards = int(given.parityShards, 'fec.parityShards', 1, 255);
  if (mode === 'secure') {
    if (dataShards + parityShards > SECURE_FEC_MAX_SHARDS) {
      throw new KcpInvalidOptionError(
        `fec.dataShards + fec.parityShards must be at most ${SECURE_FEC_MAX_SHARDS} in secure mode (it bounds what a receiver keeps), got ${dataShards + parityShards}`,
      );
    }
    checkMessageSize(kcp, mode, true);
    return { dataShards, parityShards };
  }
  if (dataShards + parityShards > 256) {
    throw new KcpInvalidOptionError(`fec.dataShards + fec.parityShards must be at most 256 (kcp-go's limit), got ${dataShards + parityShards}`);
  }
  if (kcp.mtu > RAW_FEC_MAX_MTU) {
    throw new KcpInvalidOptionError(`fec needs mtu <= ${RAW_FEC_MAX_MTU} (the largest datagram kcp-go's FEC handles), got ${kcp.mtu}`);
  }
  checkMessageSize(kcp, mode, true);
  return { dataShards, parityShards };
}

/**
 * The options only secure mode has, and why raw mode has no use for each. Raw mode refuses
 * them, naming the option (the types forbid them too, `never`): ignored, they would look
 * like protection that is not there.
 */
const SECURE_ONLY_OPTIONS: Readonly<Record<string, string>> = Object.freeze({
  authenticate: 'raw KCP has no handshake to carry a token',
  authTimeout: 'raw KCP has no handshake, so nothing waits for authenticate',
  handshakeTimeout: 'raw KCP has no handshake to time out',
  keepalive: 'raw KCP has no keepalive a plain KCP peer understands',
  serverKeys: 'raw KCP has no handshake, so no keys',
  keyFile: 'raw KCP has no handshake, so no keys',
  serverKey: 'raw KCP has no handshake, so no keys',
  token: 'raw KCP has no handshake to carry it',
});

/** Refuses, in raw mode, each option of {@link SECURE_ONLY_OPTIONS} and `limits.maxPendingAuth`. */
export function checkSecureOnly(options: object, mode: Mode): void {
  if (mode !== 'raw') return;
  const given = options as Record<string, unknown>;
  for (const [key, why] of Object.entries(SECURE_ONLY_OPTIONS)) {
    if (given[key] !== undefined) throw new KcpInvalidOptionError(`${key} needs mode 'secure': ${why}`);
  }
  const limits = given.limits;
  if (typeof limits === 'object' && limits !== null && (limits as LimitOptions).maxPendingAuth !== undefined) {
    throw new KcpInvalidOptionError("limits.maxPendingAuth needs mode 'secure': raw KCP has no handshake, so nothing waits for authenticate");
  }
}

/** `'secure'` unless asked otherwise: the handshake, tags and limits of docs/protocol.md. */
export function resolveMode(mode: unknown): Mode {
  const value = mode ?? 'secure';
  if (value !== 'raw' && value !== 'secure') throw new KcpInvalidOptionError(`mode must be 'raw' or 'secure', got ${describe(value)}`);
  return value;
}

/**
 * Admission limits (docs/security.md, "Limits"). Each refusal is counted and logged with its
 * rule. Each is 1 or more: 0 is refused (for no limit, give a large number).
 */
/** A raw-mode server's {@link LimitOptions}: no handshake, so no `maxPendingAuth`. */
export type RawLimitOptions = Omit<LimitOptions, 'maxPendingAuth'> & {
  /** Raw KCP has no handshake, so nothing waits for `authenticate`. */
  maxPendingAuth?: never;
};

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
  if (!limits || typeof limits !== 'object') throw new KcpInvalidOptionError(`limits must be an object, got ${describe(limits)}`);
  const given = limits as Record<string, unknown>;
  const out = { ...defaultLimits };
  checkKeys(given, Object.keys(defaultLimits), 'limits');
  for (const key of optionKeys(given)) {
    if (given[key] === undefined) continue;
    // 0 has no meaning a user would guess (a rate of 0 lets each source open its burst once,
    // for ever after nothing): a limit is 1 or more, and no limit is a large number.
    out[key as keyof ResolvedLimits] = int(given[key], `limits.${key}`, 1, 2 ** 31 - 1);
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
