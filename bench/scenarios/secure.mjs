// Secure echo (issue #18): what encryption costs, in one run. The echo of scenario 1 at
// 100 connections x 64 B (4 in flight each, the `game` preset, closed loop):
//
//   - kcpwatch secure (protocol v2: Noise NK handshake, ChaCha20-Poly1305 and the replay window
//     on every datagram) against kcpwatch raw, each under the Node driver (kcpwatch's own
//     client, the full stack) and under the Go driver (the server alone);
//   - kcpwatch secure against kcp-go with its AES block cipher (`kcp.NewAESBlockCrypt`, CFB
//     with a CRC32: encrypted, not authenticated), both under the same Go driver: `kcpgo
//     bench-client --secure` speaks protocol v2 (interop/kcp-go/secure.go's client) to
//     kcpwatch and `--crypt aes` to kcp-go's AES server. Plain kcp-go is the reference row.
//
// The peers run round-robin within each round (not all rounds of one peer, then the next), so
// a change in the machine's load during the run lands on every peer alike; the median round is
// reported. Targets: secure / raw >= 0.75x, secure / kcp-go AES >= 1.0x (same Go load).
import { drivers, servers } from '../lib/peers.mjs';
import { median } from '../lib/process.mjs';

const peers = [
  { name: 'kcpwatch raw, Node load', server: 'kcpwatch', mode: 'raw', driver: 'node' },
  { name: 'kcpwatch secure, Node load', server: 'kcpwatch', mode: 'secure', driver: 'node' },
  { name: 'kcpwatch raw, Go load', server: 'kcpwatch', mode: 'raw', driver: 'go' },
  { name: 'kcpwatch secure, Go load', server: 'kcpwatch', mode: 'secure', driver: 'go' },
  { name: 'kcp-go, Go load', server: 'kcp-go', driver: 'go' },
  { name: 'kcp-go AES, Go load', server: 'kcp-go', crypt: 'aes', driver: 'go' },
];

export async function secure(ctx) {
  const conns = 100;
  const size = 64;
  const window = 4;
  const durationMs = ctx.quick ? 1000 : 2000;
  const runs = new Map(peers.map((p) => [p.name, []]));
  for (let round = 0; round < ctx.rounds; round++) {
    for (const peer of peers) {
      const server = await servers[peer.server]({ mode: peer.mode, crypt: peer.crypt });
      try {
        const r = await drivers[peer.driver]({ port: server.port, conns, size, window, durationMs, drainMs: 3000, mode: peer.mode, crypt: peer.crypt }, { timeoutMs: 30_000 });
        if (!r.ok) throw new Error(`${peer.name}: ${r.error}`);
        runs.get(peer.name).push(r);
      } finally {
        await server.stop();
      }
    }
  }
  const rows = peers.map((peer) => {
    const rs = runs.get(peer.name);
    const best = rs.find((r) => r.msgs_per_sec === median(rs.map((x) => x.msgs_per_sec)));
    ctx.progress(`secure ${peer.name}: ${Math.round(best.msgs_per_sec)} msg/s`);
    return { peer: peer.name, conns, size, window, msgs_per_sec: Math.round(best.msgs_per_sec), p50_us: best.p50_us, p99_us: best.p99_us, rounds: rs.map((r) => Math.round(r.msgs_per_sec)) };
  });
  const at = (name) => rows.find((r) => r.peer === name).msgs_per_sec;
  // Per round as well as of the medians: on a shared machine the spread of the per-round
  // ratios says how far the median ratio can be trusted.
  const perRound = (a, b) => runs.get(a).map((r, i) => Number((r.msgs_per_sec / runs.get(b)[i].msgs_per_sec).toFixed(2)));
  const ratios = {
    secure_vs_raw_node_load: Number((at('kcpwatch secure, Node load') / at('kcpwatch raw, Node load')).toFixed(2)),
    secure_vs_raw_go_load: Number((at('kcpwatch secure, Go load') / at('kcpwatch raw, Go load')).toFixed(2)),
    secure_vs_kcpgo_aes_go_load: Number((at('kcpwatch secure, Go load') / at('kcp-go AES, Go load')).toFixed(2)),
    kcpgo_aes_vs_kcpgo: Number((at('kcp-go AES, Go load') / at('kcp-go, Go load')).toFixed(2)),
  };
  const rounds = {
    secure_vs_raw_node_load: perRound('kcpwatch secure, Node load', 'kcpwatch raw, Node load'),
    secure_vs_raw_go_load: perRound('kcpwatch secure, Go load', 'kcpwatch raw, Go load'),
    secure_vs_kcpgo_aes_go_load: perRound('kcpwatch secure, Go load', 'kcp-go AES, Go load'),
  };
  const ms = (us) => (us / 1000).toFixed(1);
  return {
    json: { rows, ratios, ratio_rounds: rounds },
    table: [
      ...rows.map((r) => [`secure echo ${r.conns} x ${r.size} B, ${r.peer}`, `${r.msgs_per_sec} msg/s, p50 ${ms(r.p50_us)} / p99 ${ms(r.p99_us)} ms (rounds ${r.rounds.join(', ')})`]),
      ['secure echo: kcpwatch secure / raw (Node load; target >= 0.75x)', `${ratios.secure_vs_raw_node_load.toFixed(2)}x (per round ${rounds.secure_vs_raw_node_load.join(', ')})`],
      ['secure echo: kcpwatch secure / raw (Go load)', `${ratios.secure_vs_raw_go_load.toFixed(2)}x (per round ${rounds.secure_vs_raw_go_load.join(', ')})`],
      ['secure echo: kcpwatch secure / kcp-go AES (Go load; target >= 1.0x)', `${ratios.secure_vs_kcpgo_aes_go_load.toFixed(2)}x (per round ${rounds.secure_vs_kcpgo_aes_go_load.join(', ')})`],
      ['secure echo: kcp-go AES / kcp-go', `${ratios.kcpgo_aes_vs_kcpgo.toFixed(2)}x`],
    ],
    chart: rows.map((r) => ({ panel: 'Secure echo, 100 conns x 64 B', unit: 'msg/s', group: r.peer.includes('Go load') ? 'Go load' : 'Node load', peer: r.peer.replace(/, (Go|Node) load$/, ''), value: r.msgs_per_sec })),
  };
}
