// The detectors through the public API (src/detection.ts): options, kcp:alert records,
// enforcement and its allow-list. Each rule's logic is tested in
// crates/kcpwatch-proto/tests/detectors.rs.
import { createSocket } from 'node:dgram';
import { once } from 'node:events';

import test from 'ava';
import { EventLog, kcpwatch } from './helpers/util.mjs';

function hello(i) {
  const d = Buffer.alloc(64);
  d[0] = 1;
  d[1] = 1;
  d.writeUInt32LE(i + 1, 4);
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
  for (let i = 0; i < n; i++) socket.send(hello(from + i), port, '127.0.0.1');
  const deadline = Date.now() + 10_000;
  while (s.stats().hellosReceived < before + n) {
    if (Date.now() > deadline) throw new Error('the server did not receive every HELLO');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('detectorRules() lists the nine rules with their defaults', (t) => {
  const rules = kcpwatch.detectorRules();
  t.deepEqual(
    rules.map((r) => r.id),
    ['KCPW-001', 'KCPW-002', 'KCPW-003', 'KCPW-004', 'KCPW-005', 'KCPW-006', 'KCPW-007', 'KCPW-008', 'KCPW-009'],
  );
  t.like(rules[0], { name: 'handshake_flood_source', threshold: 100, window: 10_000, key: 'source', severity: 'warning', technique: 'T1498.001' });
  t.like(rules[1], { name: 'handshake_flood_global', threshold: 1000, window: 10_000, key: 'listener', severity: 'alert' });
  t.like(rules[3], { name: 'conv_scan_source', threshold: 32, window: 60_000, technique: 'T1046' });
  t.like(rules[6], { name: 'error_rate_spike', threshold: 50, window: 60_000, key: 'listener' });
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
    const client = kcpwatch.connect({ host: '127.0.0.1', port, log: false });
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
    { rules: { 'KCPW-010': { threshold: 1 } } },
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
