// The detectors through the public API (src/detection.ts): options, kcp:alert records,
// enforcement and its allow-list. Each rule's logic is tested in
// crates/kcpwatch-proto/tests/detectors.rs.
import { createSocket } from 'node:dgram';
import { once } from 'node:events';

import { createHash, randomBytes } from 'node:crypto';

import test from 'ava';
import { segment } from './helpers/kcpwire.mjs';
import { EventLog, kcpwatch, next, poll } from './helpers/util.mjs';

/**
 * A first HELLO (docs/protocol.md, version 2) to server `s`: its key id, nonce `i`, zero cookie
 * and random bytes where the Noise message goes (the server answers a zero cookie with a
 * COOKIE without reading the Noise message).
 */
function hello(i, s) {
  const d = Buffer.alloc(97);
  d[0] = 1;
  d[1] = 2;
  d[2] = 1;
  createHash('sha256').update(Buffer.from(s.publicKey, 'base64')).digest().copy(d, 4, 0, 4);
  d.writeUInt32LE(i + 1, 8);
  randomBytes(57).copy(d, 40);
  return d;
}

/** A UDP socket on a chosen loopback address, counting what comes back. */
async function source(address) {
  const socket = createSocket('udp4');
  socket.bind(0, address);
  await once(socket, 'listening');
  socket.replies = 0;
  socket.on('message', () => socket.replies++);
  return socket;
}

async function server(t, options) {
  const log = new EventLog();
  const s = kcpwatch.createServer({ log: { destination: 'none', sampleBurst: 1000, onEvent: log.push }, ...options }, (c) =>
    c.on('message', (m) => c.send(m)),
  );
  t.teardown(() => s.close());
  const { port } = await s.listen(0, '127.0.0.1');
  return { s, port, log };
}

/** Sends `n` HELLOs and waits until the server has counted them all. */
async function helloes(s, socket, port, n, from = 0) {
  const before = s.stats().hellosReceived;
  for (let i = 0; i < n; i++) socket.send(hello(from + i, s), port, '127.0.0.1');
  const deadline = Date.now() + 10_000;
  while (s.stats().hellosReceived < before + n) {
    if (Date.now() > deadline) throw new Error('the server did not receive every HELLO');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('detectorRules() lists the ten rules with their defaults', (t) => {
  const rules = kcpwatch.detectorRules();
  t.deepEqual(
    rules.map((r) => r.id),
    ['KCPW-001', 'KCPW-002', 'KCPW-003', 'KCPW-004', 'KCPW-005', 'KCPW-006', 'KCPW-007', 'KCPW-008', 'KCPW-009', 'KCPW-010'],
  );
  t.like(rules[0], { name: 'handshake_flood_source', threshold: 100, window: 10_000, key: 'source', severity: 'warning', technique: 'T1498.001' });
  t.like(rules[1], { name: 'handshake_flood_global', threshold: 1000, window: 10_000, key: 'listener', severity: 'alert' });
  t.like(rules[3], { name: 'conv_scan_source', threshold: 32, window: 60_000, technique: 'T1046' });
  t.like(rules[6], { name: 'error_rate_spike', threshold: 50, window: 60_000, key: 'listener' });
  t.like(rules[9], { name: 'decrypt_failed_source', threshold: 10, window: 10_000, key: 'source', severity: 'warning', technique: 'T1565.002' });
});

test('a handshake flood from one source raises one kcp:alert with its key, and the stats count it', async (t) => {
  const { s, port, log } = await server(t, { detection: { rules: { 'KCPW-001': { threshold: 10, window: 10_000 } } } });
  const flooder = await source('127.0.0.9');
  t.teardown(() => flooder.close());
  await helloes(s, flooder, port, 25);
  const alert = await log.waitFor((e) => e.name === 'kcp:alert');
  t.like(alert, {
    rule_id: 'KCPW-001',
    rule_name: 'handshake_flood_source',
    threshold: 10,
    window_ms: 10_000,
    observed: 10,
    update: false,
    group: 'source',
    group_ip: '127.0.0.9',
    mitre_technique: 'T1498.001',
    severity: 4,
  });
  t.is(log.records.filter((e) => e.name === 'kcp:alert').length, 1, 'one alert, not one per datagram');
  t.is(s.stats().alerts, 1);
});

test('enforcement refuses the flagged source while others connect, and never the allow-list', async (t) => {
  for (const allowed of [false, true]) {
    const { s, port, log } = await server(t, {
      detection: {
        rules: { 'KCPW-001': { threshold: 10, window: 10_000 } },
        enforce: { refuseMs: 60_000 },
        allowList: allowed ? ['127.0.0.0/8'] : ['10.0.0.0/8'],
      },
    });
    const flooder = await source('127.0.0.9');
    t.teardown(() => flooder.close());
    await helloes(s, flooder, port, 10);
    await log.waitFor((e) => e.name === 'kcp:alert');
    const refusedBefore = s.stats().refusedByDetector;
    const cookiesBefore = s.stats().cookiesSent;
    await helloes(s, flooder, port, 5, 100);
    const stats = s.stats();
    if (allowed) {
      t.is(stats.refusedByDetector, 0, 'allow-listed');
      t.is(stats.cookiesSent, cookiesBefore + 5);
    } else {
      t.is(stats.refusedByDetector - refusedBefore, 5);
      t.is(stats.cookiesSent, cookiesBefore, 'no COOKIE for a refused source');
      const failed = await log.waitFor((e) => e.name === 'kcp:connection_failed' && e.rule === 'refused_by_detector');
      t.like(failed, { reason: 'rate_limited', trigger: 'rate_limited', src_ip: '127.0.0.9' });
    }
    // A client from another address is not affected.
    const client = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: false });
    await client.ready();
    client.close();
  }
});

