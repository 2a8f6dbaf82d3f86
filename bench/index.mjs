// `npm run bench`: measurements that need a peer in the same run to mean anything. Prints a
// table and, with `--json FILE`, writes the figures. `--quick` shortens every run.
//
// Scenarios so far (issues #3 and #5; the full set is issue #7):
//   events   what one security record costs: on the I/O thread (producer), on the log thread
//            (canonical JSON), and in JavaScript for an 'event' listener (parse + emit);
//   logging  echo throughput of one kcpwatch server with full security logging on (NDJSON to a
//            file through the log thread) and off, same load (kcp-go clients), alternated,
//            with a kcp-go server under the same load as the reference peer;
//   sinks    the game's event-loop delay with a syslog output whose receiver never reads,
//            against logging off, same load.
import { execFileSync, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));
const quick = process.argv.includes('--quick');
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
const scratch = mkdtempSync(join(tmpdir(), 'kcpwatch-bench-'));
const results = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, quick };

function kcpgo() {
  execFileSync('bash', [join(root, 'interop/kcp-go/build.sh')], { stdio: 'inherit' });
  return join(root, 'interop/kcp-go/bin/kcpgo');
}

/** Starts a server process that prints its port on its first stdout line; stdin EOF stops it. */
function startServer(command, args, portFrom = 'stdout') {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${text}`)), 20_000);
    const onData = (d) => {
      text += d;
      const m = portFrom === 'stdout' ? /^(\d+)\n/.exec(text) : /listening [\d.]+:(\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve({
          port: Number(m[1]),
          // Resolves with everything the server printed (its last line may be a report).
          stop: () => new Promise((done) => (child.once('close', () => done(text)), child.stdin.end())),
        });
      }
    };
    (portFrom === 'stdout' ? child.stdout : child.stderr).on('data', onData);
    child.on('error', reject);
  });
}

function load(bin, port, { conns, size, durationMs, window }) {
  const out = execFileSync(
    bin,
    ['bench-client', '--addr', `127.0.0.1:${port}`, '--conns', String(conns), '--size', String(size),
      '--duration-ms', String(durationMs), '--window', String(window), '--drain-ms', '3000'],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  return JSON.parse(out.trim().split('\n').at(-1));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// --- events: cost per record ------------------------------------------------------------
{
  const lines = join(scratch, 'lines.ndjson');
  const out = execFileSync('cargo', ['run', '--release', '-q', '-p', 'kcpwatch', '--example', 'event_cost', '--', '--lines', lines], {
    cwd: root,
    encoding: 'utf8',
  });
  const rust = JSON.parse(out.trim().split('\n').at(-1));
  // JavaScript side: what an 'event' listener costs per record (split, JSON.parse, emit).
  const { parseEvents } = require('../dist/log.js');
  const sample = readFileSync(lines);
  const copies = Math.ceil(10_000 / sample.toString().trim().split('\n').length);
  const batch = Buffer.concat(Array.from({ length: copies }, () => sample));
  const emitter = new EventEmitter();
  let seen = 0;
  emitter.on('event', () => (seen += 1));
  let best = Infinity;
  for (let round = 0; round < (quick ? 20 : 100); round++) {
    const start = process.hrtime.bigint();
    const events = parseEvents(batch);
    for (const e of events) emitter.emit('event', e);
    const ns = Number(process.hrtime.bigint() - start) / events.length;
    best = Math.min(best, ns);
  }
  results.events = { ...rust, js_ns_per_event: Math.round(best), js_events_checked: seen };
}

// --- logging: echo throughput with logging on and off --------------------------------------
{
  const bin = kcpgo();
  const shape = { conns: 100, size: 64, durationMs: quick ? 1500 : 4000, window: 4 };
  const rounds = quick ? 2 : 3;
  const runs = { off: [], on: [], kcpgo: [] };
  const logFile = join(scratch, 'events.ndjson');
  for (let round = 0; round < rounds; round++) {
    for (const mode of ['off', 'on', 'kcpgo']) {
      const server =
        mode === 'kcpgo'
          ? await startServer(bin, ['server', '--host', '127.0.0.1', '--port', '0', '--exit-on-stdin-eof'], 'stderr')
          : await startServer(process.execPath, [join(root, 'bench/echo-server.mjs'), '--log', mode === 'on' ? `file:${logFile}` : 'off']);
      const r = load(bin, server.port, shape);
      await server.stop();
      runs[mode].push(r.msgs_per_sec);
    }
  }
  const off = median(runs.off);
  const on = median(runs.on);
  results.logging = {
    shape,
    rounds,
    msgs_per_sec: { logging_off: Math.round(off), logging_on: Math.round(on), kcpgo_server: Math.round(median(runs.kcpgo)) },
    runs,
    logging_cost_percent: Number((((off - on) / off) * 100).toFixed(1)),
    log_bytes_written: statSync(logFile).size,
  };
}

// --- sinks: event-loop delay with a stalled network sink vs no logging ---------------------
{
  const bin = kcpgo();
  const { createServer } = await import('node:net');
  // Accepts and never reads: the kernel buffers fill, then the sink queues, spills, drops.
  const stalled = createServer((socket) => socket.pause());
  await new Promise((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  const shape = { conns: 100, size: 64, durationMs: quick ? 1500 : 4000, window: 4 };
  const runs = { off: [], stalled: [] };
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    for (const mode of ['off', 'stalled']) {
      const server = await startServer(process.execPath, [
        join(root, 'bench/echo-server.mjs'),
        '--log',
        mode === 'off' ? 'off' : `stalled-syslog:${stalled.address().port}`,
      ]);
      const r = load(bin, server.port, shape);
      const out = await server.stop();
      const eld = JSON.parse(out.trim().split('\n').at(-1));
      runs[mode].push({ msgs_per_sec: r.msgs_per_sec, ...eld });
    }
  }
  stalled.close();
  const pick = (mode, key) => median(runs[mode].map((x) => x[key]));
  results.sinks = {
    shape,
    runs,
    eld_p99_ms: { logging_off: pick('off', 'eld_p99_ms'), stalled_syslog_sink: pick('stalled', 'eld_p99_ms') },
    eld_max_ms: { logging_off: pick('off', 'eld_max_ms'), stalled_syslog_sink: pick('stalled', 'eld_max_ms') },
    msgs_per_sec: { logging_off: Math.round(pick('off', 'msgs_per_sec')), stalled_syslog_sink: Math.round(pick('stalled', 'msgs_per_sec')) },
  };
}

rmSync(scratch, { recursive: true, force: true });
const e = results.events;
const l = results.logging;
const rows = [
  ['security record, I/O thread (produce + ring push)', `${e.producer_ns_per_event} ns`],
  ['security record, log thread (canonical JSON)', `${e.format_ns_per_event} ns (${e.bytes_per_event} B); close summary ${e.format_ns_per_close} ns (${e.bytes_per_close} B)`],
  ["security record, JavaScript 'event' listener", `${e.js_ns_per_event} ns`],
  [
    'security record, other formats (parse + write)',
    Object.entries(e.format_ns_per_event_by_format)
      .map(([name, ns]) => `${name} ${ns}`)
      .join(', ') + ' ns',
  ],
  ['echo 100 conns x 64 B, logging off', `${l.msgs_per_sec.logging_off} msg/s`],
  ['echo 100 conns x 64 B, full logging on', `${l.msgs_per_sec.logging_on} msg/s (cost ${l.logging_cost_percent}%)`],
  ['echo 100 conns x 64 B, kcp-go server (peer)', `${l.msgs_per_sec.kcpgo_server} msg/s`],
];
const k = results.sinks;
rows.push(
  ['event-loop delay p99 / max, logging off', `${k.eld_p99_ms.logging_off.toFixed(2)} / ${k.eld_max_ms.logging_off.toFixed(2)} ms (${k.msgs_per_sec.logging_off} msg/s)`],
  [
    'event-loop delay p99 / max, stalled syslog sink',
    `${k.eld_p99_ms.stalled_syslog_sink.toFixed(2)} / ${k.eld_max_ms.stalled_syslog_sink.toFixed(2)} ms (${k.msgs_per_sec.stalled_syslog_sink} msg/s)`,
  ],
);
const width = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
