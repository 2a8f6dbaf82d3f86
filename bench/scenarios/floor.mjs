// Scenario `floor` (issue #19): what this machine's loopback itself can do, next to kcpwatch and
// kcp-go, so their figures read as a distance from the physical limit.
//
// 1. Ping-pong, one connection, one 64 B message in flight: p50/p99/max of the round trip.
//    - plain Rust: bench/peers/udp-echo's server (recvmmsg/sendmmsg, one blocking thread) and its
//      blocking client (send, recv): the kernel loopback itself;
//    - Node dgram: bench/peers/udp/server.mjs and the dgram client of bench/peers/udp-echo/
//      pingpong.mjs;
//    - kcpwatch raw: bench/echo-server.mjs and kcpwatch's own client in the same pingpong.mjs loop;
//    all three: `count` round trips after `warmup`, cut short at `boundMs`;
//    - kcp-go, and kcpwatch again, under the Go driver (`bench-client --conns 1 --window 1`):
//      it counts by time, not messages, so it runs `goMs` after its one warm-up echo, and the
//      table shows how many round trips that was.
// 2. Echo peak in datagrams per second, as the servers count them (received + sent): the Rust echo
//    under its Rust load (sockets x datagrams in flight, the best of a few shapes), Node's dgram
//    echo, and kcpwatch at echo.mjs's headline shape (100 connections x 64 B x window 4) under the
//    Go load and under its own Node load; kcpwatch's as a fraction of the Rust echo's. A KCP
//    message costs data and ACK datagrams both ways, fewer per message when messages share a
//    datagram, so datagrams/s (not msg/s) is what compares with a plain echo.
import { drivers, servers } from '../lib/peers.mjs';
import { run } from '../lib/row.mjs';

