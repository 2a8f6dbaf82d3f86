// IP privacy (docs/privacy.md): every mode as it reaches the outputs. The server listens on
// 127.0.0.2 and its clients talk from 127.0.0.1, so a raw address of either side anywhere in
// a record (fields, msg, error text) is caught.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { kcpwatch, next, require } from './helpers/util.mjs';

const schema = require('../../schema/events.schema.json');
const ajv = new Ajv2020({ strict: false, allErrors: true });
const validate = ajv.compile(schema);

const RAW = /127\.0\.0\.[12]\b|::ffff:/;
const HMAC_KEY = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const PAN_KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8'); // 32 bytes

/** Runs one connection's life plus a runt and an ICMP error, and returns the file's records. */
async function lifeUnder(t, ipPrivacy, extra = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-privacy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'events.ndjson');
  // Every format reads the same transformed record; each is checked for raw addresses too.
  const others = ['ecs', 'ocsf', 'cef', 'rfc5424', 'gelf', 'hec', 'otlp'].map((format) => ({
    format,
    file: join(dir, `events.${format}`),
  }));
  const outputs = [{ destination: { file } }, ...others.map((o) => ({ destination: { file: o.file }, format: o.format }))];
  const seen = [];
  const server = kcpwatch.createServer(
    // Raw mode: a raw client leaves silently, so the server's next message draws the ICMP error
    // whose record must not leak the address either (a secure client would say DISCONNECT).
    { mode: 'raw', idleTimeout: 60_000, deadLink: 3, log: { outputs, statsInterval: 0, ipPrivacy, ...extra } },
    (conn) => conn.on('message', (m) => conn.send(m)),
  );
  server.on('event', (e) => seen.push(e));
  const { port } = await server.listen(0, '127.0.0.2');
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.2', port, mode: 'raw' });
  client.send('hello');
  await next(client, 'message');
  const [conn] = await accepted;
  // The client goes away; the server's next message draws an ICMP port unreachable.
  client.close();
  await next(client, 'close');
  conn.send('anyone?');
  await next(conn, 'close', 15_000);
  await server.close();
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  const formatted = [];
  for (const o of others) formatted.push(...(await readFile(o.file, 'utf8')).split('\n').filter(Boolean));
  t.is(formatted.length, lines.length * others.length, 'every format got every record');
  return { lines, formatted, records: lines.map((l) => JSON.parse(l)), seen };
}

function checkRecords(t, { lines, records, seen }) {
  for (const r of records) t.true(validate(r), `${r.name}: ${ajv.errorsText(validate.errors)}`);
  t.deepEqual(
    seen.map((e) => e.seq),
    records.map((e) => e.seq),
    "the 'event' listener gets the same records as the file",
  );
  const names = records.map((r) => r.name);
  t.true(names.includes('kcp:connection_closed'));
  t.true(names.includes('kcp:error'), 'the ICMP error is in the run');
  return lines;
}

test('hmac: pseudonyms instead of addresses, the same for the same address, and no raw address anywhere', async (t) => {
  const run = await lifeUnder(t, { mode: 'hmac', keyId: 'k7', key: HMAC_KEY });
  for (const line of [...checkRecords(t, run), ...run.formatted]) t.notRegex(line, RAW);
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.is(closed.ip_privacy, 'hmac');
  t.false('src_ip' in closed);
  t.regex(closed.src_ip_pseudonym, /^k7:[A-Za-z0-9_-]{22}$/);
  t.regex(closed.dst_ip_pseudonym, /^k7:[A-Za-z0-9_-]{22}$/);
  t.not(closed.src_ip_pseudonym, closed.dst_ip_pseudonym);
  t.false('community_id' in closed, 'a Community ID of the real addresses would undo the mode');
  const established = run.records.find((r) => r.name === 'kcp:connection_established');
  t.is(established.src_ip_pseudonym, closed.src_ip_pseudonym);
  const started = run.records.find((r) => r.name === 'kcp:listener_started');
  t.is(started.local_ip_pseudonym, closed.dst_ip_pseudonym, 'the listener address is transformed too');
});

test('cryptopan: addresses stay addresses, keep their shared prefix, and are not the real ones', async (t) => {
  const run = await lifeUnder(t, { mode: 'cryptopan', key: PAN_KEY });
  for (const line of [...checkRecords(t, run), ...run.formatted]) t.notRegex(line, RAW);
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.is(closed.ip_privacy, 'cryptopan');
  const toBits = (ip) => ip.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  const [a, b] = [toBits(closed.src_ip), toBits(closed.dst_ip)];
  // 127.0.0.1 and 127.0.0.2 share exactly 30 leading bits; so must their pseudonyms.
  let common = 0;
  while (common < 32 && a[common] === b[common]) common++;
  t.is(common, 30);
  t.false('community_id' in closed);
});

test('cryptopan with communityIdOverTransformed: the Community ID is computed over the transformed flow', async (t) => {
  const run = await lifeUnder(t, { mode: 'cryptopan', key: PAN_KEY }, { communityIdOverTransformed: true });
  checkRecords(t, run);
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.regex(closed.community_id, /^1:/);
});

test('truncate: the network address with the default /24', async (t) => {
  const run = await lifeUnder(t, { mode: 'truncate' });
  for (const line of [...checkRecords(t, run), ...run.formatted]) t.notRegex(line, RAW);
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.is(closed.src_ip, '127.0.0.0');
  t.is(closed.dst_ip, '127.0.0.0');
  t.is(closed.ip_privacy, 'truncate');
  t.regex(closed.msg, /127\.0\.0\.0:\d+ -> 127\.0\.0\.0:\d+/);
});

test('omit: no address fields at all, ports kept', async (t) => {
  const run = await lifeUnder(t, { mode: 'omit' });
  for (const line of checkRecords(t, run)) {
    t.notRegex(line, RAW);
    t.notRegex(line, /_ip(_pseudonym)?"/);
  }
  for (const line of run.formatted) {
    t.notRegex(line, RAW);
    // No address-shaped value at all in any format (ports and ids only).
    t.notRegex(line, /\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/);
  }
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.is(typeof closed.src_port, 'number');
  t.is(closed.ip_privacy, 'omit');
});

test('full (the default): real addresses and the Community ID', async (t) => {
  const run = await lifeUnder(t, undefined);
  checkRecords(t, run);
  const closed = run.records.find((r) => r.name === 'kcp:connection_closed');
  t.is(closed.src_ip, '127.0.0.1');
  t.is(closed.dst_ip, '127.0.0.2');
  t.false('ip_privacy' in closed);
  t.regex(closed.community_id, /^1:/);
});

test('bad privacy options are refused before anything is bound', (t) => {
  const bad = [
    { mode: 'hmac', keyId: 'k1', key: '00' },
    { mode: 'hmac', keyId: 'bad id', key: HMAC_KEY },
    { mode: 'cryptopan', key: Buffer.alloc(16) },
    { mode: 'truncate', v4Prefix: 33 },
    { mode: 'scramble' },
  ];
  for (const ipPrivacy of bad) {
    t.throws(() => kcpwatch.createServer({ log: { ipPrivacy } }), { instanceOf: kcpwatch.KcpInvalidOptionError }, JSON.stringify(ipPrivacy));
  }  // The README lists the modes by name: a bare name is the likely slip, and the error says what it got.
  t.throws(() => kcpwatch.createServer({ log: { ipPrivacy: 'hmac' } }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /log\.ipPrivacy must be an object with a mode \(for example \{ mode: 'hmac', key \}\), got the string "hmac"/,
  });
});