test('detection: false raises nothing', async (t) => {
  const { s, port, log } = await server(t, { detection: false });
  const flooder = await source('127.0.0.9');
  t.teardown(() => flooder.close());
  await helloes(s, flooder, port, 150);
  await s.close();
  t.false(log.records.some((e) => e.name === 'kcp:alert'));
  t.is(s.address(), null);
});

test('invalid detection options are refused', (t) => {
  for (const detection of [
    'on',
    { rules: { 'KCPW-011': { threshold: 1 } } },
    { rules: { 'KCPW-007': { threshold: 150 } } },
    { rules: { 'KCPW-001': { window: 0 } } },
    { enforce: { refuseMs: 0 } },
    { enforce: { refuseMs: 1000, rules: ['KCPW-002'] } },
    { allowList: ['10.0.0.0/33'] },
    { allowList: ['example.com/8'] },
    { tableCapacity: 1 },
  ]) {
    t.throws(() => kcpwatch.createServer({ detection }), { code: 'KCP_ERR_INVALID_OPTION' }, JSON.stringify(detection));
  }
});

// One test per rule on real loopback sockets, with thresholds lowered so the traffic stays
// small: each asserts exactly the alert the rule raises and no other.

/** Sends each datagram from its socket and waits until the server has counted them all. */
async function deliver(s, pairs, port) {
  const before = s.stats().datagramsIn;
  for (const [socket, d] of pairs) socket.send(d, port, '127.0.0.1');
  const deadline = Date.now() + 10_000;
  while (s.stats().datagramsIn < before + pairs.length) {
    if (Date.now() > deadline) throw new Error('the server did not receive every datagram');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function sources(t, n, base = 20) {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => source(`127.0.${base}.${i + 1}`)));
  t.teardown(() => list.forEach((x) => x.close()));
  return list;
}

/**
 * Waits for `expected` alerts, then closes the server so every record it produced has been
 * delivered, and returns all the alerts: an extra one would show.
 */
async function alertsOf(s, log, expected) {
  await log.waitForCount((e) => e.name === 'kcp:alert', expected);
  await s.close();
  assertStopped(log);
  return log.records.filter((e) => e.name === 'kcp:alert');
}

