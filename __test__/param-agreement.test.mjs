// Secure mode agrees the KCP parameters a message depends on (docs/protocol.md, "KCP
// parameters"): each side states its receive window, its maxMessageSize and whether it is in
// stream mode, so conn.maxMessageSize is a message the peer can always receive, and a
// stream/message mismatch is refused in the handshake with a clear error.
import test from 'ava';
import { kcpwatch, poll } from './helpers/util.mjs';

/** A secure server whose records and connections are collected. */
async function server(t, options = {}) {
  const records = [];
  const connections = [];
  const s = kcpwatch.createServer({ log: { destination: 'none', onEvent: (e) => records.push(e) }, ...options });
  s.on('connection', (c) => connections.push(c));
  const address = await s.listen(0, '127.0.0.1');
  t.teardown(() => s.close({ force: true }));
  return { s, port: address.port, records, connections };
}

function client(t, port, s, options = {}) {
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: { destination: 'none' }, ...options });
  t.teardown(() => c.close());
  return c;
}

function collect(conn) {
  const got = [];
  conn.on('message', (m) => got.push(Buffer.from(m)));
  return got;
}

const failures = (records) => records.filter((r) => r.name === 'kcp:connection_failed').map((r) => `${r.reason}/${r.rule}`);
const closes = (records) => records.filter((r) => r.name === 'kcp:connection_closed').map((r) => r.reason);

// The game preset's MSS in secure mode: 1200 - 29 (session framing) - 24 (KCP header).
const MSS = 1147;

test("a server never sends a client more fragments than the client's receive window holds: 65,536 bytes to rcvWnd 32 is refused at send(), and what follows arrives", async (t) => {
  const { s, port, records, connections } = await server(t);
  const c = client(t, port, s, { rcvWnd: 32, maxMessageSize: 32 * MSS });
  const got = collect(c);
  await c.ready();
  await poll(() => connections.length === 1, 5000, 'the server connection');
  const [conn] = connections;
  t.is(conn.maxMessageSize, 32 * MSS, "the server's ceiling follows the client's window");
  const error = t.throws(() => conn.send(Buffer.alloc(65_536, 1)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  t.regex(error.message, /36704/);
  const largest = Buffer.alloc(conn.maxMessageSize, 2);
  t.true(conn.send(largest));
  conn.send('small');
  await poll(() => got.length === 2, 10_000, 'the largest message and "small"');
  t.deepEqual(got, [largest, Buffer.from('small')]);
  t.is(c.state, 'established');
  t.deepEqual(closes(records), []);
});

test("a client never sends a server more fragments than the server's receive window holds (server rcvWnd 32)", async (t) => {
  const { s, port, connections } = await server(t, { rcvWnd: 32, maxMessageSize: 32 * MSS });
  const c = client(t, port, s);
  await c.ready();
  t.is(c.maxMessageSize, 32 * MSS, "final once ready(): the server's window");
  t.throws(() => c.send(Buffer.alloc(65_536, 1)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  const largest = Buffer.alloc(c.maxMessageSize, 3);
  t.true(c.send(largest));
  c.send('small');
  await poll(() => connections.length === 1, 5000, 'the server connection');
  const got = collect(connections[0]);
  await poll(() => got.length === 2, 10_000, 'the largest message and "small"');
  t.deepEqual(got, [largest, Buffer.from('small')]);
});

test("a server allowing 100,000-byte messages never sends more than the default client's 65,536: send(100000) throws instead of killing the client's connection", async (t) => {
  const { s, port, records, connections } = await server(t, { mtu: 9000, maxMessageSize: 100_000 });
  const c = client(t, port, s);
  const got = collect(c);
  await c.ready();
  await poll(() => connections.length === 1, 5000, 'the server connection');
  const [conn] = connections;
  t.is(conn.maxMessageSize, 65_536);
  t.throws(() => conn.send(Buffer.alloc(100_000, 1)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  const largest = Buffer.alloc(65_536, 4);
  t.true(conn.send(largest));
  conn.send('after');
  await poll(() => got.length === 2, 10_000, 'the 65,536-byte message and "after"');
  t.deepEqual(got, [largest, Buffer.from('after')]);
  t.is(c.state, 'established');
  t.deepEqual(closes(records), []);
});

for (const [clientStream, serverStream] of [
  [true, false],
  [false, true],
]) {
  test(`stream: ${clientStream} client and stream: ${serverStream} server: the handshake is refused with KcpStreamMismatchError naming the option, and recorded`, async (t) => {
    const { s, port, records, connections } = await server(t, { stream: serverStream });
    const c = client(t, port, s, { stream: clientStream });
    c.send(Buffer.alloc(5000, 5));
    const error = await t.throwsAsync(c.ready());
    t.true(error instanceof kcpwatch.KcpStreamMismatchError, `${error.constructor.name} ${error.code} ${error.message}`);
    t.is(error.code, 'KCP_ERR_STREAM_MISMATCH');
    t.regex(error.message, /`stream: true` is set on one side only/);
    await poll(() => failures(records).length === 1, 5000, "the server's record");
    t.deepEqual(failures(records), ['stream_mismatch/hello_stream']);
    const [failed] = records.filter((r) => r.name === 'kcp:connection_failed');
    t.is(failed.trigger, 'bad_cmd');
    t.is(connections.length, 0);
    t.is(s.stats().failedStreamMismatch, 1);
  });
}

test('a message sent before ready() that exceeds the ceiling the handshake agrees fails the connection with KcpMessageTooLargeError, and nothing sent meanwhile arrives', async (t) => {
  const { s, port, connections } = await server(t, { rcvWnd: 32, maxMessageSize: 32 * MSS });
  const atServer = [];
  s.on('connection', (conn) => conn.on('message', (m) => atServer.push(m)));
  const c = client(t, port, s);
  t.is(c.maxMessageSize, 65_536, "before ready(): the client's own");
  c.send('first');
  c.send(Buffer.alloc(60_000, 6));
  const error = await t.throwsAsync(c.ready());
  t.true(error instanceof kcpwatch.KcpMessageTooLargeError, `${error.constructor.name} ${error.message}`);
  t.regex(error.message, /60000 bytes sent while connecting exceeds maxMessageSize 36704/);
  t.is(c.state, 'closed');
  // A later connection on the same server works: the refusal left nothing behind.
  const again = client(t, port, s);
  again.send('second');
  await again.ready();
  await poll(() => atServer.length === 1, 5000, "the second client's message");
  t.deepEqual(atServer.map((m) => Buffer.from(m).toString()), ['second']);
  t.true(connections.length <= 2);
});
