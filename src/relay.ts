// User-space UDP impairment relay.
//
// The CI kernel has no netem, so tests and the demo put this NAT-like relay
// between a client and a server to simulate loss, delay, jitter, reordering
// and duplication. Only node built-ins are used so it works before the native
// addon is built.

import * as dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';

import { describe } from './options';

export interface ImpairmentOptions {
  /** Probability 0..1 that a datagram is dropped. */
  loss?: number;
  /** Fixed one-way delay in ms added to every datagram. */
  delayMs?: number;
  /** Extra uniformly random delay in [0, jitterMs] ms; reorders naturally. */
  jitterMs?: number;
  /** Probability 0..1 that a datagram is held back an extra reorderDelayMs. */
  reorder?: number;
  /** Hold-back for `reorder`; default 2 * max(1, delayMs) + jitterMs. */
  reorderDelayMs?: number;
  /** Probability 0..1 that a datagram is sent twice. */
  duplicate?: number;
  /** PRNG seed (uint32) so the impairment pattern is reproducible. */
  seed?: number;
}

export interface RelayOptions extends ImpairmentOptions {
  /** The real server. */
  target: { host: string; port: number };
  /** Listen address; default is the loopback of the target's family ('127.0.0.1' or '::1'). */
  host?: string;
  /** Listen port; default 0 (ephemeral). */
  port?: number;
  /** Overrides for the client -> server direction. */
  upstream?: ImpairmentOptions;
  /** Overrides for the server -> client direction. */
  downstream?: ImpairmentOptions;
  /** Bound on client mappings; default 4096. Datagrams from further sources are dropped and counted. */
  maxClients?: number;
  /** A mapping with no traffic either way for this long is removed; default 30000. Infinity disables. */
  idleMs?: number;
  /** Bound on datagrams waiting in the delay queue; default 65536. */
  maxQueued?: number;
  /**
   * Called synchronously once per received datagram after its fate is decided
   * (delivery may be later). Lets tests wait for "handled" even when a
   * datagram is dropped. Exceptions propagate like any event listener's.
   */
  onDatagram?: (trace: DatagramTrace) => void;
}

export type RelayDirection = 'up' | 'down';

export interface DatagramTrace {
  direction: RelayDirection;
  /** 'rejected' means the mapping table was full. */
  fate: 'forwarded' | 'dropped' | 'rejected';
  /** Copies accepted for delivery: 0, 1, or 2 when duplicated. */
  copies: number;
  bytes: number;
  client: { address: string; port: number };
  /** The datagram itself (a view valid during the call: copy it to keep it), for recording tests. */
  data: Buffer;
}

export interface RelayStats {
  /** Datagram copies handed to a socket for sending (duplicates count twice). */
  forwarded: number;
  /** Copies lost to impairment, queue overflow, or shutdown. */
  dropped: number;
  duplicated: number;
  /** Copies that went through the delay queue. */
  delayed: number;
  /** Copies held back by the `reorder` option. */
  reordered: number;
  /** Datagrams refused because the mapping table was full. */
  rejectedClients: number;
  /** Datagrams received from clients. */
  upstreamDatagrams: number;
  /** Datagrams received from the target. */
  downstreamDatagrams: number;
  /** Socket errors (send failures, ICMP-driven ECONNREFUSED, bind failures). */
  errors: number;
}

export interface Relay {
  readonly port: number;
  readonly host: string;
  address(): { address: string; port: number; family: string };
  stats(): RelayStats;
  /** Merges `opts` into the current settings of the given direction(s); a new seed restarts that PRNG. */
  setImpairment(dir: RelayDirection | 'both', opts: ImpairmentOptions): void;
  /** Closes all sockets and clears all pending timers; idempotent. */
  close(): Promise<void>;
}

const DEFAULT_SEED = 0x6b637077;
// Without a distinct down-lane stream, equal seeds would drop request i and
// reply i together, which is a correlation no real link has.
const DOWN_SEED_SALT = 0x9e3779b9;
const DEFAULT_MAX_CLIENTS = 4096;
const DEFAULT_IDLE_MS = 30_000;
const DEFAULT_MAX_QUEUED = 65_536;
// Datagrams that arrive while a new mapping's socket is still binding.
const MAX_BACKLOG = 1024;

interface Settings {
  loss: number;
  delayMs: number;
  jitterMs: number;
  reorder: number;
  reorderDelayMs: number | undefined;
  duplicate: number;
}

interface Lane {
  settings: Settings;
  rand: () => number;
}

interface Mapping {
  key: string;
  client: { address: string; port: number };
  sock: dgram.Socket;
  ready: boolean;
  closed: boolean;
  backlog: Buffer[];
  lastSeen: number;
}