export async function floor(ctx) {
  const size = 64;
  const count = ctx.quick ? 5_000 : 20_000;
  const warmup = ctx.quick ? 500 : 1_000;
  const boundMs = ctx.quick ? 10_000 : 30_000;
  const goMs = ctx.quick ? 1_500 : 4_000;
  const pingpong = { conns: 1, window: 1, size, count, warmup, durationMs: boundMs, timeoutMs: 1000 };
  const driverTimeout = { timeoutMs: boundMs + 30_000 };
  const unavailable = ctx.peers.udpEcho.available ? undefined : `unavailable (${ctx.peers.udpEcho.reason})`;
  let failed = false;

  const latency = [];
  const pingRows = [
    { name: 'plain Rust (recvmmsg echo, Rust client)', rust: true, start: () => servers['udp-echo'](), drive: (port) => drivers['udp-echo']({ ...pingpong, port }, driverTimeout) },
    { name: 'Node dgram (dgram echo, dgram client)', start: () => servers.dgram(), drive: (port) => drivers.pingpong({ ...pingpong, port, stack: 'dgram' }, driverTimeout) },
    { name: 'kcpwatch raw (its Node client)', start: () => servers.kcpwatch({ mode: 'raw' }), drive: (port) => drivers.pingpong({ ...pingpong, port, stack: 'kcpwatch' }, driverTimeout) },
    { name: 'kcpwatch raw (Go client)', byTime: true, start: () => servers.kcpwatch({ mode: 'raw' }), drive: (port) => drivers.go({ port, conns: 1, window: 1, size, durationMs: goMs }, driverTimeout) },
    { name: 'kcp-go (Go client)', byTime: true, start: () => servers['kcp-go'](), drive: (port) => drivers.go({ port, conns: 1, window: 1, size, durationMs: goMs }, driverTimeout) },
  ];
  for (const row of pingRows) {
    // pingpong.mjs lives beside the Rust crate but needs nothing built: only the Rust row waits on it.
    if (row.rust && unavailable) {
      latency.push({ peer: row.name, unavailable });
      continue;
    }
    const { result, error } = await run(row.start, row.drive);
    if (error) {
      failed = true;
      latency.push({ peer: row.name, error });
      ctx.progress(`floor ping-pong ${row.name}: FAILED: ${error}`);
      continue;
    }
    latency.push({ peer: row.name, round_trips: result.messages, by_time_ms: row.byTime ? goMs : undefined, p50_us: result.p50_us, p99_us: result.p99_us, max_us: result.max_us });
    ctx.progress(`floor ping-pong ${row.name}: p50 ${result.p50_us} / p99 ${result.p99_us} / max ${result.max_us} µs (${result.messages} round trips)`);
  }

  // Datagrams the server received and sent, per second of the driver's run.
  const perSecond = (n, result) => Math.round(n / (result.elapsed_ms / 1000));
  const peak = [];
  const rustShapes = ctx.quick ? [{ conns: 16, window: 16 }] : [{ conns: 1, window: 64 }, { conns: 16, window: 16 }, { conns: 100, window: 4 }];
  const load = { size, durationMs: ctx.durationMs, drainMs: 3000 };
  const loadTimeout = { timeoutMs: ctx.durationMs + 30_000 };
  const peakRows = [
    ...rustShapes.map((shape) => ({
      name: `plain Rust (Rust load, ${shape.conns} sockets x ${shape.window} in flight)`,
      rust: true,
      start: () => servers['udp-echo'](),
      drive: (port) => drivers['udp-echo']({ ...load, ...shape, port, timeoutMs: 200 }, loadTimeout),
      datagrams: (report) => report.datagrams_in + report.datagrams_out,
    })),
    // The dgram server counts what it received and sends each one straight back.
    { name: 'Node dgram (dgram load, 100 x 4)', start: () => servers.dgram(), drive: (port) => drivers.dgram({ ...load, conns: 100, window: 4, port }, loadTimeout), datagrams: (report) => 2 * report.datagrams },
    { name: 'kcpwatch raw (Go load, 100 x 4)', kcpwatch: 'Go load', start: () => servers.kcpwatch({ mode: 'raw' }), drive: (port) => drivers.go({ ...load, conns: 100, window: 4, port }, loadTimeout), datagrams: (report) => report.datagrams_in + report.datagrams_out },
    { name: 'kcpwatch raw (its Node load, 100 x 4)', kcpwatch: 'its Node load', start: () => servers.kcpwatch({ mode: 'raw' }), drive: (port) => drivers.node({ ...load, conns: 100, window: 4, port, mode: 'raw' }, loadTimeout), datagrams: (report) => report.datagrams_in + report.datagrams_out },
  ];
  for (const row of peakRows) {
    if (row.rust && unavailable) {
      peak.push({ peer: row.name, unavailable });
      continue;
    }
    const { result, report, error } = await run(row.start, row.drive);
    const datagrams = report && row.datagrams(report);
    if (error || !Number.isFinite(datagrams) || !(result.elapsed_ms > 0)) {
      failed = true;
      const why = error ?? `no datagram count from the server (${JSON.stringify(report)?.slice(0, 200)})`;
      peak.push({ peer: row.name, error: why });
      ctx.progress(`floor echo peak ${row.name}: FAILED: ${why}`);
      continue;
    }
    const entry = { peer: row.name, rust: row.rust, kcpwatch: row.kcpwatch, datagrams_per_sec: perSecond(datagrams, result), msgs_per_sec: Math.round(result.msgs_per_sec), datagrams, messages: result.messages, elapsed_ms: result.elapsed_ms, lost: result.lost ?? 0 };
    peak.push(entry);
    ctx.progress(`floor echo peak ${row.name}: ${entry.datagrams_per_sec} datagrams/s (${entry.msgs_per_sec} msg/s)`);
  }
  const rustPeak = Math.max(0, ...peak.filter((r) => r.rust && r.datagrams_per_sec).map((r) => r.datagrams_per_sec));
  const fractions = {};
  for (const r of peak) {
    if (r.rust || !r.datagrams_per_sec || rustPeak === 0) continue;
    r.of_rust_peak = Number((r.datagrams_per_sec / rustPeak).toFixed(3));
    if (r.kcpwatch) fractions[r.kcpwatch] = r.of_rust_peak;
  }

  // One broken peer shows as FAILED in its row while the others still report; the run still fails.
  if (failed) process.exitCode = 1;
  const pingText = (r) =>
    r.unavailable ?? (r.error ? `FAILED: ${r.error}` : `p50 ${r.p50_us} / p99 ${r.p99_us} / max ${r.max_us} µs (${r.round_trips} round trips${r.by_time_ms ? ` in ${r.by_time_ms / 1000} s` : ''})`);
  const peakText = (r) =>
    r.unavailable ??
    (r.error
      ? `FAILED: ${r.error}`
      : `${r.datagrams_per_sec} datagrams/s (${r.msgs_per_sec} msg/s${r.lost ? `, ${r.lost} lost` : ''}${r.of_rust_peak !== undefined ? `; ${r.of_rust_peak.toFixed(2)} of plain Rust` : ''})`);
  const fractionText = Object.entries(fractions).map(([load, f]) => `${f.toFixed(2)} (${load})`).join(', ') || 'n/a';
  return {
    json: { size, count, warmup, bound_ms: boundMs, go_ms: goMs, latency, peak, rust_peak_datagrams_per_sec: rustPeak || null, kcpwatch_fraction_of_rust_peak: fractions },
    table: [
      ...latency.map((r) => [`floor ping-pong 1 x ${size} B, ${r.peer}`, pingText(r)]),
      ...peak.map((r) => [`floor echo peak ${size} B, ${r.peer}`, peakText(r)]),
      ['floor: kcpwatch echo peak / plain Rust echo peak, datagrams/s', fractionText],
    ],
    chart: [
      ...latency.filter((r) => r.p50_us !== undefined).map((r) => ({ panel: 'Round-trip floor: ping-pong p50, 1 x 64 B', unit: 'µs', group: 'p50', peer: r.peer, value: r.p50_us })),
      ...latency.filter((r) => r.p99_us !== undefined).map((r) => ({ panel: 'Round-trip floor: ping-pong p99, 1 x 64 B', unit: 'µs', group: 'p99', peer: r.peer, value: r.p99_us })),
      ...peak.filter((r) => r.datagrams_per_sec).map((r) => ({ panel: 'Echo peak (server datagrams in + out)', unit: 'datagrams/s', group: 'peak', peer: r.peer, value: r.datagrams_per_sec })),
    ],
  };
}
