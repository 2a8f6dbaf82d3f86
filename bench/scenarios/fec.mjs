// FEC latency (issue #20): message round trips through the user-space relay (src/relay.ts, in its
// own process) with 10% loss and 40 ms delay in each direction, at a game's rate (30 messages a
// second per connection, 64 B, paced), with kcp-go's Reed-Solomon FEC 10/3 (docs/fec.md) and
// without, for kcpwatch (raw mode, `fec: { dataShards: 10, parityShards: 3 }`, its own Node
// client) and for kcp-go (`ListenWithOptions` / `NewConn4` with 10, 3, its own Go client) in the
// same run, and for kcpwatch in secure mode (FEC_PARITY inside the authenticated envelope,
// docs/fec.md "Secure mode"). The runs alternate (off, on for each) so that the machine's load
// changes land on all of them.
//
// FEC sends its parity after every 10 data datagrams of a session and direction: at 30 messages
// a second that is a group every few hundred ms, so whether parity arrives before KCP's own
// retransmission (about one RTO after a loss) is exactly what is measured here.
import { join } from 'node:path';
import { drivers, root, servers } from '../lib/peers.mjs';
import { startServer } from '../lib/process.mjs';

const FEC = { dataShards: 10, parityShards: 3 };
const runsFor = [
  { name: 'kcpwatch', server: 'kcpwatch', driver: 'node', mode: 'raw', fec: undefined },
  { name: 'kcpwatch FEC 10/3', server: 'kcpwatch', driver: 'node', mode: 'raw', fec: FEC },
  { name: 'kcp-go', server: 'kcp-go', driver: 'go', fec: undefined },
  { name: 'kcp-go FEC 10/3', server: 'kcp-go', driver: 'go', fec: FEC },
  { name: 'kcpwatch secure', server: 'kcpwatch', driver: 'node', mode: 'secure', fec: undefined },
  { name: 'kcpwatch secure FEC 10/3', server: 'kcpwatch', driver: 'node', mode: 'secure', fec: FEC },
];

export async function fec(ctx) {
  const conns = 20;
  const rate = 30;
  const loss = 0.1;
  const delayMs = 40;
  const durationMs = ctx.quick ? 3000 : 10_000;
  const rows = [];
  for (const run of runsFor) {
    const server = await servers[run.server]({ mode: run.mode, fec: run.fec });
    // The same relay seed for every run: the same loss pattern per datagram index.
    const relay = await startServer(process.execPath, [join(root, 'bench/relay-process.mjs'), '--target-port', String(server.port), '--loss', String(loss), '--delay-ms', String(delayMs), '--seed', '7']);
    let relayStats = {};
    let serverOut = '';
    try {
      // A window of 64 keeps the pacing open-loop through retransmission stalls. One client
      // endpoint (one socket) per connection, as players have and as the kcp-go driver does:
      // kcpwatch routes a parity shard to a session by the sender's address alone, so several
      // FEC sessions between the same two sockets mix their groups (a duplicated message was
      // seen with 20 connections on one endpoint; docs/performance.md).
      const r = await drivers[run.driver]({ port: relay.port, conns, clients: conns, size: 64, rate, window: 64, durationMs, drainMs: 5000, mode: run.mode, fec: run.fec }, { timeoutMs: 45_000 });
      if (!r.ok) throw new Error(`${run.name}: ${r.error}`);
      rows.push({ peer: run.name, fec: run.fec ? `${run.fec.dataShards}/${run.fec.parityShards}` : 'off', conns, rate, messages: r.messages, msgs_per_sec: Math.round(r.msgs_per_sec), p50_us: r.p50_us, p99_us: r.p99_us, max_us: r.max_us });
    } finally {
      relayStats = JSON.parse((await relay.stop()).trim().split('\n').at(-1) || '{}');
      serverOut = await server.stop();
    }
    const row = rows.at(-1);
    row.relay = relayStats;
    // The servers' closing lines carry their FEC counters (kcpwatch: `fec`, kcp-go: `snmp`).
    const last = serverOut.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    row.server_fec = last.find((o) => o.fec)?.fec ?? last.find((o) => o.event === 'stopped')?.snmp;
    ctx.progress(`fec ${run.name}: p50 ${(row.p50_us / 1000).toFixed(1)} / p99 ${(row.p99_us / 1000).toFixed(1)} ms`);
  }
  const ms = (us) => (us / 1000).toFixed(1);
  const at = (name) => rows.find((r) => r.peer === name);
  const ratio = (a, b) => Number((at(a).p99_us / at(b).p99_us).toFixed(2));
  const ratios = {
    kcpwatch_p99_fec_vs_off: ratio('kcpwatch FEC 10/3', 'kcpwatch'),
    kcpgo_p99_fec_vs_off: ratio('kcp-go FEC 10/3', 'kcp-go'),
    kcpwatch_fec_vs_kcpgo_fec_p99: ratio('kcpwatch FEC 10/3', 'kcp-go FEC 10/3'),
    kcpwatch_secure_p99_fec_vs_off: ratio('kcpwatch secure FEC 10/3', 'kcpwatch secure'),
  };
  const counters = (r) => {
    const f = r.server_fec;
    if (!f) return '';
    return f.fecRecovered !== undefined ? `; server rebuilt ${f.fecRecovered}, short ${f.fecShortShards}` : `; server rebuilt ${f.FECRecovered}`;
  };
  return {
    json: { conns, rate, loss, delay_ms_each_way: delayMs, duration_ms: durationMs, rows, ratios },
    table: [
      ...rows.map((r) => [
        `fec ${r.conns} conns x ${r.rate} msg/s, ${loss * 100}% loss, ${delayMs} ms each way, ${r.peer}`,
        `p50 ${ms(r.p50_us)} / p99 ${ms(r.p99_us)} / max ${ms(r.max_us)} ms (${r.messages} msgs${counters(r)})`,
      ]),
      ['fec: p99 with FEC 10/3 / without, kcpwatch', `${ratios.kcpwatch_p99_fec_vs_off.toFixed(2)}x`],
      ['fec: p99 with FEC 10/3 / without, kcp-go', `${ratios.kcpgo_p99_fec_vs_off.toFixed(2)}x`],
      ['fec: p99 with FEC 10/3, kcpwatch / kcp-go', `${ratios.kcpwatch_fec_vs_kcpgo_fec_p99.toFixed(2)}x`],
      ['fec: p99 with FEC 10/3 / without, kcpwatch secure mode', `${ratios.kcpwatch_secure_p99_fec_vs_off.toFixed(2)}x`],
    ],
    chart: rows.map((r) => ({ panel: 'Round-trip p99, 10% loss, 40 ms each way, 30 msg/s', unit: 'ms', group: r.fec === 'off' ? 'no FEC' : 'FEC 10/3', peer: r.peer.replace(/ FEC 10\/3$/, ''), value: r.p99_us / 1000 })),
  };
}
