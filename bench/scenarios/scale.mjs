// Scenario 4, scale: 10,000 concurrent idle connections (memory per connection: the server
// process's resident memory held minus before, divided by the sessions), then 10,000 active at
// 10 messages/s each (CPU per connection and the server's event-loop delay). kcpwatch in its
// default secure mode and in raw mode, kcp-go's server as the peer.
import { drivers, servers } from '../lib/peers.mjs';
import { processCost } from '../lib/process.mjs';

// Idle connections are held by the Go driver (one socket per session, like players); the
// active load comes from each peer's own client stack, as in scenario 1: at 10,000 sessions the
// Go driver cannot offer 100,000 msg/s on a core (kcp-go wakes every session every 10 ms).
const peers = [
  { name: 'kcpwatch secure', server: 'kcpwatch', mode: 'secure', driver: 'node' },
  { name: 'kcpwatch', server: 'kcpwatch', mode: 'raw', driver: 'node' },
  { name: 'kcp-go', server: 'kcp-go', mode: 'raw', driver: 'go' },
];

async function idle(ctx, peer, conns) {
  const server = await servers[peer.server]({ mode: peer.mode });
  try {
    const before = processCost(server.pid);
    let held;
    const holding = new Promise((resolve) => (held = resolve));
    const run = drivers.go(
      { port: server.port, conns, size: 64, window: 1, durationMs: 1, drainMs: 20_000, mode: peer.mode, hold: true, dialRate: ctx.dialRate },
      { keepStdin: true, timeoutMs: 180_000, onStderr: (line) => /^HOLDING (\d+)/.test(line) && held(Number(/^HOLDING (\d+)/.exec(line)[1])) },
    );
    const established = await Promise.race([holding, run.then((r) => { throw new Error(`driver ended before holding: ${JSON.stringify(r)}`); })]);
    // Let the server finish what the last handshakes queued before reading its memory.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const during = processCost(server.pid);
    // CPU while every connection is held and idle (the driver sends each session's keepalive
    // once a second): what an idle player costs the server.
    const idleMs = ctx.quick ? 2000 : 5000;
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const after = processCost(server.pid);
    const idleCpu = ((after.cpuMs - during.cpuMs) / ((performance.now() - t0) / 1000) / 1000) * 100;
    run.release();
    await run;
    return { established, rss_before_kib: before.rssKiB, rss_held_kib: during.rssKiB, kib_per_connection: Number(((during.rssKiB - before.rssKiB) / established).toFixed(2)), idle_cpu_percent_of_core: Number(idleCpu.toFixed(1)) };
  } finally {
    await server.stop();
  }
}