interface Pending {
  due: number;
  seq: number;
  deliver: () => void;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A single queue and timer for every delayed datagram keeps timer churn
// constant under load, and the seq tiebreak keeps equal-deadline datagrams
// in arrival order.
class MinHeap {
  private items: Pending[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Pending | undefined {
    return this.items[0];
  }

  clear(): void {
    this.items = [];
  }

  push(p: Pending): void {
    const a = this.items;
    a.push(p);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): Pending | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && before(a[l]!, a[m]!)) m = l;
      if (r < a.length && before(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
}

function before(x: Pending, y: Pending): boolean {
  return x.due < y.due || (x.due === y.due && x.seq < y.seq);
}

function checkProbability(name: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
    throw new RangeError(`${name} must be a number in [0, 1], got ${describe(v)}`);
  }
}

function checkDuration(name: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${describe(v)}`);
  }
}

function checkImpairment(prefix: string, o: ImpairmentOptions | undefined): void {
  if (o === undefined) return;
  checkProbability(`${prefix}loss`, o.loss);
  checkProbability(`${prefix}reorder`, o.reorder);
  checkProbability(`${prefix}duplicate`, o.duplicate);
  checkDuration(`${prefix}delayMs`, o.delayMs);
  checkDuration(`${prefix}jitterMs`, o.jitterMs);
  checkDuration(`${prefix}reorderDelayMs`, o.reorderDelayMs);
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isFinite(o.seed))) {
    throw new RangeError(`${prefix}seed must be a finite number, got ${describe(o.seed)}`);
  }
}

function checkCount(name: string, v: unknown, min: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${describe(v)}`);
  }
}

function merge(base: Settings, patch: ImpairmentOptions | undefined): Settings {
  if (patch === undefined) return { ...base };
  return {
    loss: patch.loss ?? base.loss,
    delayMs: patch.delayMs ?? base.delayMs,
    jitterMs: patch.jitterMs ?? base.jitterMs,
    reorder: patch.reorder ?? base.reorder,
    reorderDelayMs: patch.reorderDelayMs ?? base.reorderDelayMs,
    duplicate: patch.duplicate ?? base.duplicate,
  };
}

function laneSeed(dir: RelayDirection, seed: number): number {
  return dir === 'down' ? (seed ^ DOWN_SEED_SALT) >>> 0 : seed >>> 0;
}

async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  const { address } = await lookup(host);
  return address;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

