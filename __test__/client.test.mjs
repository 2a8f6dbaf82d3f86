import test from 'ava';
import { EventEmitter } from 'node:events';
import { closedPort, echoServer, kcpwatch, message, next, require, runProcess, until } from './helpers/util.mjs';

test('connect() validates its options', (t) => {
  t.throws(() => kcpwatch.connect({ port: 0 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, conv: -1 }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, mode: 'tls' }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, handshakeTimeout: 0 }), { code: 'KCP_ERR_INVALID_OPTION' });
});

test('raw mode: a chosen conv is used on the wire and seen by the server', async (t) => {
  const { server, address } = await echoServer({ mode: 'raw' });
  const client = kcpwatch.connect({ host: 'localhost', port: address.port, mode: 'raw', conv: 4242 });
  t.is(client.conv, 4242);
  const seen = new Promise((resolve) => server.once('connection', resolve));
  client.send('x');
  const conn = await seen;
  t.is(conn.conv, 4242);
  client.close();
  await server.close();
});

for (const loss of [0.1, 0.3]) {
  test(`1,000 messages arrive exactly once and in order through a relay with ${loss * 100}% loss, jitter, reordering and duplication`, async (t) => {
    const { server, address } = await echoServer({ idleTimeout: 30_000 });
    const relay = await kcpwatch.createRelay({
      target: { host: '127.0.0.1', port: address.port },
      loss,
      delayMs: 5,
      jitterMs: 5,
      reorder: 0.05,
      duplicate: 0.05,
      seed: 7,
    });
    const client = kcpwatch.connect({ host: relay.host, port: relay.port, serverKey: server.publicKey, idleTimeout: 30_000, deadLink: 100 });
    const sent = Array.from({ length: 1000 }, (_, i) => message(i, 2000));
    const received = [];
    client.on('message', (m) => received.push(Buffer.from(m)));
    for (const m of sent) client.send(m);
    await until(client, 'message', () => received.length === sent.length, 60_000);
    t.deepEqual(received, sent);
    t.true(relay.stats().dropped > 0);
    client.close();
    await relay.close();
    await server.close();
  });
}

// --- createClient(): many connections on one client endpoint (one socket, one I/O thread) ---

// Every connection of one client comes from one address and port, so the per-address limits
// and handshake rates (meant for the Internet) are opened up on these servers.
const open = 1_000_000;
const openLimits = {
  maxConnectionsPerIp: open,
  maxConnectionsPerPrefix: open,
  handshakesPerSecondPerIp: open,
  handshakeBurstPerIp: open,
  handshakesPerSecond: open,
  handshakeBurst: open,
};

