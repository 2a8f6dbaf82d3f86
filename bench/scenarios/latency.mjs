// Scenario 2, latency: message round trips at 30 messages/s per connection over 1,000
// connections on plain loopback, then through the user-space relay with 10% loss and 40 ms delay
// in each direction (what `netem loss 10% delay 40ms` on loopback would do), with kcp-go driven
// through the same relay. The relay is JavaScript (src/relay.ts): at 1,000 connections (about
// 120,000 datagrams a second through its timers) it saturates and its own queueing swamps what
// is measured (p50 290 ms on an 80 ms path), so the lossy link carries 100 connections.
import { join } from 'node:path';
import { drivers, root, servers } from '../lib/peers.mjs';
import { startServer } from '../lib/process.mjs';

const peers = [
  { name: 'kcpwatch', server: 'kcpwatch', driver: 'node', mode: 'raw' },
  { name: 'kcp-go', server: 'kcp-go', driver: 'go' },
];

export async function latency(ctx) {
  const rows = [];
  const rate = 30;
  for (const link of [
    { name: 'loopback', loss: 0, delayMs: 0, conns: 1000 },
    { name: '10% loss, 40 ms each way', loss: 0.1, delayMs: 40, conns: 100 },
  ]) {
    const conns = link.conns;
    for (const peer of peers) {
      const server = await servers[peer.server]({ mode: peer.mode });
      const relay = link.loss || link.delayMs
        ? await startServer(process.execPath, [join(root, 'bench/relay-process.mjs'), '--target-port', String(server.port), '--loss', String(link.loss), '--delay-ms', String(link.delayMs)])
        : undefined;
      try {
        // A window of 64 keeps the pacing open-loop through retransmission stalls at 30 msg/s.
        const r = await drivers[peer.driver]({ port: (relay ?? server).port, conns, size: 64, rate, window: 64, durationMs: ctx.latencyMs, drainMs: 10_000, mode: peer.mode });
        rows.push({ link: link.name, peer: peer.name, conns, rate, msgs_per_sec: Math.round(r.msgs_per_sec), messages: r.messages, p50_us: r.p50_us, p99_us: r.p99_us, max_us: r.max_us });
        ctx.progress(`latency ${link.name} ${peer.name}: p99 ${(r.p99_us / 1000).toFixed(1)} ms`);
      } finally {
        if (relay) await relay.stop();
        await server.stop();
      }
    }
  }
  const ms = (us) => (us / 1000).toFixed(1);
  return {
    json: { rows },
    table: rows.map((r) => [`latency ${r.conns} conns x ${r.rate} msg/s, ${r.link}, ${r.peer}`, `p50 ${ms(r.p50_us)} / p99 ${ms(r.p99_us)} / max ${ms(r.max_us)} ms (${r.msgs_per_sec} msg/s)`]),
    chart: rows.map((r) => ({ panel: 'Round-trip p99 at 30 msg/s per connection', unit: 'ms', group: `${r.conns} conns, ${r.link}`, peer: r.peer, value: r.p99_us / 1000 })),
  };
}