// dgram.close() throws once a socket is already closed, and a close issued
// while binding is discarded if the bind then fails; callers retry close in
// their error handlers, so this only has to register for the event.
function closeSocket(sock: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

export async function createRelay(opts: RelayOptions): Promise<Relay> {
  if (opts === null || typeof opts !== 'object' || opts.target === null || typeof opts.target !== 'object') {
    throw new TypeError('createRelay: opts.target { host, port } is required');
  }
  checkImpairment('', opts);
  checkImpairment('upstream.', opts.upstream);
  checkImpairment('downstream.', opts.downstream);
  checkCount('target.port', opts.target.port, 1);
  if (opts.target.port > 65535) throw new RangeError(`target.port out of range: ${opts.target.port}`);
  checkCount('port', opts.port, 0);
  if (opts.port !== undefined && opts.port > 65535) throw new RangeError(`port out of range: ${opts.port}`);
  checkCount('maxClients', opts.maxClients, 1);
  checkCount('maxQueued', opts.maxQueued, 0);
  if (opts.idleMs !== undefined && (typeof opts.idleMs !== 'number' || !(opts.idleMs > 0))) {
    throw new RangeError(`idleMs must be > 0 (Infinity disables expiry), got ${describe(opts.idleMs)}`);
  }

  const targetAddress = await resolveHost(opts.target.host);
  const targetPort = opts.target.port;
  const targetFamily = isIP(targetAddress) === 6 ? 6 : 4;
  const listenAddress = await resolveHost(opts.host ?? (targetFamily === 6 ? '::1' : '127.0.0.1'));
  const listenFamily = isIP(listenAddress) === 6 ? 6 : 4;
  // A loopback-only upstream socket cannot reach a remote target, so only
  // pin to loopback when the target itself is local.
  const upstreamBind = isLoopback(targetAddress) ? targetAddress : targetFamily === 6 ? '::' : '0.0.0.0';
  const maxClients = opts.maxClients ?? DEFAULT_MAX_CLIENTS;
  const idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
  const maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
  const onDatagram = opts.onDatagram;

  const baseSettings: Settings = merge(
    { loss: 0, delayMs: 0, jitterMs: 0, reorder: 0, reorderDelayMs: undefined, duplicate: 0 },
    opts,
  );
  const lanes: Record<RelayDirection, Lane> = {
    up: {
      settings: merge(baseSettings, opts.upstream),
      rand: mulberry32(laneSeed('up', opts.upstream?.seed ?? opts.seed ?? DEFAULT_SEED)),
    },
    down: {
      settings: merge(baseSettings, opts.downstream),
      rand: mulberry32(laneSeed('down', opts.downstream?.seed ?? opts.seed ?? DEFAULT_SEED)),
    },
  };

  const stats: RelayStats = {
    forwarded: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
    rejectedClients: 0,
    upstreamDatagrams: 0,
    downstreamDatagrams: 0,
    errors: 0,
  };
  const onSent = (err: Error | null): void => {
    if (err) stats.errors++;
  };

  const listener = dgram.createSocket({ type: listenFamily === 6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => {
      try {
        listener.close();
      } catch {
        // Never bound, nothing to release.
      }
      reject(err);
    };
    listener.once('error', fail);
    listener.bind(opts.port ?? 0, listenAddress, () => {
      listener.removeListener('error', fail);
      resolve();
    });
  });
  const bound = listener.address();
  const boundAddress = { address: bound.address, port: bound.port, family: String(bound.family) };

  const mappings = new Map<string, Mapping>();
  const closingSockets = new Set<Promise<void>>();
  const heap = new MinHeap();
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  let armedDue = Infinity;
  let closing = false;
  let closePromise: Promise<void> | undefined;

  const fire = (): void => {
    timer = undefined;
    armedDue = Infinity;
    // Timers are scheduled in whole ms on the loop clock, so they can wake a
    // fraction of a ms before performance.now() reaches the deadline.
    const horizon = performance.now() + 1;
    for (let head = heap.peek(); head !== undefined && head.due <= horizon; head = heap.peek()) {
      heap.pop();
      head.deliver();
      if (closing) return;
    }
    arm();
  };

  const arm = (): void => {
    const head = heap.peek();
    if (head === undefined || closing) return;
    if (timer !== undefined && armedDue <= head.due) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(fire, Math.max(1, Math.ceil(head.due - performance.now())));
    // The relay's sockets are what keep a process alive; a queued datagram
    // alone should not.
    timer.unref();
    armedDue = head.due;
  };

  const scheduleCopy = (s: Settings, rJitter: number, rReorder: number, deliver: () => void): boolean => {
    let delay = s.delayMs + rJitter * s.jitterMs;
    if (rReorder < s.reorder) {
      // Long enough that datagrams sent just after this one overtake it even
      // with full jitter.
      delay += s.reorderDelayMs ?? 2 * Math.max(1, s.delayMs) + s.jitterMs;
      stats.reordered++;
    }
    if (delay <= 0) {
      deliver();
      return true;
    }
    if (heap.size >= maxQueued) {
      stats.dropped++;
      return false;
    }
    stats.delayed++;
    heap.push({ due: performance.now() + delay, seq: seq++, deliver });
    arm();
    return true;
  };

  const impair = (lane: Lane, deliver: () => void): number => {
    const s = lane.settings;
    const r = lane.rand;
    // A fixed number of draws per datagram means changing jitter, reorder or
    // duplicate never shifts which datagrams a given seed drops.
    const rLoss = r();
    const rDup = r();
    const rJitter1 = r();
    const rReorder1 = r();
    const rJitter2 = r();
    const rReorder2 = r();
    if (rLoss < s.loss) {
      stats.dropped++;
      return 0;
    }
    let copies = scheduleCopy(s, rJitter1, rReorder1, deliver) ? 1 : 0;
    if (rDup < s.duplicate) {
      stats.duplicated++;
      if (scheduleCopy(s, rJitter2, rReorder2, deliver)) copies++;
    }
    return copies;
  };

  const report = (trace: DatagramTrace): void => {
    if (onDatagram !== undefined) onDatagram(trace);
  };

  const sendUp = (m: Mapping, buf: Buffer): void => {
    if (m.closed) {
      stats.dropped++;
      return;
    }
    if (!m.ready) {
      if (m.backlog.length >= MAX_BACKLOG) stats.dropped++;
      else m.backlog.push(buf);
      return;
    }
    try {
      m.sock.send(buf, onSent);
      stats.forwarded++;
    } catch {
      stats.errors++;
    }
  };

  const sendDown = (client: { address: string; port: number }, buf: Buffer): void => {
    if (closing) return;
    try {
      listener.send(buf, client.port, client.address, onSent);
      stats.forwarded++;
    } catch {
      stats.errors++;
    }
  };

  const dropMapping = (m: Mapping): void => {
    if (m.closed) return;
    m.closed = true;
    if (mappings.get(m.key) === m) mappings.delete(m.key);
    stats.dropped += m.backlog.length;
    m.backlog = [];
    const p = closeSocket(m.sock);
    closingSockets.add(p);
    void p.then(() => closingSockets.delete(p));
  };

  const openMapping = (client: { address: string; port: number }, key: string): Mapping | undefined => {
    if (mappings.size >= maxClients) return undefined;
    const sock = dgram.createSocket({ type: targetFamily === 6 ? 'udp6' : 'udp4' });
    const m: Mapping = {
      key,
      client,
      sock,
      ready: false,
      closed: false,
      backlog: [],
      lastSeen: performance.now(),
    };
    mappings.set(key, m);
    sock.on('error', () => {
      stats.errors++;
      // Before the socket is connected the only errors are bind/connect
      // failures, which leave the mapping useless.
      if (!m.ready) {
        dropMapping(m);
        try {
          sock.close();
        } catch {
          // Already closed by dropMapping.
        }
      }
    });
    sock.on('message', (msg: Buffer) => {
      if (closing || m.closed) return;
      stats.downstreamDatagrams++;
      m.lastSeen = performance.now();
      const copies = impair(lanes.down, () => sendDown(client, msg));
      report({ direction: 'down', fate: copies > 0 ? 'forwarded' : 'dropped', copies, bytes: msg.length, client, data: msg });
    });
    sock.bind(0, upstreamBind, () => {
      if (m.closed) return;
      // Connecting makes the kernel discard datagrams from anyone but the
      // target and surfaces ICMP port-unreachable as ECONNREFUSED.
      sock.connect(targetPort, targetAddress, (err?: Error) => {
        if (m.closed) return;
        if (err) {
          stats.errors++;
          dropMapping(m);
          return;
        }
        m.ready = true;
        const queued = m.backlog;
        m.backlog = [];
        for (const buf of queued) sendUp(m, buf);
      });
    });
    return m;
  };

  listener.on('error', () => {
    stats.errors++;
  });
  listener.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    if (closing) return;
    stats.upstreamDatagrams++;
    const key = `${rinfo.address}|${rinfo.port}`;
    let m = mappings.get(key);
    if (m === undefined) {
      const client = { address: rinfo.address, port: rinfo.port };
      m = openMapping(client, key);
      if (m === undefined) {
        stats.rejectedClients++;
        report({ direction: 'up', fate: 'rejected', copies: 0, bytes: msg.length, client, data: msg });
        return;
      }
    }
    m.lastSeen = performance.now();
    const mapping = m;
    const copies = impair(lanes.up, () => sendUp(mapping, msg));
    report({ direction: 'up', fate: copies > 0 ? 'forwarded' : 'dropped', copies, bytes: msg.length, client: m.client, data: msg });
  });

  let sweeper: NodeJS.Timeout | undefined;
  if (Number.isFinite(idleMs)) {
    sweeper = setInterval(
      () => {
        const cutoff = performance.now() - idleMs;
        for (const m of mappings.values()) {
          if (m.lastSeen <= cutoff) dropMapping(m);
        }
      },
      Math.min(5000, Math.max(5, Math.floor(idleMs / 2))),
    );
    sweeper.unref();
  }

  const doClose = async (): Promise<void> => {
    closing = true;
    if (sweeper !== undefined) clearInterval(sweeper);
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    stats.dropped += heap.size;
    heap.clear();
    for (const m of [...mappings.values()]) dropMapping(m);
    await Promise.all([closeSocket(listener), ...closingSockets]);
  };

  return {
    port: boundAddress.port,
    host: boundAddress.address,
    address: () => ({ ...boundAddress }),
    stats: () => ({ ...stats }),
    setImpairment(dir: RelayDirection | 'both', patch: ImpairmentOptions): void {
      if (dir !== 'up' && dir !== 'down' && dir !== 'both') {
        throw new RangeError(`setImpairment: dir must be 'up', 'down' or 'both', got ${describe(dir)}`);
      }
      checkImpairment('', patch);
      const dirs: RelayDirection[] = dir === 'both' ? ['up', 'down'] : [dir];
      for (const d of dirs) {
        const lane = lanes[d];
        lane.settings = merge(lane.settings, patch);
        if (patch.seed !== undefined) lane.rand = mulberry32(laneSeed(d, patch.seed));
      }
    },
    close(): Promise<void> {
      if (closePromise === undefined) closePromise = doClose();
      return closePromise;
    },
  };
}