/** An echo server that records every connection it accepts and every close. */
async function recordingServer(options = {}) {
  const accepted = [];
  const closes = [];
  // Emits 'closed' after each server-side close, for bounded waits on `closes`.
  const watch = new EventEmitter();
  const server = kcpwatch.createServer({ log: { destination: 'none' }, limits: openLimits, ...options }, (conn) => {
    accepted.push(conn);
    conn.on('message', (m) => conn.send(m));
    conn.on('close', (reason) => {
      closes.push(reason);
      watch.emit('closed');
    });
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, address, accepted, closes, watch };
}

/** Message `k` of connection `i`: its identity and sequence number, and a size that varies. */
function tagged(i, k) {
  const buf = Buffer.alloc(8 + ((i * 31 + k * 17) % 200), (i + k) & 0xff);
  buf.writeUInt32LE(i, 0);
  buf.writeUInt32LE(k, 4);
  return buf;
}

/** Sends `count` tagged messages on connection `i` and resolves with what came back. */
async function echoes(conn, i, count, from = 0) {
  const received = [];
  const onMessage = (m) => received.push(Buffer.from(m));
  conn.on('message', onMessage);
  for (let k = from; k < from + count; k++) conn.send(tagged(i, k));
  try {
    await until(conn, 'message', () => received.length >= count, 30_000);
  } finally {
    conn.off('message', onMessage);
  }
  return received;
}

test('createClient() and client.connect() validate their options with typed errors', async (t) => {
  const invalid = { instanceOf: kcpwatch.KcpInvalidOptionError, code: 'KCP_ERR_INVALID_OPTION' };
  t.throws(() => kcpwatch.createClient(), invalid);
  t.throws(() => kcpwatch.createClient({ port: 0 }), invalid);
  t.throws(() => kcpwatch.createClient({ host: '', port: 1, mode: 'raw' }), invalid);
  t.throws(() => kcpwatch.createClient({ host: 42, port: 1, mode: 'raw' }), invalid);
  t.throws(() => kcpwatch.createClient({ port: 1, mode: 'tls' }), invalid);
  t.throws(() => kcpwatch.createClient({ port: 1, maxConnections: 0 }), invalid);
  t.throws(() => kcpwatch.createClient({ port: 1, maxConnections: 1.5 }), invalid);
  t.throws(() => kcpwatch.createClient({ port: 1, handshakeTimeout: 0 }), invalid);
  t.throws(() => kcpwatch.createClient({ port: 1, preset: 'turbo' }), invalid);
  const raw = kcpwatch.createClient({ port: await closedPort(), mode: 'raw' });
  t.is(raw.maxConnections, 10_000, 'the default bound');
  t.throws(() => raw.connect({ token: 'x' }), invalid);
  t.throws(() => raw.connect({ conv: -1 }), invalid);
  t.throws(() => raw.connect({ conv: 2 ** 32 }), invalid);
  t.throws(() => raw.connect(null), invalid);
  const secure = kcpwatch.createClient({ port: await closedPort(), serverKey: kcpwatch.generateKeyPair().publicKey });
  t.teardown(() => Promise.all([raw.close(), secure.close()]));
  t.throws(() => secure.connect({ conv: 7 }), invalid);
  t.throws(() => secure.connect({ token: Buffer.alloc(1025) }), invalid);
  t.throws(() => secure.connect({ token: 42 }), invalid);
  t.is(raw.connectionCount + secure.connectionCount, 0, 'nothing was opened by a refused connect');
  // A raw conv is one session per (address, conv) at the server: two connections of one client
  // cannot share it.
  const first = raw.connect({ conv: 99 });
  t.throws(() => raw.connect({ conv: 99 }), { instanceOf: kcpwatch.KcpConnectError, code: 'KCP_ERR_CONNECT' });
  t.is(first.conv, 99);
  await Promise.all([raw.close(), secure.close()]);
  t.is(first.state, 'closed');
  t.is(first.closeInfo.reason, 'shutdown');
  t.is(raw.address(), null);
  const closed = { instanceOf: kcpwatch.KcpClosedError, code: 'KCP_ERR_CLOSED' };
  t.throws(() => raw.connect(), closed);
  t.throws(() => secure.connect(), closed);
  const final = raw.stats();
  t.is(final.connections, 0, 'closed: the totals it ended with');
  t.is(final.activeOpens, 1);
});

for (const mode of ['secure', 'raw']) {
  test(`${mode} mode: 200 connections through one client each echo their own messages, and the server sees 200 sessions from one source port`, async (t) => {
    const { server, address, accepted } = await recordingServer({ mode, maxConnections: 1000 });
    const client = kcpwatch.createClient({ host: '127.0.0.1', port: address.port, mode, ...(mode === 'secure' ? { serverKey: server.publicKey } : {}) });
    t.teardown(() => Promise.all([client.close(), server.close()]));
    t.is(client.mode, mode);
    const local = client.address();
    const conns = Array.from({ length: 200 }, () => client.connect());
    t.is(client.connectionCount, 200);
    // Every connection is on the client's one socket.
    t.deepEqual([...new Set(conns.map((c) => c.localPort))], [local.port]);
    t.is(new Set(conns.map((c) => c.id)).size, 200);
    if (mode === 'raw') t.is(new Set(conns.map((c) => c.conv)).size, 200, 'a distinct random conv each');
    const results = await Promise.all(conns.map((c, i) => echoes(c, i, 10)));
    results.forEach((received, i) => {
      t.deepEqual(received, Array.from({ length: 10 }, (_, k) => tagged(i, k)), `connection ${i}`);
    });
    t.true(conns.every((c) => c.state === 'established'));
    // The server: 200 distinct sessions, all from the client's one address and port.
    t.is(accepted.length, 200);
    t.is(server.connectionCount, 200);
    t.deepEqual([...new Set(accepted.map((c) => `${c.remoteAddress}:${c.remotePort}`))], [`127.0.0.1:${local.port}`]);
    t.is(new Set(accepted.map((c) => c.conv)).size, 200);
    const byNumber = (a, b) => a - b;
    t.deepEqual(accepted.map((c) => c.conv).sort(byNumber), conns.map((c) => c.conv).sort(byNumber));
    const stats = client.stats();
    t.is(stats.connections, 200);
    t.is(stats.activeOpens, 200);
    await client.close();
    await server.close();
  });
}

test('closing the client closes every connection; in secure mode the server sees peer_closed for each', async (t) => {
  const { server, address, closes, watch } = await recordingServer();
  const client = kcpwatch.createClient({ port: address.port, serverKey: server.publicKey });
  t.teardown(() => Promise.all([client.close(), server.close()]));
  const conns = Array.from({ length: 50 }, () => client.connect());
  await Promise.all(conns.map((c) => c.ready()));
  const reasons = [];
  for (const c of conns) c.on('close', (reason) => reasons.push(reason));
  let clientClosed = false;
  client.on('close', () => {
    clientClosed = true;
    t.is(reasons.length, 50, "every connection's close fires before the client's");
  });
  await client.close();
  t.true(clientClosed);
  t.deepEqual([...new Set(reasons)], ['shutdown']);
  t.true(conns.every((c) => c.state === 'closed'));
  t.is(client.connectionCount, 0);
  t.is(client.address(), null);
  // Each DISCONNECT ends the server's session at once.
  await until(watch, 'closed', () => closes.length === 50);
  t.deepEqual([...new Set(closes)], ['peer_closed']);
  t.is(server.connectionCount, 0);
  t.throws(() => client.connect(), { code: 'KCP_ERR_CLOSED' });
  await client.close(); // idempotent
  await server.close();
});

test('raw mode: closing the client ends every connection; the server, told nothing by raw KCP, sees each idle out', async (t) => {
  const { server, address, closes, watch } = await recordingServer({ mode: 'raw', idleTimeout: 1000 });
  const client = kcpwatch.createClient({ port: address.port, mode: 'raw' });
  t.teardown(() => Promise.all([client.close(), server.close()]));
  const conns = Array.from({ length: 20 }, () => client.connect());
  await Promise.all(conns.map((c, i) => echoes(c, i, 1)));
  await client.close();
  t.true(conns.every((c) => c.closeInfo?.reason === 'shutdown'));
  await until(watch, 'closed', () => closes.length === 20);
  t.deepEqual([...new Set(closes)], ['idle_timeout']);
  await server.close();
});

test('maxConnections bounds a client: one more is refused with KcpConnectionLimitError until one closes', async (t) => {
  const { server, address } = await recordingServer({ mode: 'raw' });
  const client = kcpwatch.createClient({ port: address.port, mode: 'raw', maxConnections: 3, linger: 0 });
  t.teardown(() => Promise.all([client.close(), server.close()]));
  t.is(client.maxConnections, 3);
  const conns = [client.connect(), client.connect(), client.connect()];
  const err = t.throws(() => client.connect(), { instanceOf: kcpwatch.KcpConnectionLimitError });
  t.is(err.code, 'KCP_ERR_CONNECTION_LIMIT');
  t.true(err instanceof kcpwatch.KcpError);
  t.regex(err.message, /maxConnections \(3\)/);
  t.is(client.connectionCount, 3);
  // A closing connection still holds its place; a closed one frees it.
  conns[0].close();
  t.throws(() => client.connect(), { code: 'KCP_ERR_CONNECTION_LIMIT' });
  await next(conns[0], 'close');
  const again = client.connect();
  t.is(client.connectionCount, 3);
  const [echoed] = await echoes(again, 7, 1);
  t.deepEqual(echoed, tagged(7, 0));
  await client.close();
  await server.close();
});

test('a failed handshake (refused token, or timed out) ends that connection only; the others keep echoing', async (t) => {
  const { server, address } = await recordingServer({
    // 'hang' is never answered, so the client's shorter handshakeTimeout ends it.
    authenticate: (token) => (token.toString() === 'hang' ? new Promise(() => undefined) : token.toString() === 'ok'),
    authTimeout: 30_000,
  });
  const client = kcpwatch.createClient({ port: address.port, serverKey: server.publicKey, handshakeTimeout: 1000 });
  t.teardown(() => Promise.all([client.close(), server.close()]));
  const good = Array.from({ length: 20 }, () => client.connect({ token: 'ok' }));
  const rejected = client.connect({ token: 'bad' });
  const timedOut = client.connect({ token: 'hang' });
  const errors = [];
  rejected.on('error', (e) => errors.push(e));
  await Promise.all(good.map((c) => c.ready()));
  await t.throwsAsync(rejected.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError, code: 'KCP_ERR_AUTH_REJECTED' });
  await t.throwsAsync(timedOut.ready(), { instanceOf: kcpwatch.KcpHandshakeTimeoutError, code: 'KCP_ERR_HANDSHAKE_TIMEOUT' });
  t.is(rejected.closeInfo.reason, 'connect_failed');
  t.is(timedOut.closeInfo.reason, 'connect_failed');
  t.is(errors.length, 1);
  t.is(client.connectionCount, 20, 'the failed ones left the client');
  // The others are untouched: established, and still echoing after both failures.
  t.true(good.every((c) => c.state === 'established'));
  const results = await Promise.all(good.map((c, i) => echoes(c, i, 5)));
  results.forEach((received, i) => t.deepEqual(received, Array.from({ length: 5 }, (_, k) => tagged(i, k))));
  // And the client can still open more.
  const late = client.connect({ token: 'ok' });
  await late.ready();
  t.deepEqual(await echoes(late, 99, 2), [tagged(99, 0), tagged(99, 1)]);
  await client.close();
  await server.close();
});

