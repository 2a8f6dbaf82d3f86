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
  const stats = server.stats();
  t.is(stats.droppedDecryptFailed, sent);
  // kcp-go's InCsumErrors is every datagram whose integrity check failed: here the AEAD's.
  t.is(stats.inCsumErrors, sent + stats.droppedBadTag);
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

// --- The application's close code and text, and the refusal code of authenticate -----------

/** A secure echo server whose connections are handed to `onConnection`, logging to `log`. */
async function loggedServer(t, options = {}, onConnection = () => {}) {
  const log = new EventLog();
  const server = kcpwatch.createServer({ log: { ...quiet, onEvent: log.push }, ...options }, (conn) => {
    conn.on('message', (m) => conn.send(m));
    onConnection(conn);
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, address, log };
}

async function established(t, server, address, options = {}) {
  const clientLog = new EventLog();
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, log: { ...quiet, onEvent: clientLog.push }, ...options });
  t.teardown(() => client.close());
  client.send('hi');
  await next(client, 'message');
  const [conn] = await accepted;
  return { client, conn, clientLog };
}

test("a kick's close code and text reach the client: peer_closed with the code, the text and peerReason local_closed, in both sides' records", async (t) => {
  const { server, address, log } = await loggedServer(t);
  const { client, conn, clientLog } = await established(t, server, address);
  const clientClosed = next(client, 'close');
  const serverClosed = next(conn, 'close');
  conn.close(4001, 'kicked: idle in lobby ✓');
  const [reason, info] = await clientClosed;
  t.is(reason, 'peer_closed');
  t.like(info, { reason: 'peer_closed', initiator: 'remote', code: 4001, description: 'kicked: idle in lobby ✓', peerReason: 'local_closed' });
  const [, own] = await serverClosed;
  t.like(own, { reason: 'local_closed', code: 4001, description: 'kicked: idle in lobby ✓' });
  t.is(own.peerReason, undefined);
  const serverRecord = await log.waitFor((e) => e.name === 'kcp:connection_closed');
  t.like(serverRecord, { reason: 'local_closed', close_code: 4001, close_text: 'kicked: idle in lobby ✓' });
  t.false('peer_reason' in serverRecord);
  const clientRecord = await clientLog.waitFor((e) => e.name === 'kcp:connection_closed');
  t.like(clientRecord, { reason: 'peer_closed', peer_reason: 'local_closed', close_code: 4001, close_text: 'kicked: idle in lobby ✓' });
});

test("a client's close code reaches the server; a shutdown, a close without a code and a kick are told apart", async (t) => {
  const { server, address } = await loggedServer(t);
  // The client leaves with a code.
  const a = await established(t, server, address);
  const serverSawA = next(a.conn, 'close');
  a.client.close(1000, 'bye');
  const [reasonA, infoA] = await serverSawA;
  t.is(reasonA, 'peer_closed');
  t.like(infoA, { code: 1000, description: 'bye', peerReason: 'local_closed' });
  // A close without a code: the peer learns it was a close, and nothing more.
  const b = await established(t, server, address);
  const clientSawB = next(b.client, 'close');
  b.conn.close();
  const [, infoB] = await clientSawB;
  t.is(infoB.peerReason, 'local_closed');
  t.false('code' in infoB);
  t.false('description' in infoB);
  // The server shutting down: peerReason shutdown.
  const c = await established(t, server, address);
  const clientSawC = next(c.client, 'close');
  await server.close();
  const [reasonC, infoC] = await clientSawC;
  t.is(reasonC, 'peer_closed');
  t.is(infoC.peerReason, 'shutdown');
  t.false('code' in infoC);
});