async function active(ctx, peer, conns, rate) {
  const server = await servers[peer.server]({ mode: peer.mode });
  let report = {};
  try {
    // CPU is read over the load itself: from the driver's `LOAD n` line (every session open)
    // to the end of its sending time, not over dialing and draining.
    let window;
    const measured = new Promise((resolve) => (window = resolve));
    const onStderr = (line) => {
      if (!line.startsWith('LOAD')) return;
      const start = processCost(server.pid);
      const t0 = performance.now();
      setTimeout(() => window({ start, end: processCost(server.pid), seconds: (performance.now() - t0) / 1000 }), ctx.scaleMs);
    };
    const r = await drivers[peer.driver](
      { port: server.port, conns, size: 64, window: 8, rate, durationMs: ctx.scaleMs, drainMs: 10_000, mode: peer.mode, dialRate: ctx.dialRate },
      { timeoutMs: 240_000, onStderr },
    );
    const { start, end, seconds } = await measured;
    const out = await server.stop();
    if (peer.server === 'kcpwatch') report = JSON.parse(out.trim().split('\n').at(-1));
    return {
      msgs_per_sec: Math.round(r.msgs_per_sec),
      offered_msgs_per_sec: conns * rate,
      p50_us: r.p50_us,
      p99_us: r.p99_us,
      cpu_us_per_conn_per_s: Number((((end.cpuMs - start.cpuMs) * 1000) / seconds / conns).toFixed(2)),
      cpu_percent_of_core: Number((((end.cpuMs - start.cpuMs) / 1000 / seconds) * 100).toFixed(1)),
      rss_kib: end.rssKiB,
      eld_p99_ms: report.eld_p99_ms,
      eld_max_ms: report.eld_max_ms,
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/**
 * The idle half alone, for kcpwatch secure (protocol v2: every session holds its AEAD keys and
 * replay window) next to raw and kcp-go, same method: `npm run bench -- --only scale-idle`
 * (under a minute, where `scale` with its active half takes several).
 */
export async function scaleIdle(ctx) {
  const conns = 10_000;
  const rows = [];
  for (const peer of peers) {
    const i = await idle(ctx, peer, conns);
    ctx.progress(`scale idle ${peer.name}: ${i.kib_per_connection} KiB/conn`);
    rows.push({ peer: peer.name, conns, idle: i });
  }
  const kib = (name) => rows.find((r) => r.peer === name).idle.kib_per_connection;
  const secureOverRaw = Number((kib('kcpwatch secure') - kib('kcpwatch')).toFixed(2));
  return {
    json: { rows, secure_minus_raw_kib: secureOverRaw },
    table: [
      ...rows.map((r) => [`scale ${r.conns} idle conns, ${r.peer}`, `${r.idle.kib_per_connection} KiB per connection (${r.idle.established} held, RSS ${Math.round(r.idle.rss_before_kib / 1024)} -> ${Math.round(r.idle.rss_held_kib / 1024)} MiB), ${r.idle.idle_cpu_percent_of_core}% of a core while idle`]),
      ['scale idle: kcpwatch secure minus raw', `${secureOverRaw} KiB per connection`],
    ],
    chart: rows.map((r) => ({ panel: 'Memory per idle connection, 10,000 held', unit: 'KiB', group: 'idle', peer: r.peer, value: r.idle.kib_per_connection })),
  };
}

export async function scale(ctx) {
  const conns = 10_000;
  const rows = [];
  for (const peer of peers) {
    const i = await idle(ctx, peer, conns);
    ctx.progress(`scale idle ${peer.name}: ${i.kib_per_connection} KiB/conn`);
    const a = await active(ctx, peer, conns, 10);
    ctx.progress(`scale active ${peer.name}: ${a.cpu_us_per_conn_per_s} us CPU/conn/s`);
    rows.push({ peer: peer.name, conns, idle: i, active: { rate: 10, ...a } });
  }
  return {
    json: { rows },
    table: rows.flatMap((r) => [
      [`scale ${r.conns} idle conns, ${r.peer}`, `${r.idle.kib_per_connection} KiB per connection (${r.idle.established} held, RSS ${Math.round(r.idle.rss_before_kib / 1024)} -> ${Math.round(r.idle.rss_held_kib / 1024)} MiB)`],
      [
        `scale ${r.conns} conns x 10 msg/s, ${r.peer}`,
        `${r.active.cpu_us_per_conn_per_s} us CPU per conn per s (${r.active.cpu_percent_of_core}% of a core), ${r.active.msgs_per_sec} of ${r.active.offered_msgs_per_sec} msg/s, p50 ${(r.active.p50_us / 1000).toFixed(1)} / p99 ${(r.active.p99_us / 1000).toFixed(1)} ms` +
          (r.active.eld_p99_ms === undefined ? '' : `, event-loop delay p99 ${r.active.eld_p99_ms.toFixed(1)} ms`),
      ],
    ]),
    chart: [
      ...rows.map((r) => ({ panel: 'Memory per idle connection, 10,000 held', unit: 'KiB', group: 'idle', peer: r.peer, value: r.idle.kib_per_connection })),
      ...rows.map((r) => ({ panel: '10,000 connections x 10 msg/s (100,000 offered)', unit: 'msg/s', group: 'echoed', peer: r.peer, value: r.active.msgs_per_sec })),
      ...rows.map((r) => ({ panel: '10,000 connections x 10 msg/s, round-trip p99', unit: 'ms', group: 'p99', peer: r.peer, value: r.active.p99_us / 1000 })),
    ],
  };
}
