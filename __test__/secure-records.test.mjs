// Secure-mode security records end to end (docs/events.md): what a real secure server and its
// clients write is valid against schema/events.schema.json, including kcp:peer_address_changed
// (a NAT rebinding made by a relay that changes its upstream port mid-session) and the
// kcp:connection_failed records that have no trigger; and under an IP privacy mode no raw
// address reaches any output, the old addresses of a move included.
import test from 'ava';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { EventLog, kcpwatch, next, require, udpSocket } from './helpers/util.mjs';

const schema = require('../../schema/events.schema.json');
const ajv = new Ajv2020({ strict: true, allErrors: true });
const validate = ajv.compile(schema);
const problem = (record) => (validate(record) ? undefined : `${record.name}: ${ajv.errorsText(validate.errors)}`);

const RAW = /127\.0\.0\.[12]\b|::ffff:/;
const HMAC_KEY = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const FORMATS = ['ecs', 'ocsf', 'cef', 'rfc5424', 'gelf', 'hec', 'otlp'];

const bind = (host) =>
  new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });

/**
 * A NAT in user space: the client talks to `front`, the server sees `upstream`. `rebind()`
 * swaps the upstream socket for one on a new port, as a NAT that lost its mapping does.
 */
async function nat(server) {
  const front = await bind('127.0.0.1');
  let client;
  let upstream;
  const attach = async () => {
    const socket = await bind('127.0.0.1');
    socket.on('message', (m) => client && front.send(m, client.port, client.address));
    const old = upstream;
    upstream = socket;
    if (old) old.close();
    return socket.address().port;
  };
  await attach();
  front.on('message', (m, from) => {
    client = from;
    upstream.send(m, server.port, server.address);
  });
  return {
    port: front.address().port,
    upstreamPort: () => upstream.address().port,
    rebind: attach,
    close: () => {
      front.close();
      upstream.close();
    },
  };
}

/**
 * One secure server's life, logged to a file in every format: a client whose token is refused,
 * an accepted client behind a NAT that rebinds, and, with `maxConnections: 1`, a client the
 * server turns away; plus a client whose handshake times out against a silent socket.
 */
async function secureLife(t, ipPrivacy) {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-secure-records-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'events.ndjson');
  const outputs = [
    { destination: { file } },
    ...FORMATS.map((format) => ({ destination: { file: join(dir, `events.${format}`) }, format })),
  ];
  const log = new EventLog(problem);
  const server = kcpwatch.createServer(
    {
      maxConnections: 1,
      authenticate: (token) => token.toString() === 'open sesame',
      log: { outputs, statsInterval: 0, sampleBurst: 1000, ipPrivacy, onEvent: log.push },
    },
    (conn) => conn.on('message', (m) => conn.send(m)),
  );
  const address = await server.listen(0, '127.0.0.2');
  const clientLog = new EventLog(problem);
  const clientOptions = { serverKey: server.publicKey, log: { destination: 'none', ipPrivacy, onEvent: clientLog.push } };

  // A wrong token: the application refuses it (REJECT auth_rejected).
  const refused = kcpwatch.connect({ host: '127.0.0.2', port: address.port, token: 'wrong', ...clientOptions });
  await t.throwsAsync(refused.ready());

  const relay = await nat(address);
  const player = kcpwatch.connect({ host: '127.0.0.1', port: relay.port, token: 'open sesame', ...clientOptions });
  await player.ready();
  player.send('before');
  t.is((await next(player, 'message'))[0].toString(), 'before');
  const oldPort = relay.upstreamPort();
  const newPort = await relay.rebind();
  player.send('after');
  t.is((await next(player, 'message'))[0].toString(), 'after', 'the session followed the new address');
  const moved = await log.waitFor((e) => e.name === 'kcp:peer_address_changed');

  // The only slot is taken: the server answers a valid HELLO with REJECT (capacity).
  const turnedAway = kcpwatch.connect({ host: '127.0.0.2', port: address.port, token: 'open sesame', ...clientOptions });
  await t.throwsAsync(turnedAway.ready());
  const silent = await udpSocket();
  const late = kcpwatch.connect({ host: '127.0.0.1', port: silent.address().port, handshakeTimeout: 300, ...clientOptions });
  late.on('error', () => undefined);
  await t.throwsAsync(late.ready());
  silent.close();

  player.close();
  await log.waitFor((e) => e.name === 'kcp:connection_closed');
  await server.close();
  relay.close();
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  const formatted = [];
  for (const format of FORMATS) formatted.push(...(await readFile(join(dir, `events.${format}`), 'utf8')).split('\n').filter(Boolean));
  t.is(formatted.length, lines.length * FORMATS.length, 'every format got every record');
  t.deepEqual(log.problems, [], 'every server record is valid');
  t.deepEqual(clientLog.problems, [], 'every client record is valid');
  return { lines, formatted, server: log.records, client: clientLog.records, moved, oldPort, newPort };
}

