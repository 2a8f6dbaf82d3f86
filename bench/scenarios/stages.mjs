// Scenario `stages`: where a message's round trip through the kcpwatch server spends its time.
// The echo server runs with KCPWATCH_STAGE_TRACE=1 (crates/kcpwatch/src/stage_trace.rs and
// src/stage-trace.ts): the I/O thread and the JavaScript thread stamp each hop on
// CLOCK_MONOTONIC, and the server's exit report gives each hop's count and p50/p90/p99/max.
//
// Two loads, both from the Go driver so the client is the same for every server:
// - ping-pong: one connection, one 64 B message in flight;
// - the latency scenario's loopback shape: 1,000 connections x 30 msg/s x 64 B.
// Each load also runs against kcpwatch without the trace (what tracing costs) and kcp-go (the
// round trip to beat), so the end-to-end p50/p99 read next to the hops.
import { drivers, servers } from '../lib/peers.mjs';
import { run } from '../lib/row.mjs';

export async function stages(ctx) {
  const loads = [
    { name: 'ping-pong, 1 connection', shape: { conns: 1, window: 1, size: 64, durationMs: ctx.quick ? 1500 : 4000 } },
    { name: '1,000 connections x 30 msg/s', shape: { conns: 1000, rate: 30, window: 64, size: 64, durationMs: ctx.latencyMs, drainMs: 10_000 } },
  ];
  const peers = [
    { name: 'kcpwatch, traced', start: () => servers.kcpwatch({ mode: 'raw', stageTrace: true }) },
    { name: 'kcpwatch', start: () => servers.kcpwatch({ mode: 'raw' }) },
    { name: 'kcp-go', start: () => servers['kcp-go']() },
  ];
  const rows = [];
  let failed = false;
  for (const load of loads) {
    for (const peer of peers) {
      const timeout = { timeoutMs: load.shape.durationMs + (load.shape.drainMs ?? 0) + 30_000 };
      const { result, report, error } = await run(peer.start, (port) => drivers.go({ ...load.shape, port }, timeout));
      if (error) {
        failed = true;
        rows.push({ load: load.name, peer: peer.name, error });
        ctx.progress(`stages ${load.name} ${peer.name}: FAILED: ${error}`);
        continue;
      }
      rows.push({ load: load.name, peer: peer.name, messages: result.messages, p50_us: result.p50_us, p99_us: result.p99_us, max_us: result.max_us, stages: report?.stages });
      ctx.progress(`stages ${load.name} ${peer.name}: p50 ${result.p50_us} / p99 ${result.p99_us} µs`);
    }
  }
  const table = [];
  for (const row of rows) {
    if (row.error) {
      table.push([`stages ${row.load}, ${row.peer}`, `FAILED: ${row.error}`]);
      continue;
    }
    table.push([`stages ${row.load}, ${row.peer}`, `round trip p50 ${row.p50_us} / p99 ${row.p99_us} µs (${row.messages} messages)`]);
    for (const [hop, h] of Object.entries(row.stages?.hops ?? {})) {
      table.push([`  ${hop}`, `p50 ${h.p50_us} / p90 ${h.p90_us} / p99 ${h.p99_us} / max ${h.max_us} µs (${h.count})`]);
    }
  }
  // A broken row shows as FAILED while the others still report; the run still fails.
  if (failed) process.exitCode = 1;
  return { json: { rows }, table, chart: [] };
}
