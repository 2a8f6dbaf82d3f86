/**
 * Security logging options: where the canonical NDJSON records go, and how much is produced.
 * The records are formatted and written by a Rust log thread, never on the event loop; an
 * application that wants them as objects listens for `'event'` (or passes a callback), and
 * only then do they cross into JavaScript.
 */

import { isIP } from 'node:net';
import { hostname } from 'node:os';

import { KcpInvalidOptionError } from './errors';
import { checkKeys, describe, keysOf } from './options';
import type { KcpEvent } from './event-types';
import type { Assert, NativeFormat, NativeHttpCollector, NativeLogOptions, NativeOutputOptions, NativeSeverity, NativeSyslogTransport, Same } from './native';

/** Output formats of the destination (the `'event'` listener always gets canonical records). */
export const logFormats = ['json', 'ecs', 'ocsf', 'cef', 'rfc5424', 'gelf', 'hec', 'otlp'] as const;
export type LogFormat = (typeof logFormats)[number];
/** @internal The addon's `FormatOption` names exactly these. */
export type FormatsAgree = Assert<Same<LogFormat, NativeFormat>>;

/**
 * How IP addresses appear in the records (docs/privacy.md), applied in Rust before any record leaves
 * the addon; `docs/privacy.md` explains each mode.
 */
export type IpPrivacy =
  | { mode: 'full' }
  | { mode: 'truncate'; v4Prefix?: number; v6Prefix?: number }
  | { mode: 'hmac'; keyId: string; key: Uint8Array | string }
  | { mode: 'cryptopan'; key: Uint8Array | string }
  | { mode: 'omit' };

