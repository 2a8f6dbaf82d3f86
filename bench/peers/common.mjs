// What the peers' servers and load drivers share: the command line of a load driver, the
// payload (the same bytes as the Go driver's benchPayload in interop/kcp-go/bench.go), the
// latency summary (the same fields and percentile rule as `kcpgo bench-client`), and the
// server contract of bench/echo-server.mjs (port on the first stdout line, stop on stdin EOF,
// an event-loop-delay JSON line on the way out).
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Writes one JSON line to stdout. */
export function emit(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A bad command line: a message on stderr, exit 2 (as the Go driver's usageError). */
export function usageError(program, message) {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(2);
}

/**
 * `--addr HOST:PORT --conns N --size B --duration-ms T --window W [--rate R] [--drain-ms D]`,
 * plus any `extra` flags ({ name: default }). Values are checked as the Go driver checks them.
 */
export function parseLoadArgs(program, argv, { maxSize = 65507, extra = {} } = {}) {
  const opts = { addr: '127.0.0.1:4000', conns: 100, size: 64, 'duration-ms': 5000, window: 1, rate: 0, 'drain-ms': 5000, ...extra };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in opts)) usageError(program, `unknown argument ${argv[i]}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) usageError(program, `--${m[1]} needs a value`);
    opts[m[1]] = m[1] === 'addr' ? value : Number(value);
  }
  const addr = /^(.*):(\d+)$/.exec(opts.addr);
  if (!addr) usageError(program, `--addr must be HOST:PORT, got ${opts.addr}`);
  const host = addr[1].replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr[2]);
  const int = (name, min, max = Number.MAX_SAFE_INTEGER) => {
    const v = opts[name];
    if (!Number.isInteger(v) || v < min || v > max) usageError(program, `--${name} must be an integer in ${min}..${max}, got ${v}`);
  };
  int('conns', 1, 100_000);
  int('size', 8, maxSize); // each message carries its sequence number in its first 8 bytes
  int('duration-ms', 1);
  int('drain-ms', 1);
  int('window', 1, 1_000_000);
  if (!(opts.rate >= 0 && Number.isFinite(opts.rate))) usageError(program, `--rate must be >= 0, got ${opts.rate}`);
  if (port < 1 || port > 65535) usageError(program, `--addr port out of range: ${port}`);
  return {
    ...opts,
    host,
    port,
    durationMs: opts['duration-ms'],
    drainMs: opts['drain-ms'],
  };
}

/**
 * Message `seq` of connection `conn`: byte k is (conn + k) & 0xff, then the first 8 bytes are
 * overwritten with seq, big-endian. A wrong, reordered, duplicated or truncated echo never
 * matches.
 */
export function fillPayload(buf, conn, seq) {
  for (let k = 8; k < buf.length; k++) buf[k] = (conn + k) & 0xff;
  buf.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
  buf.writeUInt32BE(seq >>> 0, 4);
  return buf;
}

/** The pattern bytes (8..) of connection `conn`, to compare echoes against. */
export function payloadTemplate(conn, size) {
  return fillPayload(Buffer.alloc(size), conn, 0);
}

/**
 * Checks an echo against the template of its connection and returns its sequence number, or
 * a string saying what differs.
 */
export function checkPayload(got, template) {
  if (got.length !== template.length) return `got ${got.length} bytes, want ${template.length}`;
  if (got.compare(template, 8, template.length, 8, got.length) !== 0) {
    for (let k = 8; k < got.length; k++) {
      if (got[k] !== template[k]) return `first difference at byte ${k} (got 0x${got[k].toString(16)}, want 0x${template[k].toString(16)})`;
    }
  }
  return got.readUInt32BE(0) * 2 ** 32 + got.readUInt32BE(4);
}

/** Round trips in microseconds, kept in growing Float64Array chunks (millions are fine). */
export class Latencies {
  constructor() {
    this.chunks = [];
    this.cur = new Float64Array(1 << 16);
    this.n = 0;
    this.count = 0;
  }
  push(us) {
    if (this.n === this.cur.length) {
      this.chunks.push(this.cur);
      this.cur = new Float64Array(this.cur.length * 2);
      this.n = 0;
    }
    this.cur[this.n++] = us;
    this.count++;
  }
  sorted() {
    const all = new Float64Array(this.count);
    let at = 0;
    for (const c of this.chunks) all.set(c, at), (at += c.length);
    all.set(this.cur.subarray(0, this.n), at);
    return all.sort();
  }
  /** The fields of `kcpgo bench-client`'s JSON line. */
  summary(elapsedMs) {
    const all = this.sorted();
    // As bench.go: index ceil(p * n) - 1, durations truncated to whole microseconds.
    const pct = (p) => (all.length ? Math.floor(all[Math.max(0, Math.ceil(p * all.length) - 1)]) : 0);
    return {
      ok: true,
      messages: all.length,
      elapsed_ms: Math.floor(elapsedMs),
      msgs_per_sec: Math.round((all.length / (elapsedMs / 1000)) * 10) / 10,
      p50_us: pct(0.5),
      p99_us: pct(0.99),
      max_us: all.length ? Math.floor(all[all.length - 1]) : 0,
    };
  }
}

/**
 * The server side of the contract: prints the port as the first stdout line, and on stdin EOF
 * (or SIGINT/SIGTERM) runs `close()`, prints one JSON line with the event-loop delay
 * percentiles (and whatever `close()` returns) and exits 0.
 */
export function serve(port, close) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  process.stdout.write(`${port}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    delay.disable();
    const eld = { eld_p50_ms: delay.percentile(50) / 1e6, eld_p99_ms: delay.percentile(99) / 1e6, eld_max_ms: delay.max / 1e6 };
    const extra = (await close()) ?? {};
    process.stdout.write(`${JSON.stringify({ ...eld, ...extra })}\n`, () => process.exit(0));
  };
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** Milliseconds on a monotonic clock, with sub-millisecond precision. */
export const nowMs = () => performance.now();

/**
 * `--rate`: one timer per connection, ticking every 1000/rate ms from a start staggered over
 * the connections. A tick that finds `window` messages in flight counts one backlog slot (at
 * most `window`), spent as soon as an echo frees room.
 */
export function pace(c, { rate, window, startAt, stopAt, conns, inFlight, sendOne, onStop }) {
  const period = 1000 / rate;
  const tick = () => {
    c.paceHandle = undefined;
    if (c.closed) return;
    const now = nowMs();
    if (now >= stopAt) return onStop(c, now);
    if (inFlight(c) < window) sendOne(c, now);
    else c.backlog = Math.min(c.backlog + 1, window);
    c.nextAt += period;
    c.paceHandle = setTimeout(tick, Math.max(0, c.nextAt - nowMs()));
  };
  c.nextAt = startAt + (period * c.id) / conns;
  c.paceHandle = setTimeout(tick, Math.max(0, c.nextAt - nowMs()));
}

/** Connects a dgram socket to the server; a bind or connect error rejects instead of throwing later. */
export function connectSocket(sock, host, port) {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(port, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}
