// What server.mjs and load.mjs share: loading the node-kcp binding (or saying why it is not
// there), the KCP parameters, and the timer that drives every session's ikcp_update at the
// moment ikcp_check asks for.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The same parameters as kcp-go's bench (interop/kcp-go/main.go defaults) and kcpwatch's
 * `game` preset (src/options.ts): nodelay 1, interval 10 ms, fast resend after 2 duplicate
 * ACKs, no congestion control, 256-segment windows, MTU 1200, message mode.
 */
export const GAME = { nodelay: 1, interval: 10, resend: 2, nc: 1, sndwnd: 256, rcvwnd: 256, mtu: 1200, stream: 0 };
export const KCP_OVERHEAD = 24;
export const MSS = GAME.mtu - KCP_OVERHEAD;

/**
 * Returns node-kcp's `KCP` constructor, or `{ unavailable: reason }`. The package's `main`
 * (include_dirs.js) prints a path and exports nothing, so the binding is loaded through its
 * index.js, which requires build/Release/kcp.node.
 */
export function loadNodeKcp() {
  const pkgDir = join(here, 'node_modules', 'node-kcp');
  if (!existsSync(join(pkgDir, 'package.json'))) {
    return { unavailable: 'node-kcp is not installed (npm ci --prefix bench/peers/node-kcp)' };
  }
  if (!existsSync(join(pkgDir, 'build', 'Release', 'kcp.node'))) {
    return { unavailable: 'node-kcp is installed but its native addon was not built (build/Release/kcp.node is missing; node-gyp needs Node headers: set npm_config_nodedir)' };
  }
  try {
    const require = createRequire(import.meta.url);
    const { KCP } = require('node-kcp/index.js');
    if (typeof KCP !== 'function') return { unavailable: 'node-kcp loaded but exports no KCP constructor' };
    return { KCP };
  } catch (err) {
    return { unavailable: `node-kcp's addon does not load: ${String(err.message).split('\n')[0]}` };
  }
}

/** Applies GAME to a node-kcp KCP object. */
export function configure(kcp) {
  kcp.nodelay(GAME.nodelay, GAME.interval, GAME.resend, GAME.nc);
  kcp.wndsize(GAME.sndwnd, GAME.rcvwnd);
  kcp.setmtu(GAME.mtu);
  kcp.stream(GAME.stream);
}

/**
 * ikcp's clock: whole milliseconds, monotonic (node-kcp truncates to 32 bits, which ikcp's
 * wrapping arithmetic expects). Starts well above zero so no ikcp timestamp is ever 0.
 */
const clockBase = 1_000_000 - Math.floor(performance.now());
export const kcpNow = () => Math.floor(performance.now()) + clockBase;

/**
 * One timer for all sessions: a binary min-heap of (due, session). Each session is in the heap
 * exactly once. When it is due: ikcp_update(now); if ikcp_check still says "now" (a
 * retransmission is due before update's interval tick) flush at once, as kcpwatch's session
 * does; then re-queue it at now + ikcp_check(now). An input or an application send never makes
 * a session due earlier than ikcp_check said (ikcp_flush leaves ts_flush alone, and new
 * segments are due one RTO out), so nothing is re-queued between ticks.
 *
 * `isLive(session)` false drops the session from the heap (closed or idle).
 */
export class Timer {
  constructor(isLive) {
    this.isLive = isLive;
    this.due = [];
    this.items = [];
    this.handle = undefined;
    this.armedAt = Infinity;
    this.stopped = false;
    this.tick = this.tick.bind(this);
  }

  add(session, now) {
    session.kcp.update(now);
    this.push(now + Math.max(1, session.kcp.check(now)), session);
    this.arm();
  }

  push(due, item) {
    const d = this.due;
    const it = this.items;
    let i = d.length;
    d.push(due);
    it.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p] <= due) break;
      d[i] = d[p];
      it[i] = it[p];
      i = p;
    }
    d[i] = due;
    it[i] = item;
  }

  pop() {
    const d = this.due;
    const it = this.items;
    const top = it[0];
    const lastDue = d.pop();
    const lastItem = it.pop();
    const n = d.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && d[c + 1] < d[c]) c++;
        if (d[c] >= lastDue) break;
        d[i] = d[c];
        it[i] = it[c];
        i = c;
      }
      d[i] = lastDue;
      it[i] = lastItem;
    }
    return top;
  }

  arm() {
    if (this.stopped || this.due.length === 0) return;
    const at = this.due[0];
    if (this.handle !== undefined && this.armedAt <= at) return;
    if (this.handle !== undefined) clearTimeout(this.handle);
    this.armedAt = at;
    this.handle = setTimeout(this.tick, Math.max(0, at - kcpNow()));
  }

  tick() {
    this.handle = undefined;
    this.armedAt = Infinity;
    const now = kcpNow();
    while (this.due.length > 0 && this.due[0] <= now) {
      const session = this.pop();
      if (!this.isLive(session, now)) continue;
      const kcp = session.kcp;
      kcp.update(now);
      let wait = kcp.check(now);
      if (wait === 0) {
        kcp.flush();
        wait = kcp.check(now);
      }
      this.push(now + Math.max(1, wait), session);
    }
    this.arm();
  }

  stop() {
    this.stopped = true;
    if (this.handle !== undefined) clearTimeout(this.handle);
  }
}

/**
 * Sessions with new input or new messages to send, flushed once per event-loop iteration
 * (after the poll phase has handed over every datagram it read): ACKs and echoes leave
 * together, as kcpwatch flushes once per I/O iteration and kcp-go flushes on every Write.
 */
export class FlushQueue {
  constructor() {
    this.dirty = new Set();
    this.scheduled = false;
    this.run = this.run.bind(this);
  }
  mark(session) {
    this.dirty.add(session);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
  run() {
    this.scheduled = false;
    const now = kcpNow();
    for (const s of this.dirty) {
      if (s.closed) continue;
      // ikcp_flush stamps segments with kcp->current, which only ikcp_update sets.
      s.kcp.update(now);
      s.kcp.flush();
    }
    this.dirty.clear();
  }
}
