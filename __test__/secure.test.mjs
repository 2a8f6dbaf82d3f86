// Secure mode through the public API (docs/protocol.md): the handshake, `authenticate`, typed
// handshake failures, the records, and the limits; the protocol core's own tests
// (crates/kcpwatch-proto/tests/secure_mode.rs) cover every rule on a simulated network.
import test from 'ava';
import { createHash } from 'node:crypto';
import { EventLog, closedPort, kcpwatch, message, next, udpSocket, until } from './helpers/util.mjs';

const quiet = { destination: 'none', sampleBurst: 1000 };

async function secureServer(options = {}) {
  const log = new EventLog();
  const server = kcpwatch.createServer({ log: { ...quiet, onEvent: log.push }, ...options }, (conn) => {
    conn.on('message', (m) => conn.send(m));
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, address, log };
}

test('secure is the default: the client connects, gets the server-assigned conv and echoes', async (t) => {
  const { server, address, log } = await secureServer();
  t.is(server.mode, 'secure');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.is(client.state, 'connecting');
  t.is(client.conv, 0);
  // Messages sent during the handshake leave once it completes.
  const received = [];
  client.on('message', (m) => received.push(Buffer.from(m)));
  const sent = Array.from({ length: 200 }, (_, i) => message(i, 3000));
  for (const m of sent) client.send(m);
  const [conn] = await next(server, 'connection');
  await client.ready();
  t.is(client.state, 'established');
  t.is(client.conv, conn.conv);
  t.not(conn.conv, 0);
  t.is(conn.remotePort, client.localPort);
  await until(client, 'message', () => received.length === sent.length);
  t.deepEqual(received, sent);
  const started = log.records.find((e) => e.name === 'kcp:listener_started');
  t.is(started.mode, 'secure');
  t.deepEqual(
    log.records.filter((e) => e.uid === conn.id).map((e) => (e.name === 'kcp:connection_state_updated' ? `${e.prev_state}->${e.state}` : e.name)),
    ['kcp:connection_attempted', 'attempted->handshaking', 'handshaking->established', 'kcp:connection_established'],
  );
  const stats = server.stats();
  t.true(stats.cookiesSent >= 1);
  t.is(stats.connections, 1);
  client.close();
  const closed = await log.waitFor((e) => e.name === 'kcp:connection_closed');
  t.is(closed.reason, 'peer_closed', 'the DISCONNECT ends the server side at once');
  t.is(closed.initiator, 'remote');
  await server.close();
});

test('authenticate sees the token and the validated peer; a refusal is a typed error and no session', async (t) => {
  const seen = [];
  const { server, address, log } = await secureServer({
    authenticate: async (token, peer) => {
      seen.push({ token: token.toString(), peer });
      return token.toString() === 'let-me-in';
    },
  });
  const refused = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: 'wrong' });
  const error = await t.throwsAsync(refused.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError, code: 'KCP_ERR_AUTH_REJECTED' });
  t.regex(error.message, /rejected the token/);
  t.is(refused.state, 'closed');
  t.is(refused.closeInfo.reason, 'connect_failed');
  t.is(server.connectionCount, 0);
  t.is(seen[0].token, 'wrong');
  t.is(seen[0].peer.remoteAddress, '127.0.0.1');
  t.is(seen[0].peer.remotePort, refused.localPort);
  t.regex(seen[0].peer.id, /^K[0-9A-Za-z]{22}$/);
  const failed = await log.waitFor((e) => e.name === 'kcp:connection_failed');
  t.is(failed.reason, 'auth_rejected');
  t.is(failed.rule, 'authenticate');
  t.false('trigger' in failed, 'no datagram was refused: the application was');
  t.is(failed.uid, seen[0].peer.id, 'the attempt and the decision share the uid');

  const accepted = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: Buffer.from('let-me-in') });
  await accepted.ready();
  accepted.send('hi');
  const [echo] = await next(accepted, 'message');
  t.is(echo.toString(), 'hi');
  const stats = server.stats();
  t.is(stats.authRequests, 2);
  t.is(stats.failedAuthRejected, 1);
  accepted.close();
  await server.close();
});

