// Defects a hurried user found writing programs from the README and docs alone: the README's
// example did not compile under strict TypeScript (`server.publicKey` could be null), a secure
// close record reported the inner engine's MTU, a message queued past the agreed size closed the
// client as if the application had, and a `server.close()` inside a synchronous `authenticate`
// let the client see a random outcome.
import test from 'ava';
import { kcpwatch, poll } from './helpers/util.mjs';

test('a secure server has its public key from createServer() on, the one it serves with; a raw server has none', async (t) => {
  const s = kcpwatch.createServer({ log: { destination: 'none' } }, (c) => c.on('message', (m) => c.send(m)));
  t.teardown(() => s.close({ force: true }));
  const before = s.publicKey;
  t.regex(before, /^[A-Za-z0-9+/]{43}=$/);
  t.deepEqual(s.publicKeys, [before]);
  const { port } = await s.listen(0, '127.0.0.1');
  t.is(s.publicKey, before);
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: before, log: { destination: 'none' } });
  t.teardown(() => c.close());
  await c.ready();
  const configured = kcpwatch.generateKeyPair();
  const pinned = kcpwatch.createServer({ serverKeys: [configured.privateKey], log: { destination: 'none' } });
  t.is(pinned.publicKey, configured.publicKey.toString('base64'));
  const raw = kcpwatch.createServer({ mode: 'raw', log: { destination: 'none' } });
  t.is(raw.publicKey, null);
  t.deepEqual(raw.publicKeys, []);
});

test('secure mode: kcp:connection_closed states the same kcp_mtu as kcp:listener_started on both sides (the wire MTU, not the inner engine one)', async (t) => {
  const serverRecords = [];
  const clientRecords = [];
  const s = kcpwatch.createServer({ log: { destination: 'none', onEvent: (e) => serverRecords.push(e) } });
  t.teardown(() => s.close({ force: true }));
  const { port } = await s.listen(0, '127.0.0.1');
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: { destination: 'none', onEvent: (e) => clientRecords.push(e) } });
  t.teardown(() => c.close());
  await c.ready();
  c.close();
  const has = (records, name) => records.some((e) => e.name === name);
  await poll(() => has(serverRecords, 'kcp:connection_closed') && has(clientRecords, 'kcp:connection_closed'), 10_000, 'both close records');
  const mtu = (records, name) => records.find((e) => e.name === name)?.kcp_mtu;
  t.is(mtu(serverRecords, 'kcp:listener_started'), 1200);
  t.is(mtu(serverRecords, 'kcp:connection_closed'), 1200, 'server');
  t.is(mtu(clientRecords, 'kcp:connection_closed'), 1200, 'client');
});
