// Scenario 6, cores: echo throughput with one server process and with two sharing the port
// (SO_REUSEPORT; the kernel spreads client addresses over them), same Go load of 1,000
// connections so the hash has addresses to spread.
//
// Two placements. Free: the servers and the load generator share every CPU, as in production
// on a small machine; on two cores the load generator takes one, so a second shard has no core
// of its own and cannot show a gain. Pinned: the load generator on the last CPU, the servers on
// the others (`taskset`); the figure that does not need a free core is the servers' CPU time
// per message (all shards together, read from /proc over the load), which says what a shard
// costs beyond the work itself.
import { availableParallelism } from 'node:os';
import { drivers, servers } from '../lib/peers.mjs';
import { median, processCost } from '../lib/process.mjs';

export async function cores(ctx) {
  const cpus = availableParallelism();
  const placements = [{ name: 'free' }];
  if (cpus >= 2) placements.push({ name: 'pinned', load: String(cpus - 1), servers: cpus === 2 ? '0' : `0-${cpus - 2}` });
  const rows = [];
  for (const placement of placements) {
    for (const shards of [1, 2]) {
      const runs = [];
      const cpuPerMsg = [];
      for (let round = 0; round < ctx.rounds; round++) {
        const first = await servers.kcpwatch({ mode: 'raw', reusePort: true, cpus: placement.servers });
        const others = [];
        try {
          for (let i = 1; i < shards; i++) others.push(await servers.kcpwatch({ mode: 'raw', reusePort: true, port: first.port, cpus: placement.servers }));
          const all = [first, ...others];
          const before = all.map((s) => processCost(s.pid).cpuMs);
          const r = await drivers.go({ port: first.port, conns: 1000, size: 64, window: 2, durationMs: ctx.durationMs, cpus: placement.load });
          const cpuMs = all.reduce((sum, s, i) => sum + processCost(s.pid).cpuMs - before[i], 0);
          runs.push(r.msgs_per_sec);
          // CPU over the whole driver run (dial, load, drain) per message echoed.
          if (r.messages > 0) cpuPerMsg.push((cpuMs * 1000) / r.messages);
        } finally {
          await Promise.all([first.stop(), ...others.map((s) => s.stop())]);
        }
      }
      const row = { placement: placement.name, server_cpus: placement.servers ?? 'all', load_cpus: placement.load ?? 'all', shards, msgs_per_sec: Math.round(median(runs)), rounds: runs.map(Math.round), cpu_us_per_msg: cpuPerMsg.length ? Number(median(cpuPerMsg).toFixed(2)) : null };
      rows.push(row);
      ctx.progress(`cores ${placement.name} ${shards} shard(s): ${row.msgs_per_sec} msg/s, ${row.cpu_us_per_msg} µs CPU per message`);
    }
  }
  const speedup = (name) => {
    const [one, two] = [1, 2].map((n) => rows.find((r) => r.placement === name && r.shards === n));
    return one && two ? Number((two.msgs_per_sec / one.msgs_per_sec).toFixed(2)) : null;
  };
  return {
    json: { rows, speedup: speedup('free'), speedup_pinned: speedup('pinned') },
    table: rows.map((r) => [`cores: echo 1000 x 64 B, ${r.shards} server shard(s), ${r.placement} (servers on CPU ${r.server_cpus}, load on ${r.load_cpus})`, `${r.msgs_per_sec} msg/s, ${r.cpu_us_per_msg} µs server CPU per message`]),
    chart: rows.filter((r) => r.placement === 'free').map((r) => ({ panel: 'Shards (SO_REUSEPORT), 1,000 conns x 64 B', unit: 'msg/s', group: `${r.shards} shard${r.shards > 1 ? 's' : ''}`, peer: 'kcpwatch (Go load)', value: r.msgs_per_sec })),
  };
}