test('a throwing or silent authenticate refuses, the silent one after authTimeout', async (t) => {
  const { server, address } = await secureServer({
    authTimeout: 300,
    authenticate: (token) => {
      if (token.toString() === 'throw') throw new Error('database down');
      return new Promise(() => {});
    },
  });
  const errors = [];
  server.on('error', (e) => errors.push(e));
  for (const token of ['throw', 'hang']) {
    const c = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token });
    await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError }, token);
  }
  t.is(errors.length, 1);
  t.is(errors[0].code, 'KCP_ERR_AUTHENTICATE');
  t.is(errors[0].cause.message, 'database down');
  t.is(server.stats().pendingAuth, 0);
  await server.close();
});

test('a server that never answers fails the handshake with KcpHandshakeTimeoutError', async (t) => {
  const port = await closedPort();
  // A silent peer (a bound socket that reads nothing) rather than a closed port.
  const silent = await udpSocket();
  const c = kcpwatch.connect({ host: '127.0.0.1', port: silent.address().port, handshakeTimeout: 400, serverKey: kcpwatch.generateKeyPair().publicKey });
  const onError = next(c, 'error');
  await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpHandshakeTimeoutError, code: 'KCP_ERR_HANDSHAKE_TIMEOUT' });
  const [error] = await onError;
  t.is(error.code, 'KCP_ERR_HANDSHAKE_TIMEOUT');
  t.true(port > 0);
  silent.close();
});

test('a full server refuses with KcpServerFullError and logs the rule', async (t) => {
  const { server, address, log } = await secureServer({ limits: { maxConnectionsPerIp: 1 } });
  const first = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  await first.ready();
  const second = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  await t.throwsAsync(second.ready(), { instanceOf: kcpwatch.KcpServerFullError, code: 'KCP_ERR_SERVER_FULL' });
  const failed = await log.waitFor((e) => e.name === 'kcp:connection_failed');
  t.like(failed, { reason: 'capacity', trigger: 'over_limit', rule: 'max_connections_per_ip', src_port: second.localPort });
  t.is(server.stats().failedCapacity, 1);
  t.is(server.stats().rejectsSent, 1);
  first.close();
  await server.close();
});

test('handshake floods from one source are rate-limited silently and counted', async (t) => {
  const { server, address, log } = await secureServer({ limits: { handshakesPerSecondPerIp: 1, handshakeBurstPerIp: 2 } });
  const sock = await udpSocket();
  let replies = 0;
  sock.on('message', () => replies++);
  // Version 2 HELLOs (docs/protocol.md): type, version, suite, the key id of the server's key,
  // a nonce; the server answers a zero cookie statelessly, without reading the Noise part.
  const keyId = createHash('sha256').update(Buffer.from(server.publicKey, 'base64')).digest().subarray(0, 4);
  for (let i = 0; i < 10; i++) {
    const hello = Buffer.alloc(97);
    hello[0] = 1;
    hello[1] = 2;
    hello[2] = 1;
    keyId.copy(hello, 4);
    hello.writeUInt32LE(i + 1, 8);
    sock.send(hello, address.port, '127.0.0.1');
  }
  const failures = await log.waitForCount((e) => e.name === 'kcp:connection_failed', 8);
  const stats = server.stats();
  t.is(stats.cookiesSent, 2);
  t.is(stats.droppedRateLimited, 8);
  t.is(stats.failedRateLimited, 8);
  t.true(stats.bytesSentUnvalidated <= stats.bytesReceivedUnvalidated);
  t.true(failures.every((e) => e.reason === 'rate_limited' && e.rule === 'handshake_rate_per_ip'));
  t.true(replies <= 2);
  sock.close();
  await server.close();
});

test('a raw KCP client cannot talk to a secure server, and options that need the other mode are refused', async (t) => {
  const { server, log } = await secureServer();
  const address = server.address();
  const raw = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw', conv: 7 });
  raw.send('plain kcp');
  const dropped = await log.waitFor((e) => e.name === 'kcp:packet_dropped');
  t.is(dropped.src_port, raw.localPort);
  t.is(server.connectionCount, 0);
  raw.close();
  t.throws(() => kcpwatch.createServer({ mode: 'raw', authenticate: () => true }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ port: 9, mode: 'raw', token: 'x' }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ port: 9, token: Buffer.alloc(1025) }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ limits: { maxConnectionsPerIp: -1 } }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ limits: { perIp: 3 } }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ mode: 'tls' }), { code: 'KCP_ERR_INVALID_OPTION' });
  await server.close();
});