function assertStopped(log) {
  if (log.records.at(-1)?.name !== 'kcp:listener_stopped') throw new Error('the listener_stopped record is missing');
}

const rule = (id, threshold, window = 60_000) => ({ [id]: { threshold, window } });

test('KCPW-002 on loopback: handshakes from many sources', async (t) => {
  const { s, port, log } = await server(t, { detection: { rules: rule('KCPW-002', 40, 10_000) } });
  const list = await sources(t, 20);
  await deliver(s, list.flatMap((x, i) => [0, 1, 2].map((k) => [x, hello(i * 10 + k, s)])), port);
  const alerts = await alertsOf(s, log, 1);
  t.is(alerts.length, 1);
  t.like(alerts[0], { rule_id: 'KCPW-002', group: 'listener', observed: 40, threshold: 40, severity: 1 });
  t.false('group_ip' in alerts[0]);
});

test('KCPW-003 on loopback: forged cookies from one source', async (t) => {
  const { s, port, log } = await server(t, { detection: { rules: rule('KCPW-003', 5) } });
  const [x] = await sources(t, 1, 21);
  await deliver(s, Array.from({ length: 6 }, (_, i) => {
    const d = hello(i, s);
    randomBytes(16).copy(d, 24);
    return [x, d];
  }), port);
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.group_ip, a.observed]), [['KCPW-003', '127.0.21.1', 5]]);
  t.is(log.records.filter((e) => e.name === 'kcp:connection_failed' && e.reason === 'invalid_cookie').length, 6);
});

test('KCPW-004 on loopback: a source scanning convs', async (t) => {
  const { s, port, log } = await server(t, { detection: { rules: rule('KCPW-004', 8) } });
  const [x] = await sources(t, 1, 22);
  await deliver(s, Array.from({ length: 12 }, (_, i) => {
    const d = randomBytes(40);
    d[0] = 0x10;
    d.writeUInt32LE(0x1000 + i * 7919, 1);
    return [x, d];
  }), port);
  const alerts = await alertsOf(s, log, 1);
  t.is(alerts.length, 1);
  t.like(alerts[0], { rule_id: 'KCPW-004', group_ip: '127.0.22.1', mitre_technique: 'T1046' });
  t.true(alerts[0].observed >= 8 && alerts[0].observed <= 9, String(alerts[0].observed));
});

test('KCPW-005 on loopback: a burst of invalid datagrams', async (t) => {
  const { s, port, log } = await server(t, { detection: { rules: rule('KCPW-005', 30, 10_000) } });
  const list = await sources(t, 5, 23);
  await deliver(s, Array.from({ length: 35 }, (_, i) => [list[i % 5], Buffer.from([0x7f, i, 2, 3])]), port);
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.group, a.observed]), [['KCPW-005', 'listener', 30]]);
});

test('KCPW-006 on loopback: raw peers that vanish end as dead links', async (t) => {
  const { s, port, log } = await server(t, {
    mode: 'raw',
    deadLink: 2,
    detection: { rules: rule('KCPW-006', 3) },
  });
  const list = await sources(t, 3, 24);
  const closed = log.waitForCount((e) => e.name === 'kcp:connection_closed', 3, 30_000);
  // Each peer opens a session with one message and never acknowledges the echo.
  await deliver(s, list.map((x, i) => [x, segment({ conv: 100 + i, payload: Buffer.from('hi') })]), port);
  const closes = await closed;
  t.true(closes.every((e) => e.reason === 'dead_link'));
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.observed]), [['KCPW-006', 3]]);
});

test('KCPW-007 on loopback: most attempts failing', async (t) => {
  const { s, port, log } = await server(t, { mode: 'raw', detection: { errorRateMinAttempts: 4 } });
  const list = await sources(t, 4, 25);
  const bad = (conv) => segment({ conv, frg: 255, payload: Buffer.from('x') });
  await deliver(s, [[list[0], segment({ conv: 1, payload: Buffer.from('ok') })], [list[1], bad(2)], [list[2], bad(3)], [list[3], bad(4)]], port);
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.observed, a.threshold]), [['KCPW-007', 75, 50]]);
});