test('authenticate refuses with rejectAuth(code): the client gets KcpAuthRejectedError with appCode; a plain refusal has none', async (t) => {
  const { server, address } = await loggedServer(t, {
    authenticate: async (token) => {
      const text = token.toString();
      if (text === 'banned') return kcpwatch.rejectAuth(4003);
      if (text === 'unknown') return false;
      return { player: text };
    },
  });
  const attempt = (token) => kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token, log: false });
  const banned = attempt('banned');
  t.teardown(() => banned.close());
  const error = await t.throwsAsync(banned.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError, code: 'KCP_ERR_AUTH_REJECTED' });
  t.is(error.appCode, 4003);
  t.regex(error.message, /code 4003/);
  const unknown = attempt('unknown');
  t.teardown(() => unknown.close());
  const plain = await t.throwsAsync(unknown.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError });
  t.is(plain.appCode, undefined);
  // An identity object is still an identity, and accepted.
  const accepted = next(server, 'connection');
  const player = attempt('alice');
  t.teardown(() => player.close());
  await player.ready();
  const [conn] = await accepted;
  t.deepEqual(conn.auth, { player: 'alice' });
  for (const bad of [0, 65536, 1.5, '4003']) t.throws(() => kcpwatch.rejectAuth(bad), { instanceOf: kcpwatch.KcpInvalidOptionError });
});

test('raw mode cannot carry a close code: it stays in the closing side\'s info and record', async (t) => {
  const { server, address, log } = await loggedServer(t, { mode: 'raw' });
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw', log: false });
  t.teardown(() => client.close());
  const accepted = next(server, 'connection');
  client.send('hi');
  await next(client, 'message');
  const [conn] = await accepted;
  const closed = next(conn, 'close');
  conn.close(4001, 'kicked');
  const [reason, info] = await closed;
  t.is(reason, 'local_closed');
  t.like(info, { code: 4001, description: 'kicked' });
  t.like(await log.waitFor((e) => e.name === 'kcp:connection_closed'), { close_code: 4001, close_text: 'kicked' });
  t.is(client.state, 'established', 'the raw peer was told nothing');
});

// --- No secret in any output -----------------------------------------------------------------

test('no output of a secure session holds the token or a private key: stdout NDJSON and every format', async (t) => {
  const { mkdtemp, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-secrets-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const formats = ['json', 'ecs', 'ocsf', 'cef', 'rfc5424', 'gelf', 'hec', 'otlp'];
  const outputs = (side) => formats.map((format) => ({ destination: { file: join(dir, `${side}.${format}`) }, format, level: 'debug' }));
  const keys = kcpwatch.generateKeyPair();
  const token = `${TOKEN_MARKER}-${'x'.repeat(40)}`;
  const texts = [];
  const server = kcpwatch.createServer(
    { serverKeys: [keys.privateKey], authenticate: (tok) => tok.toString() === token, log: { outputs: outputs('server'), statsInterval: 0, sampleBurst: 1000, onEvent: (e) => texts.push(JSON.stringify(e)) } },
    (conn) => conn.on('message', (m) => conn.send(m)),
  );
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: keys.publicKey, token, log: { outputs: outputs('client'), statsInterval: 0, onEvent: (e) => texts.push(JSON.stringify(e)) } });
  t.teardown(() => client.close());
  client.send(`${MESSAGE_MARKER} over the session`);
  await next(client, 'message');
  // A wrong token on the way, so a failure record is written too.
  const intruder = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: keys.publicKey, token: `${token}-wrong`, log: false });
  await t.throwsAsync(intruder.ready());
  client.close(4001, 'done');
  await next(client, 'close');
  await server.close();
  // The serve CLI writes canonical NDJSON to stdout: the same lines as the `json` files.
  for (const side of ['server', 'client']) for (const format of formats) texts.push(await readFile(join(dir, `${side}.${format}`), 'utf8'));
  const all = texts.join('\n');
  t.true(all.includes('kcp:connection_established') || all.includes('connection_established'));
  t.true(all.includes(keys.keyId), 'the key id (public) is recorded');
  const secrets = {
    'token': token,
    'token (base64)': Buffer.from(token).toString('base64'),
    'token (hex)': Buffer.from(token).toString('hex'),
    'message': MESSAGE_MARKER,
    'private key (base64)': keys.privateKey.toString('base64'),
    'private key (base64url)': keys.privateKey.toString('base64url'),
    'private key (hex)': keys.privateKey.toString('hex'),
    'private key (raw)': keys.privateKey.toString('latin1'),
  };
  for (const [what, secret] of Object.entries(secrets)) t.false(all.includes(secret), `${what} found in an output`);
  t.false(all.includes(TOKEN_MARKER));
});
