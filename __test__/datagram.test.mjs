// Unreliable datagrams in secure mode (issue #20, docs/protocol.md "DATAGRAM") through the public
// API: both ways with channels, sequencing through the lossy relay, raw mode's typed refusal, the
// bounded send and receive queues, and the counters. The protocol core's rules are covered on a
// simulated network by crates/kcpwatch-proto/tests/secure_datagram.rs.
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { echoServer, EventLog, kcpwatch, next, require, secureConnect, until } from './helpers/util.mjs';
import { requireKcpgo, runKcpgo } from './helpers/kcpgo.mjs';

const { createRelay } = require('../../dist/relay.js');

/** A secure server whose connections echo every datagram on its channel, and send their own on demand. */
async function datagramServer(t, options = {}) {
  const connections = [];
  const server = kcpwatch.createServer({ log: { destination: 'none' }, ...options }, (conn) => {
    connections.push(conn);
    conn.on('datagram', (data, channel) => conn.sendDatagram(data, { channel }));
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  return { server, address, key: server.publicKey, connections };
}

test('datagrams flow both ways with their channel, counted apart from messages', async (t) => {
  const { server, address, key, connections } = await datagramServer(t);
  const client = secureConnect(address.port, key);
  t.teardown(() => client.close());
  await client.ready();
  const back = [];
  client.on('datagram', (data, channel) => back.push([channel, Buffer.from(data).toString()]));
  const sent = [];
  for (let i = 0; i < 20; i++) {
    const channel = i % 3;
    // Every buffer form send() takes.
    const forms = [`d${i}`, Buffer.from(`d${i}`), new Uint8Array(Buffer.from(`d${i}`)), new DataView(new Uint8Array(Buffer.from(`d${i}`)).buffer)];
    t.true(client.sendDatagram(forms[i % forms.length], { channel, sequenced: i % 2 === 0 }));
    sent.push([channel, `d${i}`]);
  }
  await until(client, 'datagram', () => back.length === sent.length);
  // Loopback loses nothing: every datagram is back; per channel, in order.
  t.deepEqual(
    [...back].sort((a, b) => Number(a[1].slice(1)) - Number(b[1].slice(1))),
    sent,
  );
  const [conn] = connections;
  const stats = server.stats();
  t.is(stats.unreliableReceived, 20);
  t.is(stats.unreliableSent, 20);
  t.is(stats.messagesIn, 0, 'datagrams are not messages');
  t.is(conn.stats().unreliableReceived, 20);
  t.is(client.stats().unreliableSent, 20);
  const metrics = server.metrics();
  t.regex(metrics, /^kcpwatch_unreliable_received_total\{[^}]*\} 20$/m);
  t.regex(metrics, /^kcpwatch_unreliable_dropped_total\{[^}]*reason="stale"[^}]*\} 0$/m);
  const closed = next(client, 'close');
  client.close();
  const [, info] = await closed;
  t.is(info.unreliableSent, 20);
  t.is(info.unreliableReceived, 20);
  t.is(info.unreliableDropped, 0);
  t.is(info.messagesOut, 0);
});

test("both sides' kcp:connection_closed records count the datagrams sent, received and dropped, apart from messages", async (t) => {
  const serverLog = new EventLog();
  const { server, address, key, connections } = await datagramServer(t, { log: { destination: 'none', onEvent: serverLog.push } });
  server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
  // Upstream reordering makes some sequenced datagrams arrive behind a newer one: dropped (stale).
  const relay = await createRelay({
    target: { host: '127.0.0.1', port: address.port },
    upstream: { reorder: 0.3, reorderDelayMs: 20, seed: 7 },
  });
  t.teardown(() => relay.close());
  const clientLog = new EventLog();
  const client = secureConnect(relay.port, key, { log: { destination: 'none', onEvent: clientLog.push } });
  t.teardown(() => client.close());
  await client.ready();
  let echoed = 0;
  client.on('datagram', () => echoed++);
  client.send('one message');
  await next(client, 'message');
  const SENT = 60;
  for (let i = 0; i < SENT; i++) t.true(client.sendDatagram(Buffer.alloc(16, i), { channel: 4, sequenced: true }));
  const conn = connections[0] ?? (await next(server, 'connection'))[0];
  // Every datagram is either delivered (and echoed) or dropped as stale: loopback loses none.
  let s = conn.stats();
  for (let i = 0; i < 500 && s.unreliableReceived + s.unreliableDropped < SENT; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    s = conn.stats();
  }
  const received = s.unreliableReceived;
  t.is(received + s.unreliableDropped, SENT);
  t.true(s.unreliableDropped > 0, 'the reordering made some stale');
  await until(client, 'datagram', () => echoed === received);
  const closing = next(client, 'close');
  client.close();
  const [, info] = await closing;
  const mine = await clientLog.waitFor((e) => e.name === 'kcp:connection_closed');
  const theirs = await serverLog.waitFor((e) => e.name === 'kcp:connection_closed');
  t.like(mine, { unreliable_sent: SENT, unreliable_received: received, unreliable_dropped: 0, messages_sent: 1, messages_received: 1 });
  t.like(theirs, { unreliable_sent: received, unreliable_received: received, unreliable_dropped: SENT - received, messages_sent: 1, messages_received: 1 });
  // The record and the close info agree.
  t.like(mine, { unreliable_sent: info.unreliableSent, unreliable_received: info.unreliableReceived, unreliable_dropped: info.unreliableDropped });
  t.log(`${SENT} sent, ${received} delivered, ${SENT - received} stale`);
});