/** A raw server that does not answer its connections' messages (so a close has nothing to wait for). */
async function quietServer(t, options) {
  const log = new EventLog();
  const s = kcpwatch.createServer({ log: { destination: 'none', sampleBurst: 1000, onEvent: log.push }, ...options });
  t.teardown(() => s.close());
  const { port } = await s.listen(0, '127.0.0.1');
  return { s, port, log };
}

test('KCPW-008 on loopback: one address opening connection after connection', async (t) => {
  const { s, port, log } = await quietServer(t, { mode: 'raw', detection: { rules: rule('KCPW-008', 5) } });
  const list = await Promise.all(Array.from({ length: 6 }, () => source('127.0.26.1')));
  t.teardown(() => list.forEach((x) => x.close()));
  // Each connection is closed by the server before the next opens: churn.
  for (const [i, x] of list.entries()) {
    const opened = next(s, 'connection');
    await deliver(s, [[x, segment({ conv: 10 + i, payload: Buffer.from('hi') })]], port);
    const [conn] = await opened;
    const closed = next(conn, 'close');
    conn.close();
    await closed;
  }
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.group_ip, a.observed]), [['KCPW-008', '127.0.26.1', 5]]);
});

test('KCPW-008 on loopback: players that stay behind one address are not churn', async (t) => {
  const { s, port, log } = await quietServer(t, { mode: 'raw', detection: { rules: rule('KCPW-008', 5) } });
  const list = await Promise.all(Array.from({ length: 12 }, () => source('127.0.26.2')));
  t.teardown(() => list.forEach((x) => x.close()));
  await deliver(s, list.map((x, i) => [x, segment({ conv: 10 + i, payload: Buffer.from('hi') })]), port);
  // All twelve are established and stay; the old rule counted establishments alone.
  await log.waitForCount((e) => e.name === 'kcp:connection_established', 12);
  // The records stream and the connections' own records travel apart (the log thread, the
  // delivery batch): the connections may reach JavaScript just after their log records.
  await poll(() => s.connections.size >= 12, 5000, 'twelve connections in JavaScript');
  t.is(s.connections.size, 12);
  await s.close();
  assertStopped(log);
  t.deepEqual(log.records.filter((e) => e.name === 'kcp:alert'), []);
});

test('KCPW-009 on loopback: a source held at its connection cap', async (t) => {
  const { s, port, log } = await server(t, {
    mode: 'raw',
    limits: { maxConnectionsPerIp: 1 },
    detection: { rules: rule('KCPW-009', 3) },
  });
  const list = await Promise.all(Array.from({ length: 4 }, () => source('127.0.27.1')));
  t.teardown(() => list.forEach((x) => x.close()));
  await deliver(s, list.map((x, i) => [x, segment({ conv: 20 + i, payload: Buffer.from('hi') })]), port);
  const alerts = await alertsOf(s, log, 1);
  t.deepEqual(alerts.map((a) => [a.rule_id, a.group_ip, a.observed]), [['KCPW-009', '127.0.27.1', 3]]);
  t.is(log.records.filter((e) => e.name === 'kcp:connection_failed' && e.reason === 'capacity').length, 3);
});

test('quiet traffic on loopback raises no alert', async (t) => {
  const { s, port, log } = await server(t, {});
  const clients = Array.from({ length: 5 }, () => kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: false }));
  await Promise.all(clients.map((c) => c.ready()));
  for (const c of clients) for (let i = 0; i < 50; i++) c.send(`m${i}`);
  await Promise.all(clients.map((c) => new Promise((resolve) => {
    let n = 0;
    c.on('message', () => ++n === 50 && resolve());
  })));
  for (const c of clients) c.close();
  await s.close();
  t.deepEqual(log.records.filter((e) => e.name === 'kcp:alert'), []);
  t.is(s.address(), null);
});
