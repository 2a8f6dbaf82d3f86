// Scenario 3, logging overhead: the same echo (100 connections x 64 B, Go load) against one
// kcpwatch server with full security logging on (every severity, stats every second, canonical
// NDJSON appended to a file by the log thread) and off, alternated round by round.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { drivers, servers } from '../lib/peers.mjs';
import { median } from '../lib/process.mjs';

export async function logging(ctx) {
  const shape = { conns: 100, size: 64, durationMs: ctx.durationMs, window: 4 };
  const runs = { off: [], on: [] };
  const logFile = join(ctx.scratch, 'events.ndjson');
  for (let round = 0; round < ctx.loggingRounds; round++) {
    for (const mode of ['off', 'on']) {
      const server = await servers.kcpwatch({ mode: 'raw', log: mode === 'on' ? `file:${logFile}` : 'off' });
      try {
        runs[mode].push((await drivers.go({ ...shape, port: server.port })).msgs_per_sec);
      } finally {
        await server.stop();
      }
    }
  }
  const off = median(runs.off);
  const on = median(runs.on);
  const cost = Number((((off - on) / off) * 100).toFixed(1));
  ctx.progress(`logging: off ${Math.round(off)}, on ${Math.round(on)} msg/s`);
  return {
    json: { shape, runs, msgs_per_sec: { logging_off: Math.round(off), logging_on: Math.round(on) }, logging_cost_percent: cost, log_bytes_written: statSync(logFile).size },
    table: [
      ['logging: echo 100 x 64 B, logging off (Go load)', `${Math.round(off)} msg/s`],
      ['logging: echo 100 x 64 B, full logging on', `${Math.round(on)} msg/s (cost ${cost}%)`],
    ],
    chart: [
      { panel: 'Logging overhead, 100 conns x 64 B', unit: 'msg/s', group: 'logging off', peer: 'kcpwatch (Go load)', value: Math.round(off) },
      { panel: 'Logging overhead, 100 conns x 64 B', unit: 'msg/s', group: 'logging on', peer: 'kcpwatch (Go load)', value: Math.round(on) },
    ],
  };
}
