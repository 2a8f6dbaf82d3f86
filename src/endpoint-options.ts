/**
 * The options a native endpoint takes, checked and resolved once: the host, the mode and its
 * keys, the limits, detection and timeouts. Servers and clients both build theirs here.
 */

import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';

import { resolveDetection, type DetectionOptions } from './detection';
import { KcpInvalidOptionError, KcpResolveError } from './errors';
import { keyPairFromPrivate, parseKey, readKeyFile } from './keys';
import type { NativeEndpointOptions, NativeLogOptions } from './native';
import {
  checkSecureOnly,
  describe,
  resolveFec,
  resolveLimits,
  resolveMode,
  resolveTimeout,
  type LimitOptions,
  type Mode,
  type ResolvedKcpOptions,
} from './options';

/** A host option: a non-empty string (an IP literal or a name to resolve). */
export function resolveHostOption(host: unknown): string {
  if (typeof host !== 'string' || host.length === 0) {
    throw new KcpInvalidOptionError(`host must be a non-empty string (an IP address or a host name), got ${typeof host === 'string' ? 'an empty string' : describe(host)}`);
  }
  return host;
}

/** @internal Resolves a host name (an IP literal as it is). */
export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    const { address } = await lookup(host);
    return address;
  } catch (err) {
    throw new KcpResolveError(`cannot resolve ${host}`, { cause: err });
  }
}

/** @internal */
export function endpointOptions(
  host: string,
  port: number,
  kcp: ResolvedKcpOptions,
  extra: {
    ipv6Only?: boolean;
    reusePort?: boolean;
    maxConnections?: number;
    deliveryLimit?: number;
    mode?: Mode;
    authenticate?: unknown;
    authTimeout?: number;
    handshakeTimeout?: number;
    keepalive?: number;
    limits?: LimitOptions;
    detection?: DetectionOptions | false;
    fec?: unknown;
    serverKeys?: unknown;
    keyFile?: unknown;
    serverKey?: unknown;
  },
  log?: NativeLogOptions,
): NativeEndpointOptions {
  if (extra.authenticate !== undefined && typeof extra.authenticate !== 'function') {
    throw new KcpInvalidOptionError('authenticate must be a function');
  }
  const mode = resolveMode(extra.mode);
  checkSecureOnly(extra, mode);
  const count = (v: unknown, name: string, fallback: number) => {
    const value = v ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
      throw new KcpInvalidOptionError(`${name} must be a positive integer, got ${describe(value)}`);
    }
    return value;
  };
  return {
    host,
    port,
    ipv6Only: extra.ipv6Only ?? false,
    reusePort: extra.reusePort ?? false,
    maxConnections: count(extra.maxConnections, 'maxConnections', 10000),
    deliveryLimit: count(extra.deliveryLimit, 'deliveryLimit', 64 * 1024 * 1024),
    session: kcp,
    log,
    mode,
    requireAuth: extra.authenticate !== undefined,
    authTimeout: resolveTimeout(extra.authTimeout, 'authTimeout', 5000),
    handshakeTimeout: resolveTimeout(extra.handshakeTimeout, 'handshakeTimeout', 10000),
    keepalive: extra.keepalive === undefined ? 0 : resolveTimeout(extra.keepalive, 'keepalive', 0),
    limits: resolveLimits(extra.limits),
    detection: resolveDetection(extra.detection),
    fec: resolveFec(extra.fec, mode, kcp),
    ...resolveKeys(extra),
  };
}

/** Secure mode's keys: a server's static private keys, a client's pinned server key. */
function resolveKeys(extra: { serverKeys?: unknown; keyFile?: unknown; serverKey?: unknown }): { serverKeys?: Buffer[]; serverKey?: Buffer } {
  if (extra.serverKeys !== undefined && extra.keyFile !== undefined) throw new KcpInvalidOptionError('give serverKeys or keyFile, not both');
  const out: { serverKeys?: Buffer[]; serverKey?: Buffer } = {};
  if (extra.serverKeys !== undefined) {
    if (!Array.isArray(extra.serverKeys) || extra.serverKeys.length === 0) throw new KcpInvalidOptionError('serverKeys must be a non-empty array of private keys');
    out.serverKeys = extra.serverKeys.map((k, i) => parseKey(k, `serverKeys[${i}]`));
  }
  if (extra.keyFile !== undefined) {
    const files = Array.isArray(extra.keyFile) ? extra.keyFile : [extra.keyFile];
    if (files.length === 0 || files.some((f) => typeof f !== 'string')) throw new KcpInvalidOptionError('keyFile must be a path or an array of paths');
    out.serverKeys = (files as string[]).map(readKeyFile);
  }
  if (out.serverKeys) checkServerKeys(out.serverKeys, extra.serverKeys !== undefined ? 'serverKeys' : 'keyFile');
  if (extra.serverKey !== undefined) out.serverKey = parseKey(extra.serverKey, 'serverKey');
  return out;
}

/** Server static keys held at once (the native core's limit: the current, the next, one more). */
const MAX_SERVER_KEYS = 4;

/**
 * What the native core would refuse at `listen()`, refused at `createServer()` instead: more
 * keys than a rotation needs, or one key twice (the same key id).
 */
function checkServerKeys(keys: Buffer[], name: 'serverKeys' | 'keyFile'): void {
  if (keys.length > MAX_SERVER_KEYS) {
    throw new KcpInvalidOptionError(`${name}: at most ${MAX_SERVER_KEYS} keys (two during a rotation), got ${keys.length}`);
  }
  const seen = new Map<string, number>();
  keys.forEach((key, i) => {
    const { keyId } = keyPairFromPrivate(key);
    const first = seen.get(keyId);
    if (first !== undefined) throw new KcpInvalidOptionError(`${name}[${i}] is the same key as ${name}[${first}] (key id ${keyId})`);
    seen.set(keyId, i);
  });
}
