// Scenario 6, cores: echo throughput with one server process and with two sharing the port
// (SO_REUSEPORT; the kernel spreads client addresses over them), same Go load of 1,000
// connections so the hash has addresses to spread.
import { drivers, servers } from '../lib/peers.mjs';
import { median } from '../lib/process.mjs';

export async function cores(ctx) {
  const rows = [];
  for (const shards of [1, 2]) {
    const runs = [];
    for (let round = 0; round < ctx.rounds; round++) {
      const first = await servers.kcpwatch({ mode: 'raw', reusePort: true });
      const others = [];
      try {
        for (let i = 1; i < shards; i++) others.push(await servers.kcpwatch({ mode: 'raw', reusePort: true, port: first.port }));
        const r = await drivers.go({ port: first.port, conns: 1000, size: 64, window: 2, durationMs: ctx.durationMs });
        runs.push(r.msgs_per_sec);
      } finally {
        await Promise.all([first.stop(), ...others.map((s) => s.stop())]);
      }
    }
    rows.push({ shards, msgs_per_sec: Math.round(median(runs)), rounds: runs.map(Math.round) });
    ctx.progress(`cores ${shards} shard(s): ${Math.round(median(runs))} msg/s`);
  }
  return {
    json: { rows, speedup: Number((rows[1].msgs_per_sec / rows[0].msgs_per_sec).toFixed(2)) },
    table: rows.map((r) => [`cores: echo 1000 x 64 B, ${r.shards} server shard(s) (Go load)`, `${r.msgs_per_sec} msg/s`]),
    chart: rows.map((r) => ({ panel: 'Shards (SO_REUSEPORT), 1,000 conns x 64 B', unit: 'msg/s', group: `${r.shards} shard${r.shards > 1 ? 's' : ''}`, peer: 'kcpwatch (Go load)', value: r.msgs_per_sec })),
  };
}