test('datagrams() iterates { data, channel } and ends when the connection closes', async (t) => {
  const { address, key, connections } = await datagramServer(t);
  const client = secureConnect(address.port, key);
  t.teardown(() => client.close());
  await client.ready();
  const got = [];
  const reading = (async () => {
    for await (const d of client.datagrams()) {
      got.push([d.channel, d.data.toString()]);
      if (got.length === 3) client.close();
    }
  })();
  for (const [i, text] of ['a', 'b', 'c'].entries()) client.sendDatagram(text, { channel: 9 + i });
  await reading;
  t.deepEqual(got.sort((a, b) => a[0] - b[0]), [[9, 'a'], [10, 'b'], [11, 'c']]);
  t.is(connections.length, 1);
});

test('raw mode has no datagrams: sendDatagram throws KcpNotSupportedError', async (t) => {
  const { server, address } = await echoServer({ mode: 'raw' });
  t.teardown(() => server.close({ force: true }));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw' });
  t.teardown(() => client.close());
  const error = t.throws(() => client.sendDatagram('x'), { instanceOf: kcpwatch.KcpNotSupportedError });
  t.is(error.code, 'KCP_ERR_NOT_SUPPORTED');
  t.regex(error.message, /secure mode/);
});

test('an oversized datagram or a bad option is a typed error', async (t) => {
  const { address, key } = await datagramServer(t);
  const client = secureConnect(address.port, key);
  t.teardown(() => client.close());
  await client.ready();
  // The game preset: 1200-byte datagrams, 31 bytes of framing.
  t.true(client.sendDatagram(Buffer.alloc(1169)));
  const error = t.throws(() => client.sendDatagram(Buffer.alloc(1170)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  t.regex(error.message, /1170 bytes exceeds 1169/);
  t.throws(() => client.sendDatagram('x', { channel: 256 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => client.sendDatagram('x', { channel: 1.5 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => client.sendDatagram('x', { sequenced: 'yes' }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => client.sendDatagram('x', { chanel: 1 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => client.sendDatagram(42), { instanceOf: kcpwatch.KcpInvalidOptionError });
  const echoes = [];
  client.on('datagram', (d) => echoes.push(d.length));
  client.sendDatagram('after');
  await until(client, 'datagram', () => echoes.includes(5));
  t.is(client.stats().unreliableSent, 2, 'the refused ones were not sent');
  client.close();
  t.throws(() => client.sendDatagram('x'), { instanceOf: kcpwatch.KcpClosedError });
});

test('30 Hz sequenced datagrams through the lossy relay (10% loss) are never out of order and never wait for a lost one', async (t) => {
  const { server, address, key, connections } = await datagramServer(t);
  const relay = await createRelay({
    target: { host: '127.0.0.1', port: address.port },
    upstream: { loss: 0.1, delayMs: 40, jitterMs: 10, reorder: 0.1, reorderDelayMs: 60, seed: 20 },
    downstream: { delayMs: 40, seed: 21 },
  });
  t.teardown(() => relay.close());
  const client = secureConnect(relay.port, key, { handshakeTimeout: 20_000 });
  t.teardown(() => client.close());
  await client.ready();
  const conn = connections[0] ?? (await next(server, 'connection'))[0];
  conn.removeAllListeners('datagram');
  // Each update goes twice, sent in the same turn: as a sequenced datagram and as a reliable
  // message, its twin. Arrival times are taken on this event loop, so a stall of the (shared)
  // machine delays both twins alike; a message behind a lost one also waits for its
  // retransmission, a datagram never does.
  const datagramAt = new Map();
  const messageAt = new Map();
  const order = [];
  conn.on('datagram', (data, channel) => {
    if (channel !== 1) return;
    order.push(data.readUInt32LE(0));
    datagramAt.set(data.readUInt32LE(0), performance.now());
  });
  conn.on('message', (data) => messageAt.set(data.readUInt32LE(0), performance.now()));
  const COUNT = 90;
  // The relay runs on this event loop: a stall between a datagram's and its twin's release
  // times delays only the later one, so the margin below includes the worst stall seen.
  const stalls = monitorEventLoopDelay({ resolution: 5 });
  stalls.enable();
  await new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      const update = Buffer.alloc(64);
      update.writeUInt32LE(i, 0);
      client.sendDatagram(update, { channel: 1, sequenced: true });
      client.send(update);
      if (++i === COUNT) {
        clearInterval(timer);
        resolve();
      }
    }, 33);
  });
  // Every message arrives (reliable); then the datagrams that were going to have.
  await until(conn, 'message', () => messageAt.size === COUNT, 20_000);
  t.true(order.every((n, k) => k === 0 || n > order[k - 1]), `in order, never twice: ${order.join(',')}`);
  const undelivered = COUNT - order.length;
  t.true(undelivered >= 3 && undelivered <= 30, `${undelivered} of ${COUNT} not delivered (lost or stale)`);
  stalls.disable();
  // Jitter and reordering (10 + 60 ms) may put a datagram behind its twin, as may a stall of
  // this event loop, which also runs the relay; nothing else may (a retransmission timeout,
  // which a datagram queued behind a lost message would wait for, is at least one 80 ms RTT).
  const margin = 100 + stalls.max / 1e6;
  const later = order.filter((i) => datagramAt.get(i) > messageAt.get(i) + margin);
  t.deepEqual(later, [], `no datagram arrived over ${margin.toFixed(0)} ms after its reliable twin`);
  // The twins of some updates were held back behind a lost message; their datagrams were not.
  const heldBack = order.filter((i) => messageAt.get(i) - datagramAt.get(i) > 50);
  t.true(heldBack.length > 0, 'head-of-line blocking on the reliable stream, none on datagrams');
  const stats = server.stats();
  t.is(stats.unreliableReceived, order.length);
  t.log(`${order.length}/${COUNT} datagrams delivered in order; ${heldBack.length} reliable twins arrived over 50 ms after their datagram; ${stats.unreliableDroppedStale} stale dropped`);
});

test('sendDatagram returns false when the datagram queue is full, and true again once it drains', async (t) => {
  const { address, key } = await datagramServer(t);
  const client = secureConnect(address.port, key);
  t.teardown(() => client.close());
  await client.ready();
  const payload = Buffer.alloc(1000);
  let accepted = 0;
  // 1 MiB of datagrams may wait to be sealed; a synchronous loop never yields for them to leave.
  for (let i = 0; i < 5_000; i++) {
    if (!client.sendDatagram(payload)) break;
    accepted += 1;
  }
  t.true(accepted > 900 && accepted < 1100, `${accepted} accepted before the queue was full`);
  t.false(client.sendDatagram(payload), 'still full in the same turn');
  let again = false;
  for (let turn = 0; turn < 1000 && !again; turn++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    again = client.sendDatagram(payload);
  }
  t.true(again, 'the I/O thread took the batch: room again');
});

/** A worker that floods `port` with 1000-byte datagrams until told to stop. */
function flooder(port, key) {
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const kcpwatch = require(workerData.index);
    const client = kcpwatch.connect({ host: '127.0.0.1', port: workerData.port, serverKey: workerData.key });
    let stop = false;
    let sent = 0;
    parentPort.on('message', () => { stop = true; client.close(); });
    client.ready().then(() => {
      parentPort.postMessage('ready');
      const payload = Buffer.alloc(1000, 7);
      const burst = () => {
        if (stop) return;
        for (let i = 0; i < 200 && client.sendDatagram(payload); i++) sent++;
        setImmediate(burst);
      };
      burst();
    });
    client.on('close', () => { parentPort.postMessage({ sent }); parentPort.close(); });
    `,
    { eval: true, workerData: { port, key, index: require.resolve('../../index.js') } },
  );
  return worker;
}

// Serial (ava runs serial tests before the others): the flood saturates loopback, which would
// make the other tests' datagrams lossy.
test.serial('a datagram flood to a slow reader stays bounded in memory and the drops are counted', async (t) => {
  // A reader that never reads: no `datagram` listener, no iterator.
  const connections = [];
  const server = kcpwatch.createServer({ log: { destination: 'none' } }, (conn) => connections.push(conn));
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const worker = flooder(address.port, server.publicKey);
  t.teardown(() => worker.terminate());
  await next(worker, 'message', 10_000);
  // The client is ready on the ACCEPT; the server announces the connection on the client's
  // confirmation, which may still be on its way.
  for (let i = 0; i < 500 && connections.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(connections.length, 1);
  const rssBefore = process.memoryUsage().rss;
  // The event loop is blocked for 1.5 s at a time (a slow JavaScript reader), three times.
  const block = new Int32Array(new SharedArrayBuffer(4));
  for (let round = 0; round < 3; round++) {
    Atomics.wait(block, 0, 0, 1_500);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const grown = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  worker.postMessage('stop');
  const [done] = await next(worker, 'message', 10_000);
  // Once what was in flight has been handed over and the connection's drops reported (bounded
  // wait), received counts only what the connection holds (at most 256, nobody reads): every
  // other datagram that arrived was dropped and counted.
  let stats = server.stats();
  for (let i = 0; i < 300 && stats.unreliableReceived > 256; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    stats = server.stats();
  }
  t.log(`flood: ${done.sent} sent, ${stats.unreliableReceived} held by the connection, ${stats.unreliableDroppedQueueFull} dropped (queue full), RSS +${grown.toFixed(1)} MiB`);
  t.true(done.sent > 10_000, 'a real flood');
  t.true(stats.unreliableDroppedQueueFull > 0, 'drops are counted');
  t.true(stats.unreliableReceived <= done.sent);
  // The connection holds at most 256 unread datagrams: received (delivered or held) is at most
  // that, and every other one that arrived was dropped and counted (by the connection, or by the
  // I/O thread when it could not hand them over).
  t.true(stats.unreliableReceived <= 256, `${stats.unreliableReceived} counted as received, more than the connection holds`);
  t.true(grown < 64, `RSS grew ${grown.toFixed(1)} MiB`);
  t.true(stats.unreliableReceived + stats.unreliableDroppedQueueFull > 256, 'the reader was flooded');
});

test('the Go client written from docs/protocol.md exchanges datagrams with a kcpwatch server both ways', async (t) => {
  if (!requireKcpgo(t)) return;
  const got = [];
  const server = kcpwatch.createServer({ log: { destination: 'none' }, preset: 'game' }, (conn) => {
    conn.on('datagram', (data, channel) => {
      got.push([channel, data.toString()]);
      // Echoed with a marker on another channel, sequenced.
      conn.sendDatagram(`js-${data.toString()}`, { channel: channel + 1, sequenced: true });
    });
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const r = await runKcpgo(t, ['secure-datagram', '--addr', `127.0.0.1:${address.port}`, '--server-key', server.publicKey, '--count', '30', '--channel', '4', '--interval-ms', '5', '--wait-ms', '500']);
  const result = JSON.parse(r.out.trim().split('\n').at(-1) || '{}');
  t.true(result.ok, r.out + r.err);
  t.is(result.sent, 30);
  // Loopback: everything arrives, in order, both ways.
  t.deepEqual(got, Array.from({ length: 30 }, (_, i) => [4, `go-${i}`]));
  t.is(result.received, 30);
  t.deepEqual(result.payloads, Array.from({ length: 30 }, (_, i) => `js-go-${i}`));
  t.true(result.channels.every((c) => c === 5));
  t.true(result.in_order);
  t.is(result.malformed, 0);
  const stats = server.stats();
  t.is(stats.unreliableReceived, 30);
  t.is(stats.unreliableSent, 30);
});
