// `npm run bench` (also `kcpwatch bench`): every figure next to a peer measured in the same run,
// because only ratios within one run mean anything. Prints a table; `--json FILE` writes the
// figures, `--chart FILE` an SVG of them. `--quick` shortens every run (under 3 minutes);
// `--only a,b` runs some scenarios.
//
//   events   what one security record costs (I/O thread, log thread, JavaScript listener)
//   echo     1. throughput, 64 B and 1 KiB over 1, 100, 1,000 connections: kcpwatch, kcp-go,
//               node-kcp (where it builds), plain dgram
//   latency  2. round trips at 30 msg/s over 1,000 connections, on loopback and through the
//               relay with 10% loss and 40 ms delay, against kcp-go
//   logging  3. the same echo with full security logging on vs off
//   scale    4. 10,000 idle connections (memory each) and 10,000 at 10 msg/s (CPU each,
//               event-loop delay)
//   flood    5. legitimate p99 during a bounded spoofed handshake flood vs without
//   cores    6. one server shard vs two on one port
//   sinks    event-loop delay with a syslog receiver that never reads
//   secure      echo 100 x 64 B: kcpwatch secure (v2) vs raw, and vs kcp-go with AES, same Go load
//   handshake   protocol-v2 handshakes per second per core (server, sans-IO), cookie halves apart
//   scale-idle  the idle half of `scale` alone: memory per connection, secure vs raw vs kcp-go
//   fec         p50/p99 through the relay at 10% loss, 40 ms each way: FEC 10/3 vs none, both stacks
//   floor       the loopback's own round trip (issue #19): ping-pong p50/p99/max of a plain Rust
//               recvmmsg/sendmmsg echo, Node dgram, kcpwatch and kcp-go; echo peak in datagrams/s,
//               kcpwatch's as a fraction of the plain Rust echo's
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { renderChart } from './lib/chart.mjs';
import { preparePeers } from './lib/peers.mjs';
import { broadcast } from './scenarios/broadcast.mjs';
import { cores } from './scenarios/cores.mjs';
import { echo } from './scenarios/echo.mjs';
import { events } from './scenarios/events.mjs';
import { flood } from './scenarios/flood.mjs';
import { latency } from './scenarios/latency.mjs';
import { logging } from './scenarios/logging.mjs';
import { scale, scaleIdle } from './scenarios/scale.mjs';
import { secure } from './scenarios/secure.mjs';
import { handshake } from './scenarios/handshake.mjs';
import { fec } from './scenarios/fec.mjs';
import { floor } from './scenarios/floor.mjs';
import { stages } from './scenarios/stages.mjs';
import { sinks } from './scenarios/sinks.mjs';

const scenarios = { events, echo, latency, logging, scale, flood, cores, sinks, broadcast, secure, handshake, 'scale-idle': scaleIdle, fec, floor, stages };
const argv = process.argv.slice(2);
const option = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write('usage: npm run bench -- [--quick] [--only events,echo,latency,logging,scale,flood,cores,sinks,broadcast,secure,handshake,scale-idle,fec,floor,stages] [--json FILE] [--chart FILE]\n');
  process.exit(0);
}
const quick = argv.includes('--quick');
// `scale-idle` is a part of `scale`: run on request only.
const only = option('only')?.split(',') ?? Object.keys(scenarios).filter((name) => name !== 'scale-idle');
for (const name of only) if (!scenarios[name]) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);

const started = Date.now();
const ctx = {
  quick,
  scratch: mkdtempSync(join(tmpdir(), 'kcpwatch-bench-')),
  rounds: quick ? 1 : 3,
  loggingRounds: quick ? 2 : 5,
  durationMs: quick ? 1000 : 3000,
  latencyMs: quick ? 2500 : 8000,
  scaleMs: quick ? 3000 : 8000,
  floodMs: quick ? 3000 : 8000,
  floodRate: 100_000,
  get floodCount() {
    return (this.floodRate * this.floodMs) / 1000;
  },
  dialRate: 5000,
  progress: (line) => process.stderr.write(`  [${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`),
};
const results = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform} ${process.arch}` },
  command: `npm run bench -- ${argv.join(' ')}`.trim(),
  date: new Date().toISOString(),
  quick,
};
ctx.peers = preparePeers();
results.peers = ctx.peers;
const table = [];
const chart = [];
const failed = [];
try {
  for (const name of only) {
    const t0 = Date.now();
    ctx.progress(`${name}...`);
    let out;
    try {
      out = await scenarios[name](ctx);
    } catch (err) {
      // One broken scenario must not hide the others' figures; the run still fails at the end.
      failed.push(name);
      ctx.progress(`${name} FAILED: ${err.stack ?? err}`);
      out = { json: { error: String(err.message ?? err) }, table: [[`${name}`, `FAILED: ${String(err.message ?? err).split('\n')[0].slice(0, 200)}`]], chart: [] };
    }
    results[name] = { ...out.json, seconds: Math.round((Date.now() - t0) / 1000) };
    table.push(...out.table);
    chart.push(...out.chart);
  }
} finally {
  rmSync(ctx.scratch, { recursive: true, force: true });
}
results.seconds = Math.round((Date.now() - started) / 1000);
const width = Math.max(...table.map((r) => r[0].length));
for (const [k, v] of table) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
process.stdout.write(`(${results.seconds} s)\n`);
const jsonFile = option('json');
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
const chartFile = option('chart');
if (chartFile) {
  const panels = [];
  for (const bar of chart) {
    let panel = panels.find((p) => p.title === bar.panel);
    if (!panel) panels.push((panel = { title: bar.panel, unit: bar.unit, bars: [] }));
    panel.bars.push(bar);
  }
  writeFileSync(chartFile, renderChart(panels, { title: `kcpwatch: npm run bench${quick ? ' -- --quick' : ''} (${results.machine.cpus} cores, ${results.date.slice(0, 10)})` }));
}
if (failed.length > 0) {
  process.stderr.write(`scenarios failed: ${failed.join(', ')}\n`);
  process.exitCode = 1;
}
