// server.stats() and server.metrics() come from one declaration (kcpwatch::stats: STATS,
// METRICS) through the addon and src/generated/stats.ts; docs/metrics.md's tables are generated
// from the same. Here the live objects are held against the documented tables.
import test from 'ava';
import { readFileSync } from 'node:fs';

import { kcpwatch } from './helpers/util.mjs';

const docs = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');

function section(name) {
  const begin = docs.indexOf(`<!-- BEGIN generated: ${name} -->`);
  const end = docs.indexOf(`<!-- END generated: ${name} -->`);
  if (begin < 0 || end < begin) throw new Error(`docs/metrics.md has no ${name} section`);
  return [...docs.slice(begin, end).matchAll(/^\| `(\w+)` \| (\w+) \|/gm)].map((m) => [m[1], m[2]]);
}

test('server.stats() has exactly the documented fields, in order, with their types', async (t) => {
  const server = kcpwatch.createServer({ log: false });
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  const stats = server.stats();
  t.deepEqual(Object.entries(stats).map(([name, value]) => [name, typeof value]), section('stats fields'));
  t.is(stats.currEstab, stats.connections);
  t.is(stats.fecEnabled, false);
});

test('server.metrics() exports the documented families, the FEC ones only with FEC on', async (t) => {
  const documented = section('prometheus metrics').map(([name, type]) => `${name} ${type}`);
  const fec = section('fec metrics').map(([name, type]) => `${name} ${type}`);
  const families = async (options) => {
    const server = kcpwatch.createServer({ mode: 'raw', log: false, ...options });
    t.teardown(() => server.close());
    await server.listen(0, '127.0.0.1');
    return [...server.metrics().matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
  };
  t.deepEqual(await families({}), documented);
  t.deepEqual((await families({ fec: { dataShards: 10, parityShards: 3 } })).sort(), [...documented, ...fec].sort());
});
