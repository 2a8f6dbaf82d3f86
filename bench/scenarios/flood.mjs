// Scenario 5, flood: legitimate secure-mode clients' round-trip p99 while a bounded
// spoofed-looking handshake flood (well-formed HELLOs, random KCP convs and garbage from many
// source ports) hits the server, against the same clients without the flood. The server keeps
// its Internet-facing handshake limits on.
import { drivers, servers } from '../lib/peers.mjs';

export async function flood(ctx) {
  // The players come from ten loopback addresses, the flood from fifty others, so the server's
  // per-address handshake limits (20/s) apply as on the Internet. The flood is paced at a rate
  // the flooder can hold with a quarter of a core: an unpaced flooder would take a whole core of
  // this two-core machine from the server and the players, which measures the machine.
  const legit = { conns: 100, size: 64, rate: 30, window: 16, sourceIps: 10 };
  const rows = [];
  for (const withFlood of [false, true]) {
    const server = await servers.kcpwatch({ mode: 'secure', floodLimits: true });
    try {
      let attack;
      let loadStarted;
      const started = new Promise((resolve) => (loadStarted = resolve));
      const clients = drivers.go(
        { port: server.port, ...legit, durationMs: ctx.floodMs, drainMs: 10_000, mode: 'secure', dialRate: 1000 },
        { onStderr: (line) => line.startsWith('LOAD') && loadStarted() },
      );
      if (withFlood) {
        await Promise.race([started, clients]);
        attack = drivers.flood({ port: server.port, count: ctx.floodCount, rate: ctx.floodRate, sources: 512, sourceIps: 50, kind: 'mix', maxMs: ctx.floodMs });
      }
      const [r, f] = await Promise.all([clients, attack]);
      rows.push({ flood: withFlood, msgs_per_sec: Math.round(r.msgs_per_sec), messages: r.messages, p50_us: r.p50_us, p99_us: r.p99_us, max_us: r.max_us, flood_stats: f });
      ctx.progress(`flood ${withFlood ? 'on' : 'off'}: p99 ${(r.p99_us / 1000).toFixed(1)} ms`);
    } finally {
      await server.stop();
    }
  }
  const [base, under] = rows;
  const ratio = under.p99_us / base.p99_us;
  const f = under.flood_stats;
  const ms = (us) => (us / 1000).toFixed(1);
  return {
    json: { legit, rows, p99_ratio: Number(ratio.toFixed(2)) },
    table: [
      [`flood: ${legit.conns} secure clients x ${legit.rate} msg/s, no flood`, `p50 ${ms(base.p50_us)} / p99 ${ms(base.p99_us)} / max ${ms(base.max_us)} ms`],
      [
        `flood: same clients under ${f.sent_datagrams} flood datagrams`,
        `p50 ${ms(under.p50_us)} / p99 ${ms(under.p99_us)} / max ${ms(under.max_us)} ms (p99 ${ratio.toFixed(2)}x); flood ${Math.round(f.datagrams_per_sec)} dgram/s, server answered ${f.received_bytes} of ${f.sent_bytes} B`,
      ],
    ],
    chart: rows.map((r) => ({ panel: 'Legitimate p99 under a handshake flood', unit: 'ms', group: r.flood ? 'flood' : 'no flood', peer: 'kcpwatch', value: r.p99_us / 1000 })),
  };
}
