// Against the reference C implementation: skywind3000's ikcp.c (1.7, from the checksum-pinned
// kcp==0.1.6 sdist; interop/ikcp), driven by interop/ikcp/client.c with the knobs a typical
// ikcp game client uses: ikcp_wndsize(128, 256), ikcp_nodelay(1, 10, 2, 1), the default
// 1400-byte MTU. It queues every message at once, so its first flush sends 128 segments before
// it has heard our window.
import test from 'ava';
import { requireIkcp, runIkcp } from './helpers/ikcp.mjs';
import { echoServer } from './helpers/util.mjs';

test.beforeEach((t) => {
  requireIkcp(t);
});

/** A raw echo server; resolves with it, its port and the connections it accepted. */
async function server(t, options = {}) {
  const { server, address } = await echoServer({ mode: 'raw', ...options });
  t.teardown(() => server.close());
  const connections = [];
  server.on('connection', (c) => connections.push(c));
  return { server, port: address.port, connections };
}

for (const [title, options] of [
  ['default options', {}],
  // With rcvWnd 32 the old guard refused every datagram holding a segment past the window,
  // the opening one included: the client was never served.
  ['rcvWnd: 32', { rcvWnd: 32, maxMessageSize: 16_384 }],
]) {
  test(`an ikcp client echoes 500 small messages sent at once through a raw server with ${title}`, async (t) => {
    const { server: s, port, connections } = await server(t, options);
    // Up to 16 bytes: about 50 segments to a datagram, so the opening datagram alone reaches
    // past a 32-segment window.
    const r = await runIkcp(t, port, ['--count', '500', '--max-size', '16', '--timeout-ms', '20000']);
    t.is(r.code, 0, r.why);
    t.true(r.result.ok, r.why);
    t.is(r.result.received, 500);
    t.is(r.result.mismatched, 0);
    t.is(r.result.bytes_received, r.result.bytes_sent);
    t.is(connections.length, 1);
    t.is(connections[0].conv, r.result.conv);
    t.is(`${connections[0].remoteAddress}:${connections[0].remotePort}`, r.result.local);
    await s.close();
  });
}

test('an ikcp client echoes larger messages, fragmented, through a raw server with rcvWnd: 32', async (t) => {
  const { server: s, port } = await server(t, { rcvWnd: 32, maxMessageSize: 16_384 });
  const r = await runIkcp(t, port, ['--count', '200', '--max-size', '6000', '--timeout-ms', '20000']);
  t.is(r.code, 0, r.why);
  t.true(r.result.ok, r.why);
  t.is(r.result.received, 200);
  await s.close();
});

test('empty messages from an ikcp peer are delivered, and echoed back as empty messages', async (t) => {
  // ikcp sends an empty message as a PUSH of length 0 and delivers one as a 0-byte message;
  // kcpwatch does the same both ways (README, "Messages").
  const { server: s, port, connections } = await server(t);
  const sizes = [];
  s.on('connection', (c) => c.on('message', (m) => sizes.push(m.length)));
  const r = await runIkcp(t, port, ['--count', '50', '--max-size', '64', '--empty-every', '5', '--timeout-ms', '10000']);
  t.is(r.code, 0, r.why);
  t.true(r.result.ok, r.why);
  t.is(r.result.empty_sent, 10);
  t.is(r.result.empty_received, 10, 'every empty message came back empty');
  t.is(r.result.mismatched, 0);
  t.is(sizes.length, 50);
  t.is(sizes.filter((n) => n === 0).length, 10);
  t.is(connections.length, 1);
  await s.close();
});