test('an idle client does not keep the process alive; connect() still closes its endpoint with its connection', async (t) => {
  const port = await closedPort();
  const script = `
    const { createClient, connect } = require(${JSON.stringify(require.resolve('../../index.js'))});
    const serverKey = ${JSON.stringify(kcpwatch.generateKeyPair().publicKey.toString('base64'))};
    createClient({ port: ${port}, serverKey });
    const used = createClient({ port: ${port}, serverKey, handshakeTimeout: 200 });
    used.connect().ready().catch((e) => console.log(e.code));
    connect({ port: ${port}, serverKey, handshakeTimeout: 200 }).on('close', (r) => console.log(r));
  `;
  const { code, out } = await runProcess(t, process.execPath, ['-e', script], { timeoutMs: 20_000 });
  t.is(code, 0);
  t.deepEqual(out.trim().split('\n').sort(), ['KCP_ERR_HANDSHAKE_TIMEOUT', 'connect_failed']);
});

test('bench/node-load.mjs drives a server through createClient, raw and secure, and checks every echo', async (t) => {
  const driver = require.resolve('../../bench/node-load.mjs');
  for (const mode of ['raw', 'secure']) {
    const { server, address } = await recordingServer({ mode });
    t.teardown(() => server.close());
    const args = ['--addr', `127.0.0.1:${address.port}`, '--conns', '40', '--size', '100', '--duration-ms', '300', '--window', '2', '--mode', mode, '--clients', '2'];
    if (mode === 'secure') args.push('--server-key', server.publicKey);
    const closed = await runProcess(t, process.execPath, [driver, ...args], { timeoutMs: 30_000 });
    t.is(closed.code, 0, closed.out + closed.err);
    const result = JSON.parse(closed.out.trim());
    t.true(result.ok);
    t.true(result.messages > 0);
    t.deepEqual(Object.keys(result), ['ok', 'messages', 'elapsed_ms', 'msgs_per_sec', 'p50_us', 'p99_us', 'max_us']);
    t.true(result.p50_us <= result.p99_us && result.p99_us <= result.max_us);
    // Paced: 40 connections at 20 messages per second for 300 ms.
    const paced = await runProcess(t, process.execPath, [driver, ...args, '--rate', '20'], { timeoutMs: 30_000 });
    t.is(paced.code, 0, paced.out + paced.err);
    const p = JSON.parse(paced.out.trim());
    t.true(p.ok && p.messages >= 40 && p.messages <= 40 * 7, `${p.messages} messages`);
    await server.close();
  }
  const usage = await runProcess(t, process.execPath, [driver, '--addr', '127.0.0.1:1', '--token', 'x']);
  t.is(usage.code, 2);
  t.regex(usage.err, /--token needs --mode secure/);
});
