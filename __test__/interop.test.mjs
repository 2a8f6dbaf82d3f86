// Against a real kcp-go peer (github.com/xtaci/kcp-go/v5), with the same knobs on both sides
// (the `game` preset: nodelay 1, interval 10, resend 2, nc 1, windows 256/256, mtu 1200).
// Raw mode both directions; secure mode with `kcpgo secure-client`, a client written from
// docs/protocol.md alone around kcp-go's KCP engine (interop/kcp-go/secure.go).
import test from 'ava';
import { requireKcpgo, runKcpgo, startKcpgoServer } from './helpers/kcpgo.mjs';
import { echoServer, kcpwatch, next, until } from './helpers/util.mjs';

test.beforeEach((t) => {
  requireKcpgo(t);
});

test('a kcp-go client echoes 1,000 messages through a kcpwatch server', async (t) => {
  const { server, address } = await echoServer({ mode: 'raw', preset: 'game' });
  t.teardown(() => server.close());
  const connections = [];
  server.on('connection', (c) => connections.push(c));
  const r = await runKcpgo(t, ['client', '--addr', `127.0.0.1:${address.port}`, '--count', '1000', '--min-size', '1', '--max-size', '1000', '--seed', '11']);
  t.is(r.code, 0, r.out + r.err);
  const result = JSON.parse(r.out.trim().split('\n').at(-1) || '{}');
  t.true(result.ok);
  t.is(result.received, 1000);
  t.is(result.bytes_received, result.bytes_sent);
  t.is(connections.length, 1);
  t.is(connections[0].conv, result.conv);
  t.is(`${connections[0].remoteAddress}:${connections[0].remotePort}`, result.local);
  await server.close();
});

test('a kcpwatch client echoes 1,000 messages through a kcp-go server', async (t) => {
  const peer = await startKcpgoServer(t);
  t.teardown(() => peer.stop());
  const client = kcpwatch.connect({ host: peer.host, port: peer.port, mode: 'raw', preset: 'game' });
  const sent = Array.from({ length: 1000 }, (_, i) => {
    const size = 1 + ((i * 7919) % 1000);
    const m = Buffer.alloc(size, (i * 31) & 0xff);
    if (size >= 4) m.writeUInt32LE(i, 0);
    return m;
  });
  const received = [];
  client.on('message', (m) => received.push(Buffer.from(m)));
  for (const m of sent) client.send(m);
  await until(client, 'message', () => received.length === sent.length, 30_000);
  t.deepEqual(received, sent);
  client.close();
  await new Promise((r) => client.once('close', r));
  const summary = await peer.stop();
  const closed = summary
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((e) => e.conv === client.conv);
  t.truthy(closed, summary);
  const bytes = sent.reduce((n, m) => n + m.length, 0);
  t.is(closed.bytes_in, bytes);
  t.is(closed.bytes_out, bytes);
});

/** Runs `kcpgo secure-client` against a listening server, pinning its public key; resolves with its exit code and JSON line. */
async function secureClient(t, server, args = []) {
  const { port } = server.address();
  const r = await runKcpgo(t, ['secure-client', '--addr', `127.0.0.1:${port}`, '--server-key', server.publicKey, '--preset', 'game', ...args]);
  const line = r.out.trim().split('\n').at(-1) || '{}';
  return { ...r, result: JSON.parse(line), why: r.out + r.err };
}

test('a secure-mode client written from docs/protocol.md echoes 1,000 messages through a kcpwatch server', async (t) => {
  const { server, address } = await echoServer({ mode: 'secure', log: false, preset: 'game' });
  t.teardown(() => server.close());
  t.is(server.mode, 'secure');
  const connections = [];
  const closes = [];
  server.on('connection', (c) => {
    connections.push(c);
    const closed = next(c, 'close');
    closed.catch(() => {}); // awaited below; a test failing before that must not leave it unhandled
    closes.push(closed);
  });
  // Up to 1200 bytes: with the engine MTU at 1200 - 29, the larger messages travel as two
  // fragments each way.
  const r = await secureClient(t, server, ['--count', '1000', '--min-size', '1', '--max-size', '1200', '--seed', '12']);
  t.is(r.code, 0, r.why);
  t.true(r.result.ok, r.why);
  t.is(r.result.mode, 'secure');
  t.is(r.result.received, 1000);
  t.is(r.result.bytes_received, r.result.bytes_sent);
  t.deepEqual(r.result.dropped ?? {}, {}, 'no session datagram from the server failed its tag or replay check');
  t.is(connections.length, 1);
  const [conn] = connections;
  t.is(conn.conv, r.result.conv);
  t.is(`${conn.remoteAddress}:${conn.remotePort}`, r.result.local);
  t.is(conn.remotePort, Number(r.result.local.split(':').at(-1)));
  // The client's DISCONNECT (local_closed) ends the server side at once.
  const [reason, info] = await closes[0];
  t.is(reason, 'peer_closed');
  t.is(info.initiator, 'remote');
  await server.close();
});

test('the Go secure client (mtu 1200) and a kcpwatch server with mtu 9000 agree 1200: 5000-byte messages echo, nothing truncated', async (t) => {
  const { server } = await echoServer({ mode: 'secure', log: false, preset: 'game', mtu: 9000 });
  t.teardown(() => server.close());
  const r = await secureClient(t, server, ['--count', '50', '--min-size', '4000', '--max-size', '5000', '--seed', '13']);
  t.is(r.code, 0, r.why);
  t.true(r.result.ok, r.why);
  t.is(r.result.received, 50);
  t.is(r.result.bytes_received, r.result.bytes_sent);
  t.is(server.stats().truncated, 0);
  await server.close();
});

test('a secure-mode kcp-go client with a wrong token gets auth_rejected; with the right one it echoes', async (t) => {
  const tokens = [];
  const { server, address } = await echoServer({
    mode: 'secure',
    log: false,
    preset: 'game',
    authenticate: (token) => {
      tokens.push(token.toString());
      return token.toString() === 'let-me-in';
    },
  });
  t.teardown(() => server.close());
  const connections = [];
  server.on('connection', (c) => connections.push(c));

  const refused = await secureClient(t, server, ['--count', '10', '--token', 'let-me-out']);
  t.is(refused.code, 1, refused.why);
  t.false(refused.result.ok);
  t.is(refused.result.reason, 'auth_rejected', refused.why);
  t.regex(refused.result.error, /auth_rejected/);
  t.is(connections.length, 0);

  const accepted = await secureClient(t, server, ['--count', '200', '--max-size', '1000', '--token', 'let-me-in']);
  t.is(accepted.code, 0, accepted.why);
  t.true(accepted.result.ok);
  t.is(accepted.result.received, 200);
  t.deepEqual(tokens, ['let-me-out', 'let-me-in']);
  t.is(connections.length, 1);
  t.is(`${connections[0].remoteAddress}:${connections[0].remotePort}`, accepted.result.local);
  await server.close();
});
