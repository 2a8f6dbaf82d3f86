// What one security record costs: on the I/O thread (producer), on the log thread (canonical
// JSON and the other formats), and in JavaScript for an 'event' listener (parse + emit).
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { root } from '../lib/peers.mjs';

const require = createRequire(import.meta.url);

export async function events(ctx) {
  const lines = join(ctx.scratch, 'lines.ndjson');
  const out = execFileSync('cargo', ['run', '--release', '-q', '-p', 'kcpwatch', '--example', 'event_cost', '--', '--lines', lines], { cwd: root, encoding: 'utf8' });
  const rust = JSON.parse(out.trim().split('\n').at(-1));
  const { parseEvents } = require('../../dist/log.js');
  const sample = readFileSync(lines);
  const copies = Math.ceil(10_000 / sample.toString().trim().split('\n').length);
  const batch = Buffer.concat(Array.from({ length: copies }, () => sample));
  const emitter = new EventEmitter();
  let seen = 0;
  emitter.on('event', () => (seen += 1));
  let best = Infinity;
  for (let round = 0; round < (ctx.quick ? 20 : 100); round++) {
    const start = process.hrtime.bigint();
    const parsed = parseEvents(batch);
    for (const e of parsed) emitter.emit('event', e);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / parsed.length);
  }
  const e = { ...rust, js_ns_per_event: Math.round(best), js_events_checked: seen };
  return {
    json: e,
    table: [
      ['security record, I/O thread (produce + ring push)', `${e.producer_ns_per_event} ns`],
      ['security record, log thread (canonical JSON)', `${e.format_ns_per_event} ns (${e.bytes_per_event} B); close summary ${e.format_ns_per_close} ns (${e.bytes_per_close} B)`],
      ["security record, JavaScript 'event' listener", `${e.js_ns_per_event} ns`],
      ['security record, other formats (parse + write)', `${Object.entries(e.format_ns_per_event_by_format).map(([name, ns]) => `${name} ${ns}`).join(', ')} ns`],
    ],
    chart: [],
  };
}
