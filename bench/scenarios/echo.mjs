// Scenario 1, echo throughput: 64 B and 1 KiB messages over 1, 100 and 1,000 connections, the
// `game` preset, each peer's server driven by its own client stack, closed loop.
import { drivers, echoPeers, servers } from '../lib/peers.mjs';
import { median } from '../lib/process.mjs';

// Messages in flight per connection: one connection is a pipe that needs a window to be
// measured at all (KCP's 10 ms interval bounds a one-message ping-pong); many connections need
// little each.
const windowFor = (conns) => (conns === 1 ? 64 : conns >= 1000 ? 2 : 4);

export async function echo(ctx) {
  const shapes = [];
  for (const size of [64, 1024]) for (const conns of [1, 100, 1000]) shapes.push({ size, conns });
  const rows = [];
  for (const { size, conns } of shapes) {
    for (const peer of echoPeers) {
      if (peer.extra && !(size === 64 && conns === 100)) continue;
      if (peer.needs && !ctx.peers[peer.needs].available) {
        rows.push({ peer: peer.name, size, conns, unavailable: ctx.peers[peer.needs].reason });
        continue;
      }
      const runs = [];
      for (let round = 0; round < ctx.rounds; round++) {
        const server = await servers[peer.server]({ mode: peer.mode });
        try {
          const shape = { port: server.port, conns, size, window: windowFor(conns), durationMs: ctx.durationMs, mode: peer.mode };
          runs.push(await drivers[peer.driver](shape));
        } finally {
          await server.stop();
        }
      }
      const best = runs.find((r) => r.msgs_per_sec === median(runs.map((x) => x.msgs_per_sec)));
      rows.push({ peer: peer.name, size, conns, window: windowFor(conns), msgs_per_sec: Math.round(best.msgs_per_sec), p50_us: best.p50_us, p99_us: best.p99_us, lost: best.lost, rounds: runs.map((r) => Math.round(r.msgs_per_sec)) });
      ctx.progress(`echo ${conns} x ${size} B ${peer.name}: ${Math.round(best.msgs_per_sec)} msg/s`);
    }
  }
  const at = (peer, size, conns) => rows.find((r) => r.peer === peer && r.size === size && r.conns === conns)?.msgs_per_sec;
  const ratio = at('kcpwatch', 64, 100) / at('kcp-go', 64, 100);
  const ratioServer = at('kcpwatch (Go load)', 64, 100) / at('kcp-go', 64, 100);
  return {
    json: { rows, ratio_vs_kcpgo_100x64: Number(ratio.toFixed(2)), ratio_server_only_vs_kcpgo_100x64: Number(ratioServer.toFixed(2)) },
    table: [
      ...rows.map((r) => [
        `echo ${String(r.conns).padStart(4)} conns x ${String(r.size).padStart(4)} B, ${r.peer}`,
        r.unavailable ? `unavailable (${r.unavailable})` : `${r.msgs_per_sec} msg/s, p99 ${(r.p99_us / 1000).toFixed(1)} ms${r.lost ? `, ${r.lost} lost` : ''}`,
      ]),
      ['echo 100 x 64 B: kcpwatch / kcp-go (each with its own client)', `${ratio.toFixed(2)}x`],
      ['echo 100 x 64 B: kcpwatch / kcp-go (servers, same Go load)', `${ratioServer.toFixed(2)}x`],
    ],
    chart: rows.filter((r) => !r.unavailable).map((r) => ({ panel: 'Echo throughput', unit: 'msg/s', group: `${r.conns} conns x ${r.size} B`, peer: r.peer, value: r.msgs_per_sec })),
  };
}
