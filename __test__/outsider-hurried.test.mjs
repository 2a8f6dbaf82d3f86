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

// README: "A `server.close()` while `authenticate` runs tells the client `KcpServerShutdownError`,
// not a refusal". A close issued from inside a synchronous `authenticate` used to lose a race to
// the answer: the ACCEPT went out, then the shutdown, and the client saw either a connection
// closed `peer_closed` or a `KcpClosedError` it never asked for. Repeated: the race is per run.
const closingAuthenticates = {
  'a synchronous, accepting': (closeNow) => () => {
    closeNow();
    return { userId: 'x' };
  },
  'a synchronous, refusing': (closeNow) => () => {
    closeNow();
    return false;
  },
  'an async, before its first await,': (closeNow) => async () => {
    closeNow();
    return { userId: 'x' };
  },
};
const closes = {
  'close()': (server) => void server.close(),
  'close({ force: true })': (server) => void server.close({ force: true }),
};
for (const [variant, makeAuthenticate] of Object.entries(closingAuthenticates)) {
  for (const [closeName, close] of Object.entries(closes)) {
    test(`server.${closeName} inside ${variant} authenticate: the client gets KcpServerShutdownError and both sides record a failed attempt, every time`, async (t) => {
      const runs = variant === 'a synchronous, accepting' ? 20 : 8;
      for (let i = 0; i < runs; i += 1) {
        const serverRecords = [];
        const clientRecords = [];
        let server;
        const connections = [];
        const authenticate = makeAuthenticate(() => close(server));
        server = kcpwatch.createServer({ authenticate, log: { destination: 'none', onEvent: (e) => serverRecords.push(e) } }, (c) => connections.push(c));
        t.teardown(() => server.close({ force: true }));
        const { port } = await server.listen(0, '127.0.0.1');
        const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: server.publicKey, log: { destination: 'none', onEvent: (e) => clientRecords.push(e) } });
        t.teardown(() => c.close());
        const closed = new Promise((resolve) => c.once('close', (reason, info) => resolve({ reason, info })));
        const error = await c.ready().then(
          () => undefined,
          (e) => e,
        );
        t.is(error?.code, 'KCP_ERR_SERVER_SHUTDOWN', `run ${i}: ${error?.constructor.name} ${error?.message ?? 'ready() resolved'}`);
        t.true(error instanceof kcpwatch.KcpServerShutdownError, `run ${i}`);
        t.is((await closed).reason, 'connect_failed', `run ${i}`);
        await server.close();
        const failed = (records) => records.find((e) => e.name === 'kcp:connection_failed');
        await poll(() => failed(clientRecords) && failed(serverRecords), 10_000, `run ${i}: both sides' kcp:connection_failed`);
        t.is(failed(clientRecords).reason, 'shutdown', `run ${i}: client`);
        t.is(failed(serverRecords).reason, 'shutdown', `run ${i}: server`);
        const names = (records) => records.map((e) => e.name).filter((n) => /established|closed|failed/.test(n));
        t.deepEqual(names(clientRecords), ['kcp:connection_failed'], `run ${i}: client`);
        t.deepEqual(names(serverRecords), ['kcp:connection_failed'], `run ${i}: server`);
        t.is(connections.length, 0, `run ${i}: no connection event`);
      }
    });
  }
}