test('full addresses: the move, the failures without a trigger, every record valid', async (t) => {
  const run = await secureLife(t, undefined);
  for (const line of run.lines) t.is(problem(JSON.parse(line)), undefined, line);

  const { moved } = run;
  t.is(moved.direction, 'inbound');
  t.is(moved.src_ip, '127.0.0.1');
  t.is(moved.src_port, run.newPort);
  t.is(moved.old_peer_ip, '127.0.0.1');
  t.is(moved.old_peer_port, run.oldPort);
  t.is(moved.old_local_ip, moved.dst_ip);
  t.is(moved.old_local_port, moved.dst_port);
  t.regex(moved.community_id, /^1:/);
  t.is(moved.msg, `peer address changed ${moved.uid} conv=${moved.conv}: 127.0.0.1:${run.oldPort} -> 127.0.0.1:${run.newPort}`);
  const established = run.server.find((e) => e.name === 'kcp:connection_established' && e.uid === moved.uid);
  t.is(established.src_port, run.oldPort);
  const closed = run.server.find((e) => e.name === 'kcp:connection_closed' && e.uid === moved.uid);
  t.is(closed.src_port, run.newPort, 'later records carry the new address');

  const failed = run.server.filter((e) => e.name === 'kcp:connection_failed');
  const auth = failed.find((e) => e.reason === 'auth_rejected');
  t.is(auth.rule, 'authenticate');
  t.false('trigger' in auth);
  const capacity = failed.find((e) => e.reason === 'capacity');
  t.is(capacity.trigger, 'over_limit');

  const clientFailed = run.client.filter((e) => e.name === 'kcp:connection_failed');
  const rejected = clientFailed.filter((e) => e.rule === 'server_rejected');
  t.deepEqual(rejected.map((e) => e.reason).sort(), ['auth_rejected', 'capacity']);
  for (const e of clientFailed) {
    t.false('trigger' in e, `${e.reason}/${e.rule}: no datagram was refused`);
    t.is(e.direction, 'outbound');
  }
  t.true(clientFailed.some((e) => e.reason === 'handshake_timeout' && e.rule === 'handshake_timeout'));
  t.true(run.client.some((e) => e.name === 'kcp:listener_started' && e.mode === 'secure' && e.role === 'client'));
});

test('hmac: the old addresses of a move are pseudonyms too, and no raw address reaches any output', async (t) => {
  const run = await secureLife(t, { mode: 'hmac', keyId: 'k7', key: HMAC_KEY });
  for (const line of [...run.lines, ...run.formatted]) t.notRegex(line, RAW);
  for (const e of run.client) t.notRegex(JSON.stringify(e), RAW);
  const { moved } = run;
  t.is(moved.ip_privacy, 'hmac');
  t.false('old_peer_ip' in moved);
  t.false('old_local_ip' in moved);
  t.regex(moved.old_peer_ip_pseudonym, /^k7:[A-Za-z0-9_-]{22}$/);
  t.is(moved.old_peer_ip_pseudonym, moved.src_ip_pseudonym, 'the same address, the same pseudonym');
  t.is(moved.old_local_ip_pseudonym, moved.dst_ip_pseudonym);
  t.is(moved.old_peer_port, run.oldPort);
  t.false('community_id' in moved);
});

test('omit: a move keeps only its ports', async (t) => {
  const run = await secureLife(t, { mode: 'omit' });
  for (const line of run.lines) t.notRegex(line, /_ip(_pseudonym)?"/);
  for (const line of [...run.lines, ...run.formatted]) t.notRegex(line, RAW);
  t.is(run.moved.old_peer_port, run.oldPort);
  t.is(run.moved.msg, `peer address changed ${run.moved.uid} conv=${run.moved.conv}: *:${run.oldPort} -> *:${run.newPort}`);
});