/** The part of a pino logger the `pino` option uses. */
export interface PinoLike {
  fatal?(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/**
 * The record callback for a pino logger: the record's fields go in the log object (minus what
 * pino sets itself: `level`, `time`, `msg`), at the pino level of its severity. The record's
 * `name` (`kcp:connection_closed`, ...) goes under `event`, so the logger's own `name` (pino's
 * `name` option, a child's bindings) is kept.
 */
export function pinoSink(logger: PinoLike): (event: KcpEvent) => void {
  return (event) => {
    const { level: _level, time: _time, msg, name, ...rest } = event;
    void _level;
    void _time;
    const fields = { event: name, ...rest };
    const s = event.severity;
    if (s <= 2) (logger.fatal ?? logger.error).call(logger, fields, msg);
    else if (s === 3) logger.error(fields, msg);
    else if (s === 4) logger.warn(fields, msg);
    else if (s <= 6) logger.info(fields, msg);
    else (logger.debug ?? logger.info).call(logger, fields, msg);
  };
}

/** Every JavaScript consumer `log` names, as one callback (or none). */
export function eventCallback(log: LogOptions | false | undefined): ((event: KcpEvent) => void) | undefined {
  if (!log) return undefined;
  if (log.pino !== undefined && (typeof log.pino !== 'object' || log.pino === null || typeof log.pino.info !== 'function')) {
    throw new KcpInvalidOptionError('log.pino must be a pino logger');
  }
  const callbacks = [log.onEvent, log.pino && pinoSink(log.pino)].filter((f): f is (event: KcpEvent) => void => typeof f === 'function');
  if (callbacks.length === 0) return undefined;
  if (callbacks.length === 1) return callbacks[0];
  return (event) => {
    for (const f of callbacks) f(event);
  };
}

/** Syslog severity names, most severe first. */
export const severities = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'] as const;
export type SeverityName = (typeof severities)[number];
/** @internal The addon's `SeverityOption` names exactly these. */
export type SeveritiesAgree = Assert<Same<SeverityName, NativeSeverity>>;

/** A file destination, appended to and rotated. */
export interface FileDestination {
  file: string;
  /** Start a new file before this many bytes (default: never by size). */
  maxBytes?: number;
  /** Start a new file when the current one is this many milliseconds old (default: never). */
  maxAgeMs?: number;
  /** Rotated files kept as `file.1` ... `file.N` (default 5). */
  keep?: number;
}

/**
 * A syslog receiver (RFC 5424 records, or any other format). The output has its own thread,
 * bounded queue and, for TCP and TLS, an on-disk spool for when the receiver is down: records
 * are replayed in order when it returns, and what is finally lost is counted and reported as
 * `kcp:log_loss`.
 */
export interface SyslogDestination {
  /** `udp://IP:PORT` (RFC 5426), `tcp://IP:PORT` (octet counting, RFC 6587) or `tls://IP:PORT` (RFC 5425). */
  syslog: string;
  /** TLS: the CA certificates (PEM file) the receiver's certificate must chain to. Nothing else is trusted. */
  caFile?: string;
  /** TLS: the name the receiver's certificate must carry (default: the IP). */
  serverName?: string;
  /** TLS: a client certificate chain and its key (PEM files), for receivers that ask. */
  certFile?: string;
  keyFile?: string;
  /** TCP/TLS: where to spool records while the receiver is down (one sink per directory). */
  spoolDir?: string;
  /** TCP/TLS: the spool's size limit (default 64 MiB); beyond it the newest records are dropped and counted. */
  spoolMaxBytes?: number;
  /** Records held in memory (default 10,000). */
  queueRecords?: number;
}

/**
 * An HTTP collector that takes batches: Splunk HEC (records in `hec` format), Elasticsearch
 * `_bulk` (records in `ecs` format) or OTLP/HTTP (records in `otlp` format). Like a syslog
 * output it has its own thread, a bounded queue and an optional on-disk spool.
 */
export interface HttpDestination {
  /** `http://HOST:PORT/path` or `https://HOST:PORT/path`, e.g. `https://10.0.0.5:8088/services/collector/event`. */
  http: string;
  kind: 'hec' | 'elastic' | 'otlp';
  /** Splunk HEC token. */
  token?: string;
  /** Elasticsearch index or data stream (default `kcpwatch`). */
  index?: string;
  /** HTTPS: the CA certificates (PEM file) the collector's certificate must chain to. */
  caFile?: string;
  /** HTTPS: a client certificate chain and its key (PEM files), for collectors that require one (mutual TLS). */
  certFile?: string;
  keyFile?: string;
  /** Compress request bodies (default true). */
  gzip?: boolean;
  /** Records per request (default 500). */
  batchRecords?: number;
  /** A batch leaves at the latest this many milliseconds after its first record (default 1000). */
  batchDelayMs?: number;
  /** Where to spool records while the collector is down. */
  spoolDir?: string;
  spoolMaxBytes?: number;
  queueRecords?: number;
}

export type LogDestination = 'stdout' | 'stderr' | 'none' | FileDestination | SyslogDestination | HttpDestination;

const fileKeys = keysOf<FileDestination>({ file: true, maxBytes: true, maxAgeMs: true, keep: true });
const syslogKeys = keysOf<SyslogDestination>({
  syslog: true,
  caFile: true,
  serverName: true,
  certFile: true,
  keyFile: true,
  spoolDir: true,
  spoolMaxBytes: true,
  queueRecords: true,
});
const httpKeys = keysOf<HttpDestination>({
  http: true,
  kind: true,
  token: true,
  index: true,
  caFile: true,
  certFile: true,
  keyFile: true,
  gzip: true,
  batchRecords: true,
  batchDelayMs: true,
  spoolDir: true,
  spoolMaxBytes: true,
  queueRecords: true,
});

/** One output: where, in which format, from which severity up. */
export interface LogOutputOptions {
  destination: LogDestination;
  /** Default `'json'` (the canonical NDJSON). */
  format?: LogFormat;
  /** The least severe records this output takes (default: every record produced). */
  level?: SeverityName;
}

const outputKeys = keysOf<LogOutputOptions>({ destination: true, format: true, level: true });

export interface LogOptions {
  /**
   * Where the records are written: `'stdout'` (the default for servers), `'stderr'`,
   * `{ file: path, maxBytes?, maxAgeMs?, keep? }` (appended, rotated), `'none'` (only to
   * `'event'` listeners and `onEvent`). Use `outputs` for several at once.
   */
  destination?: LogDestination;
  /** Several outputs at once, each with its format and level (replaces `destination`/`format`). */
  outputs?: LogOutputOptions[];
  /** Called with every record as an object, on the event loop. */
  onEvent?: (event: KcpEvent) => void;
  /**
   * A pino logger (or anything with pino's methods) that receives every record as an object,
   * at the pino level matching its severity, with `msg` as the message. Runs on the event loop,
   * like `onEvent`; the Rust outputs do not.
   */
  pino?: PinoLike;
  /** Lowest severity produced (default `'info'`, i.e. everything but debug). */
  level?: SeverityName;
  /** Records per ring lane between the I/O thread and the log thread (default 4096). */
  ringCapacity?: number;
  /** Milliseconds between `kcp:stats` records; 0 for none (default 60000). */
  statsInterval?: number;
  /** Per trigger and window, records logged one by one before the rest are aggregated (default 20). */
  sampleBurst?: number;
  /** The sampling window in milliseconds (default 1000). */
  sampleWindow?: number;
  /** `observer_service` (default `'kcpwatch'`). */
  service?: string;
  /** `observer_host` (default `os.hostname()`). */
  host?: string;
  /** `observer_instance` (default: a fresh id per listener run). */
  instance?: string;
  /** Community ID seed (default 0, what other sensors use unless configured). */
  communityIdSeed?: number;
  /** Bytes of records held for a slow `'event'` consumer before the newest are dropped and counted (default 8 MiB). */
  eventBufferBytes?: number;
  /** Format written to the destination (default `'json'`, the canonical NDJSON). */
  format?: LogFormat;
  /**
   * IP address handling (default `{ mode: 'full' }`). Keys are bytes or hex strings: `hmac`
   * needs at least 16 bytes, `cryptopan` exactly 32.
   */
  ipPrivacy?: IpPrivacy;
  /**
   * With `truncate` or `cryptopan`, compute `community_id` over the transformed addresses
   * (it is omitted by default in every mode but `full`: a Community ID of real addresses would
   * undo the privacy mode).
   */
  communityIdOverTransformed?: boolean;
}

const logOptionKeys = keysOf<LogOptions>({
  destination: true,
  outputs: true,
  onEvent: true,
  pino: true,
  level: true,
  ringCapacity: true,
  statsInterval: true,
  sampleBurst: true,
  sampleWindow: true,
  service: true,
  host: true,
  instance: true,
  communityIdSeed: true,
  eventBufferBytes: true,
  format: true,
  ipPrivacy: true,
  communityIdOverTransformed: true,
});

const privacyKeys: Record<string, readonly string[]> = {
  full: ['mode'],
  omit: ['mode'],
  truncate: ['mode', 'v4Prefix', 'v6Prefix'],
  hmac: ['mode', 'keyId', 'key'],
  cryptopan: ['mode', 'key'],
};

function keyBytes(key: unknown, name: string): Buffer {
  if (key instanceof Uint8Array) return Buffer.from(key);
  if (typeof key === 'string' && /^([0-9a-fA-F]{2})+$/.test(key)) return Buffer.from(key, 'hex');
  throw new KcpInvalidOptionError(`log.ipPrivacy.${name} must be bytes or a hex string`);
}

function resolvePrivacy(p: IpPrivacy | undefined): NativeLogOptions['ipPrivacy'] {
  const privacy = p ?? { mode: 'full' };
  if (typeof privacy !== 'object' || privacy === null) throw new KcpInvalidOptionError(`log.ipPrivacy must be an object with a mode (for example { mode: 'hmac', key }), got ${describe(privacy)}`);
  // Checked before it is used as a key: an object without a prototype would throw a TypeError there.
  if (typeof privacy.mode !== 'string') {
    throw new KcpInvalidOptionError(`log.ipPrivacy.mode must be full, truncate, hmac, cryptopan or omit, got ${describe((privacy as { mode: unknown }).mode)}`);
  }
  const keys = privacyKeys[privacy.mode];
  if (keys && Object.hasOwn(privacyKeys, privacy.mode)) checkKeys(privacy, keys, `log.ipPrivacy (mode ${privacy.mode})`);
  switch (privacy.mode) {
    case 'full':
    case 'omit':
      return { mode: privacy.mode };
    case 'truncate':
      return {
        mode: 'truncate',
        v4Prefix: integer(privacy.v4Prefix, 'ipPrivacy.v4Prefix', 24, 0, 32),
        v6Prefix: integer(privacy.v6Prefix, 'ipPrivacy.v6Prefix', 48, 0, 128),
      };
    case 'hmac': {
      if (typeof privacy.keyId !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(privacy.keyId)) {
        throw new KcpInvalidOptionError('log.ipPrivacy.keyId must be 1 to 32 characters of A-Z a-z 0-9 _ -');
      }
      const key = keyBytes(privacy.key, 'key');
      if (key.length < 16) throw new KcpInvalidOptionError('log.ipPrivacy.key must be at least 16 bytes for hmac');
      return { mode: 'hmac', keyId: privacy.keyId, key };
    }
    case 'cryptopan': {
      const key = keyBytes(privacy.key, 'key');
      if (key.length !== 32) throw new KcpInvalidOptionError('log.ipPrivacy.key must be exactly 32 bytes for cryptopan');
      return { mode: 'cryptopan', key };
    }
    default:
      throw new KcpInvalidOptionError(
        `log.ipPrivacy.mode must be full, truncate, hmac, cryptopan or omit, got ${describe((privacy as { mode: unknown }).mode)}`,
      );
  }
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const version: string = (require('../package.json') as { version: string }).version;

function integer(value: unknown, name: string, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new KcpInvalidOptionError(`log.${name} must be an integer in ${min}..${max}, got ${describe(v)}`);
  }
  return v;
}

/** Resolves `log` options; `false` turns logging off. */
export function resolveLogOptions(
  log: LogOptions | false | undefined,
  defaults: { destination: 'stdout' | 'none' },
): NativeLogOptions | undefined {
  if (log === false) return undefined;
  if (log !== undefined && (typeof log !== 'object' || log === null)) {
    throw new KcpInvalidOptionError('log must be an options object or false');
  }
  const o = log ?? {};
  checkKeys(o, logOptionKeys, 'log');
  const level = o.level ?? 'info';
  if (!severities.includes(level)) {
    throw new KcpInvalidOptionError(`log.level must be one of ${severities.join(', ')}, got ${describe(level)}`);
  }
  let outputs: NativeOutputOptions[];
  if (o.outputs !== undefined) {
    if (!Array.isArray(o.outputs)) throw new KcpInvalidOptionError('log.outputs must be an array');
    if (o.outputs.length === 0) {
      // An empty list would keep every record from every output without a word: say which
      // option means what the caller probably wants.
      throw new KcpInvalidOptionError(
        "log.outputs is empty: give at least one output; for records only to 'event' listeners and onEvent use destination: 'none', and log: false turns them off",
      );
    }
    if (o.destination !== undefined || o.format !== undefined) {
      throw new KcpInvalidOptionError('log.outputs replaces log.destination and log.format; give one or the other');
    }
    outputs = o.outputs.map((out, i) => {
      if (typeof out !== 'object' || out === null) throw new KcpInvalidOptionError(`log.outputs[${i}] must be { destination, format?, level? }`);
      checkKeys(out, outputKeys, `log.outputs[${i}]`);
      return resolveOutput(out.destination, out.format, out.level, `outputs[${i}]`);
    });
  } else {
    outputs = [resolveOutput(o.destination ?? defaults.destination, o.format, undefined, 'destination')];
  }
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') {
    throw new KcpInvalidOptionError('log.onEvent must be a function');
  }
  const text = (value: unknown, name: string, fallback: string) => {
    const v = value ?? fallback;
    if (typeof v !== 'string') throw new KcpInvalidOptionError(`log.${name} must be a string`);
    return v;
  };
  return {
    level,
    outputs,
    ringCapacity: integer(o.ringCapacity, 'ringCapacity', 4096, 2, 1 << 20),
    outboxLimit: integer(o.eventBufferBytes, 'eventBufferBytes', 8 << 20, 1024, 2 ** 31 - 1),
    statsInterval: integer(o.statsInterval, 'statsInterval', 60_000, 0, 2 ** 31 - 1),
    sampleBurst: integer(o.sampleBurst, 'sampleBurst', 20, 0, 2 ** 31 - 1),
    sampleWindow: integer(o.sampleWindow, 'sampleWindow', 1000, 1, 2 ** 31 - 1),
    observerHost: text(o.host, 'host', hostname()),
    observerService: text(o.service, 'service', 'kcpwatch'),
    observerInstance: o.instance === undefined ? undefined : text(o.instance, 'instance', ''),
    observerVersion: version,
    communityIdSeed: integer(o.communityIdSeed, 'communityIdSeed', 0, 0, 65535),
    ipPrivacy: resolvePrivacy(o.ipPrivacy),
    communityIdOverTransformed: o.communityIdOverTransformed === true,
  };
}

function resolveOutput(dest: unknown, format: unknown, level: unknown, name: string): NativeOutputOptions {
  const lvl = level ?? 'debug';
  if (!severities.includes(lvl as SeverityName)) {
    throw new KcpInvalidOptionError(`log.${name} level must be one of ${severities.join(', ')}, got ${describe(lvl)}`);
  }
  const common = { format: resolveFormat(format), level: lvl as SeverityName };
  if (dest === 'stdout' || dest === 'stderr' || dest === 'none') return { destination: { type: dest }, ...common };
  if (typeof dest === 'object' && dest !== null && typeof (dest as FileDestination).file === 'string' && (dest as FileDestination).file.length > 0) {
    const f = dest as FileDestination;
    checkKeys(f, fileKeys, `log.${name}`);
    return {
      destination: {
        type: 'file',
        path: f.file,
        maxBytes: integer(f.maxBytes, `${name}.maxBytes`, 0, 0, Number.MAX_SAFE_INTEGER),
        maxAgeMs: integer(f.maxAgeMs, `${name}.maxAgeMs`, 0, 0, Number.MAX_SAFE_INTEGER),
        keep: integer(f.keep, `${name}.keep`, 5, 0, 1000),
      },
      ...common,
    };
  }
  const optional = (v: unknown, key: string) => {
    if (v !== undefined && typeof v !== 'string') throw new KcpInvalidOptionError(`log.${name}.${key} must be a string`);
    return v as string | undefined;
  };
  const clientCert = (d: { certFile?: unknown; keyFile?: unknown }) => {
    const certFile = optional(d.certFile, 'certFile');
    const keyFile = optional(d.keyFile, 'keyFile');
    if ((certFile === undefined) !== (keyFile === undefined)) throw new KcpInvalidOptionError(`log.${name}: certFile and keyFile go together`);
    return certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  };
  const spool = (d: { spoolDir?: unknown; spoolMaxBytes?: unknown }) => {
    const dir = optional(d.spoolDir, 'spoolDir');
    const maxBytes = integer(d.spoolMaxBytes, `${name}.spoolMaxBytes`, 64 << 20, 0, Number.MAX_SAFE_INTEGER);
    return dir === undefined ? undefined : { dir, maxBytes };
  };
  if (typeof dest === 'object' && dest !== null && typeof (dest as SyslogDestination).syslog === 'string') {
    const d = dest as SyslogDestination;
    checkKeys(d, syslogKeys, `log.${name}`);
    const target = parseSyslogUrl(d.syslog);
    if (!target) {
      throw new KcpInvalidOptionError(`log.${name}.syslog must be udp://IP:PORT, tcp://IP:PORT or tls://IP:PORT, got ${d.syslog}`);
    }
    const caFile = optional(d.caFile, 'caFile');
    const serverName = optional(d.serverName, 'serverName');
    const cert = clientCert(d);
    let transport: NativeSyslogTransport;
    if (target.transport === 'tls') {
      if (caFile === undefined) throw new KcpInvalidOptionError(`log.${name}: a tls:// syslog output needs caFile`);
      transport = { kind: 'tls', caFile, serverName, clientCert: cert };
    } else {
      // Taken and ignored as before: only TLS has a CA, a name or a client certificate.
      transport = { kind: target.transport };
    }
    return {
      destination: {
        type: 'syslog',
        transport,
        address: target.address,
        port: target.port,
        spool: spool(d),
        queueRecords: integer(d.queueRecords, `${name}.queueRecords`, 10_000, 1, 10_000_000),
      },
      ...common,
    };
  }
  if (typeof dest === 'object' && dest !== null && typeof (dest as HttpDestination).http === 'string') {
    const d = dest as HttpDestination;
    checkKeys(d, httpKeys, `log.${name}`);
    let url: URL;
    try {
      url = new URL(d.http);
    } catch {
      throw new KcpInvalidOptionError(`log.${name}.http must be a URL, got ${d.http}`);
    }
    // Host names are fine here: the output's own thread resolves them, not the event loop.
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.port) {
      throw new KcpInvalidOptionError(`log.${name}.http must be http(s)://HOST:PORT/path, got ${d.http}`);
    }
    const formats: Record<HttpDestination['kind'], LogFormat> = { hec: 'hec', elastic: 'ecs', otlp: 'otlp' };
    if (typeof d.kind !== 'string' || !Object.hasOwn(formats, d.kind)) throw new KcpInvalidOptionError(`log.${name}.kind must be hec, elastic or otlp`);
    if (d.kind === 'hec' && typeof d.token !== 'string') throw new KcpInvalidOptionError(`log.${name}: a hec output needs token`);
    if (url.protocol === 'https:' && typeof d.caFile !== 'string') throw new KcpInvalidOptionError(`log.${name}: an https output needs caFile`);
    const cert = clientCert(d);
    if (cert !== undefined && url.protocol !== 'https:') throw new KcpInvalidOptionError(`log.${name}: certFile needs an https URL`);
    const collector: NativeHttpCollector =
      d.kind === 'hec' ? { kind: 'hec', token: d.token as string } : d.kind === 'elastic' ? { kind: 'elastic', index: optional(d.index, 'index') ?? 'kcpwatch' } : { kind: 'otlp' };
    return {
      destination: {
        type: 'http',
        url: d.http,
        collector,
        caFile: optional(d.caFile, 'caFile'),
        clientCert: cert,
        gzip: d.gzip ?? true,
        batchRecords: integer(d.batchRecords, `${name}.batchRecords`, 500, 1, 100_000),
        batchDelayMs: integer(d.batchDelayMs, `${name}.batchDelayMs`, 1000, 1, 600_000),
        spool: spool(d),
        queueRecords: integer(d.queueRecords, `${name}.queueRecords`, 10_000, 1, 10_000_000),
      },
      ...common,
      // The collector takes one shape; the format follows the kind.
      format: formats[d.kind],
    };
  }
  throw new KcpInvalidOptionError(`log.${name} must be 'stdout', 'stderr', 'none', { file }, { syslog } or { http }, got ${describe(dest)}`);
}

