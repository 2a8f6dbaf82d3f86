// The game's event-loop delay with a syslog output whose receiver accepts and never reads
// (kernel buffers fill, then the sink's queue, then it drops and counts), against logging off,
// same echo load.
import { createServer } from 'node:net';
import { drivers, servers } from '../lib/peers.mjs';
import { median } from '../lib/process.mjs';

export async function sinks(ctx) {
  const stalled = createServer((socket) => socket.pause());
  await new Promise((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  const shape = { conns: 100, size: 64, durationMs: ctx.durationMs, window: 4 };
  const runs = { off: [], stalled: [] };
  try {
    for (let round = 0; round < ctx.rounds; round++) {
      for (const mode of ['off', 'stalled']) {
        const server = await servers.kcpwatch({ mode: 'raw', log: mode === 'off' ? 'off' : `stalled-syslog:${stalled.address().port}` });
        let r;
        try {
          r = await drivers.go({ ...shape, port: server.port });
        } finally {
          const report = JSON.parse((await server.stop()).trim().split('\n').at(-1));
          if (r) runs[mode].push({ msgs_per_sec: r.msgs_per_sec, ...report });
        }
      }
    }
  } finally {
    stalled.close();
  }
  const pick = (mode, key) => median(runs[mode].map((x) => x[key]));
  const row = (mode) => `${pick(mode, 'eld_p99_ms').toFixed(2)} / ${pick(mode, 'eld_max_ms').toFixed(2)} ms (${Math.round(pick(mode, 'msgs_per_sec'))} msg/s)`;
  return {
    json: { shape, runs },
    table: [
      ['event-loop delay p99 / max, logging off', row('off')],
      ['event-loop delay p99 / max, stalled syslog sink', row('stalled')],
    ],
    chart: [],
  };
}
