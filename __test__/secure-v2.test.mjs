// Secure mode version 2 (docs/protocol.md) through the public API: what a recording relay on
// the path sees, bit flips, server keys, and the typed errors. The protocol core's tests
// (crates/kcpwatch-proto/tests/secure_v2.rs) show each property on a simulated network,
// forward secrecy included.
import test from 'ava';
import { EventLog, kcpwatch, next, until } from './helpers/util.mjs';

const quiet = { destination: 'none', sampleBurst: 1000 };
const TOKEN_MARKER = 'TOKEN-MARKER-5b1e';
const MESSAGE_MARKER = 'MESSAGE-MARKER-c04d';

async function echoServer(t, options = {}) {
  const server = kcpwatch.createServer({ log: quiet, ...options }, (conn) => {
    conn.on('message', (m) => conn.send(m));
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, address };
}

test('a recording relay sees neither the token nor any of 1,000 messages', async (t) => {
  const tokens = [];
  const { server, address } = await echoServer(t, { authenticate: (token) => (tokens.push(token.toString()), true) });
  const recorded = [];
  const relay = await kcpwatch.createRelay({ target: { host: '127.0.0.1', port: address.port }, onDatagram: (d) => recorded.push(Buffer.from(d.data)) });
  t.teardown(() => relay.close());
  const client = kcpwatch.connect({ host: relay.host, port: relay.port, serverKey: server.publicKey, token: TOKEN_MARKER });
  t.teardown(() => client.close());
  await client.ready();
  let echoed = 0;
  client.on('message', () => echoed++);
  for (let i = 0; i < 1000; i++) client.send(`${MESSAGE_MARKER} ${i}`);
  await until(client, 'message', () => echoed === 1000, 20_000);
  t.deepEqual(tokens, [TOKEN_MARKER], 'the server application got the token');
  t.true(recorded.length > 20);
  for (const d of recorded) {
    t.false(d.includes(TOKEN_MARKER), 'the token crossed the relay in the clear');
    t.false(d.includes(MESSAGE_MARKER), 'a message crossed the relay in the clear');
    t.false(d.includes('MARKER'));
  }
});

test('a datagram with any single bit flipped is never delivered and counts as decrypt_failed', async (t) => {
  const log = new EventLog();
  let delivered = 0;
  const server = kcpwatch.createServer({ log: { destination: 'none', sampleBurst: 100_000, onEvent: log.push } }, (conn) => {
    conn.on('message', () => delivered++);
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  let captured;
  const relay = await kcpwatch.createRelay({
    target: { host: '127.0.0.1', port: address.port },
    onDatagram: (d) => {
      if (captured === undefined && d.direction === 'up' && d.data[0] === 0x10 && d.data.length > 40) captured = Buffer.from(d.data);
    },
  });
  t.teardown(() => relay.close());
  const client = kcpwatch.connect({ host: relay.host, port: relay.port, serverKey: server.publicKey });
  t.teardown(() => client.close());
  await client.ready();
  client.send('probe-message-with-some-length');
  await until(server, 'connection', () => delivered > 0 && captured !== undefined, 5000).catch(() => {});
  await log.waitFor((e) => e.name === 'kcp:connection_established');
  const deliveredBefore = delivered;
  t.truthy(captured);
  const dgram = await import('node:dgram');
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  // Every bit of every byte after the type and conv (those route the datagram: a flip there
  // names another type or session and is dropped as such). Sent from another address: an
  // authentic datagram would move the session, these must not.
  let sent = 0;
  for (let at = 5; at < captured.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = Buffer.from(captured);
      copy[at] ^= 1 << bit;
      sock.send(copy, address.port, '127.0.0.1');
      sent++;
    }
  }
  const drops = await log.waitForCount((e) => e.name === 'kcp:packet_dropped' && e.trigger === 'decrypt_failed', sent);
  t.true(drops.every((e) => e.rule === 'session_aead'));
  t.is(server.stats().droppedDecryptFailed, sent);
  t.is(delivered, deliveredBefore, 'no flipped datagram delivered a message');
});

test('secure mode without serverKey is refused at connect() saying where to get it', (t) => {
  const error = t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 9 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.regex(error.message, /serverKey/);
  t.regex(error.message, /server\.publicKey|keygen/);
  t.throws(() => kcpwatch.createClient({ port: 9 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => kcpwatch.connect({ port: 9, serverKey: 'not a key' }), { code: 'KCP_ERR_INVALID_OPTION' });
});

test('a client pinning another key fails with KcpServerAuthError', async (t) => {
  const { address } = await echoServer(t);
  const other = kcpwatch.generateKeyPair();
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: other.publicKey });
  await t.throwsAsync(client.ready(), { instanceOf: kcpwatch.KcpServerAuthError, code: 'KCP_ERR_SERVER_AUTH' });
});

test('a server holds two keys during a rotation; clients of either connect', async (t) => {
  const oldKey = kcpwatch.generateKeyPair();
  const newKey = kcpwatch.generateKeyPair();
  const { server, address } = await echoServer(t, { serverKeys: [newKey.privateKey, oldKey.privateKey.toString('base64')] });
  t.deepEqual(server.publicKeys, [newKey.publicKey.toString('base64'), oldKey.publicKey.toString('base64')]);
  for (const key of [oldKey.publicKey, newKey.publicKey.toString('hex')]) {
    const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: key });
    t.teardown(() => client.close());
    await client.ready();
    const echoed = next(client, 'message');
    client.send('hi');
    t.is(Buffer.from((await echoed)[0]).toString(), 'hi');
  }
});