/**
 * A syslog URL in its parts, or `undefined` when it is not `udp|tcp|tls://IP:PORT` (an IPv6
 * address in brackets; no host names: the output connects from its own thread, which does
 * not resolve).
 */
export function parseSyslogUrl(text: string): { transport: 'udp' | 'tcp' | 'tls'; address: string; port: number } | undefined {
  const m = /^(udp|tcp|tls):\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const bracketed = m[2]!.startsWith('[');
  const address = bracketed ? m[2]!.slice(1, -1) : m[2]!;
  const port = Number(m[3]);
  // Brackets exactly around IPv6, and no zone (`%eth0`, which isIP takes): the native side
  // takes plain addresses only.
  if (isIP(address) !== (bracketed ? 6 : 4) || address.includes('%') || port < 1 || port > 65535) return undefined;
  return { transport: m[1] as 'udp' | 'tcp' | 'tls', address, port };
}

function resolveFormat(format: unknown): LogFormat {
  const f = format ?? 'json';
  if (!logFormats.includes(f as LogFormat)) {
    throw new KcpInvalidOptionError(`log.format must be one of ${logFormats.join(', ')}, got ${describe(f)}`);
  }
  return f as LogFormat;
}

/** Splits a batch of NDJSON lines into records. */
export function parseEvents(batch: Buffer): KcpEvent[] {
  const events: KcpEvent[] = [];
  let start = 0;
  for (;;) {
    const end = batch.indexOf(10, start);
    if (end < 0) break;
    if (end > start) events.push(JSON.parse(batch.toString('utf8', start, end)) as KcpEvent);
    start = end + 1;
  }
  return events;
}
