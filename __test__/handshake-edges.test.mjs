// Handshake edges an outside user found in secure mode: a server shutting down while
// `authenticate` runs is not a refusal; a client that gave up or closed while `authenticate`
// ran never becomes a ("ghost") connection on the server; closing a client stops its
// connections from firing `connect` afterwards (docs/protocol.md, "Handshake confirmation").
import test from 'ava';
import { kcpwatch, poll } from './helpers/util.mjs';

/** A promise with its resolve function, for answers the test gives at a chosen moment. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** A secure server whose records are collected; its connection events are counted. */
async function server(t, options) {
  const records = [];
  const connections = [];
  const s = kcpwatch.createServer({ log: { destination: 'none', onEvent: (e) => records.push(e) }, ...options });
  s.on('connection', (c) => connections.push(c));
  const address = await s.listen(0, '127.0.0.1');
  t.teardown(() => s.close({ force: true }));
  return { s, port: address.port, records, connections };
}

const failures = (records) => records.filter((r) => r.name === 'kcp:connection_failed').map((r) => `${r.reason}/${r.rule}`);

test('a server shutting down while authenticate runs tells the client it shut down, not that it refused the token', async (t) => {
  let closing;
  const { s, port, records } = await server(t, {
    authenticate: () => {
      closing = s.close();
      return new Promise(() => {});
    },
  });
  const client = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, token: 'valid-ticket', log: { destination: 'none' } });
  t.teardown(() => client.close());
  const error = await t.throwsAsync(client.ready());
  t.true(error instanceof kcpwatch.KcpServerShutdownError, `${error.constructor.name} ${error.code} ${error.message}`);
  t.is(error.code, 'KCP_ERR_SERVER_SHUTDOWN');
  t.regex(error.message, /shut down/);
  await closing;
  t.deepEqual(failures(records), ['shutdown/shutdown']);
});

test('a client that gives up while authenticate runs never becomes a connection on the server', async (t) => {
  const gaveUp = deferred();
  const { s, port, records, connections } = await server(t, {
    handshakeTimeout: 300,
    authenticate: async () => {
      await gaveUp.promise;
      return { player: 'alice' };
    },
  });
  const client = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, handshakeTimeout: 200, log: { destination: 'none' } });
  t.teardown(() => client.close());
  let connected = false;
  client.on('connect', () => (connected = true));
  const error = await t.throwsAsync(client.ready());
  t.is(error.code, 'KCP_ERR_HANDSHAKE_TIMEOUT');
  // The application accepts the token only now: its ACCEPT reaches a client that is gone.
  gaveUp.resolve();
  await poll(() => failures(records).length > 0, 5000, 'the attempt recorded as failed');
  t.deepEqual(failures(records), ['handshake_abandoned/handshake_abandoned']);
  t.is(connections.length, 0, 'no connection event');
  t.is(s.connectionCount, 0);
  t.is(s.connections.size, 0);
  t.false(records.some((r) => r.name === 'kcp:connection_established'));
  t.is(s.stats().failedHandshakeAbandoned, 1);
  t.false(connected, 'the late ACCEPT did not revive the client');
  t.is(client.state, 'closed');
});

test('a client that closes while authenticate runs never becomes a connection, and its address keeps no slot', async (t) => {
  const closed = deferred();
  const { s, port, records, connections } = await server(t, {
    handshakeTimeout: 300,
    limits: { maxConnectionsPerIp: 1 },
    authenticate: async (token) => {
      if (token.toString() === 'first') await closed.promise;
      return { player: token.toString() };
    },
  });
  const client = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, token: 'first', log: { destination: 'none' } });
  t.teardown(() => client.close());
  let connected = false;
  client.on('connect', () => (connected = true));
  await poll(() => s.stats().authRequests === 1, 5000, 'the token handed to authenticate');
  client.close();
  const error = await t.throwsAsync(client.ready());
  t.is(error.code, 'KCP_ERR_CLOSED');
  closed.resolve();
  await poll(() => failures(records).length > 0, 5000, 'the attempt recorded as failed');
  t.deepEqual(failures(records), ['handshake_abandoned/handshake_abandoned']);
  t.is(connections.length, 0);
  t.is(s.connectionCount, 0);
  t.false(connected);
  // The per-address slot is free again: the same player connects.
  const again = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, token: 'second', log: { destination: 'none' } });
  t.teardown(() => again.close());
  await again.ready();
  await poll(() => connections.length === 1, 5000, 'the second connection announced');
  t.is(connections[0].auth.player, 'second');
  t.is(s.connectionCount, 1);
});

test('after client.close() no connection of that client fires connect, and ready() rejects with KcpClosedError', async (t) => {
  const { s, port } = await server(t, {});
  const seen = { connecting: 0, connectAfterClose: 0, readyResolved: 0, otherError: [] };
  for (let i = 0; i < 12; i++) {
    const client = kcpwatch.createClient({ host: '127.0.0.1', port, serverKey: s.publicKey });
    t.teardown(() => client.close());
    const conns = [client.connect(), client.connect()];
    let closeCalled = false;
    for (const c of conns) c.on('connect', () => closeCalled && seen.connectAfterClose++);
    if (i % 2) await Promise.resolve();
    const states = conns.map((c) => c.state);
    closeCalled = true;
    await client.close();
    const results = await Promise.allSettled(conns.map((c) => c.ready()));
    results.forEach((r, j) => {
      if (states[j] !== 'connecting') return;
      seen.connecting++;
      if (r.status === 'fulfilled') seen.readyResolved++;
      else if (r.reason?.code !== 'KCP_ERR_CLOSED') seen.otherError.push(r.reason?.code);
    });
  }
  t.is(seen.connecting, 24, 'every connection was connecting when close() was called');
  t.is(seen.connectAfterClose, 0);
  t.is(seen.readyResolved, 0);
  t.deepEqual(seen.otherError, []);
});

test('secure mode agrees the MTU: a server with mtu 9000 and a default client (1200) echo 5000-byte messages both ways, nothing truncated', async (t) => {
  const { s, port } = await server(t, { mtu: 9000 });
  const atServer = [];
  s.on('connection', (c) =>
    c.on('message', (m) => {
      atServer.push(Buffer.from(m));
      c.send(m);
    }),
  );
  // createClient: its stats() are the socket's, where a truncated datagram is counted.
  const endpoint = kcpwatch.createClient({ host: '127.0.0.1', port, serverKey: s.publicKey, log: { destination: 'none' } });
  t.teardown(() => endpoint.close());
  const client = endpoint.connect();
  const atClient = [];
  client.on('message', (m) => atClient.push(Buffer.from(m)));
  await client.ready();
  const sent = Buffer.alloc(5000, 0);
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff;
  client.send(sent);
  await poll(() => atClient.length === 1, 5000, 'the echo of a 5000-byte message');
  t.deepEqual(atServer, [sent]);
  t.deepEqual(atClient, [sent]);
  t.is(s.stats().truncated, 0);
  t.is(endpoint.stats().truncated, 0);
  // The server's connection takes its datagram ceiling from the agreed MTU (1200 - 31), not
  // from its own 9000.
  const [conn] = s.connections.values();
  t.true(conn.sendDatagram(Buffer.alloc(1169)));
  t.throws(() => conn.sendDatagram(Buffer.alloc(1170)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
});
