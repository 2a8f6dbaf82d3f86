// Contradictions a second outside user found from the README alone: a connection closed before it
// was ready that still reached the server (or counted a message it never sent); datagram counters
// that added up to more than arrived; and a server shutdown during `authenticate` reported to a
// client as "unreachable" because another client had abandoned its handshake just before.
import test from 'ava';
import { kcpwatch, poll } from './helpers/util.mjs';

/** A server whose connections, their messages and its records are collected. */
async function collectingServer(t, options = {}) {
  const records = [];
  const connections = [];
  const messages = [];
  const s = kcpwatch.createServer({ log: { destination: 'none', onEvent: (e) => records.push(e) }, ...options }, (c) => {
    connections.push(c);
    c.on('message', (m) => messages.push(m.toString()));
  });
  const { port } = await s.listen(0, '127.0.0.1');
  t.teardown(() => s.close({ force: true }));
  return { s, port, records, connections, messages };
}

/**
 * Everything sent to the server before now has been read by it: a fresh client's message made the
 * round trip through the same server socket (its receive queue is first in, first out).
 */
async function barrier(t, port, options) {
  const sentinel = kcpwatch.connect({ host: '127.0.0.1', port, log: { destination: 'none' }, ...options });
  t.teardown(() => sentinel.close());
  await sentinel.ready();
  sentinel.send('sentinel');
  return sentinel;
}

const closeBeforeReady = {
  'in the same tick': async () => {},
  'after a microtask': async () => {
    await null;
  },
  // The native side has often completed the handshake by now, before JavaScript heard of it.
  'after an event-loop turn': () => new Promise((resolve) => setImmediate(resolve)),
};

for (const [when, pause] of Object.entries(closeBeforeReady)) {
  test(`secure: close() ${when} after connect() abandons the handshake: nothing queued is sent or counted, and the server keeps no connection`, async (t) => {
    const { s, port, records, connections, messages } = await collectingServer(t);
    const ROUNDS = 12;
    const outcomes = [];
    for (let round = 0; round < ROUNDS; round++) {
      const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: { destination: 'none' } });
      t.teardown(() => c.close());
      let connectEvents = 0;
      c.on('connect', () => connectEvents++);
      t.true(c.send(`queued-${round}`));
      await pause();
      // Only a close before ready() resolved is the case: once `connect` fired, the message left.
      if (c.state !== 'connecting') continue;
      const closed = new Promise((resolve) => c.once('close', (reason, info) => resolve({ reason, info })));
      c.close();
      const error = await t.throwsAsync(c.ready());
      t.is(error.code, 'KCP_ERR_CLOSED');
      const { reason, info } = await closed;
      outcomes.push(reason);
      t.is(info.messagesOut, 0, `round ${round}: close info counts a message that was not sent`);
      t.is(info.payloadBytesOut, 0);
      t.is(c.queuedBytes, 0, 'nothing is left queued');
      t.is(connectEvents, 0, 'no connect after close()');
    }
    t.true(outcomes.length > 0, 'some rounds closed while connecting');
    // Whatever the abandoned clients sent has reached the server by now.
    const sentinel = await barrier(t, port, { serverKey: s.publicKey });
    await poll(() => messages.includes('sentinel'), 5000, 'the sentinel message');
    const announced = connections.filter((c) => c.remotePort !== sentinel.localPort);
    // A connection the server had already announced (the client's confirmation raced its close)
    // closes at once, as closed by its peer, having received nothing.
    await poll(() => announced.every((c) => c.state === 'closed'), 5000, 'every announced abandoned connection closed');
    for (const c of announced) {
      t.is(c.closeInfo.reason, 'peer_closed');
      t.is(c.closeInfo.messagesIn, 0);
    }
    t.deepEqual(messages, ['sentinel'], 'no queued message reached the server');
    const closedRecords = records.filter((r) => r.name === 'kcp:connection_closed');
    t.true(closedRecords.every((r) => r.messages_received === 0));
    t.log(`${outcomes.length}/${ROUNDS} closed while connecting; the server announced ${announced.length} of them`);
  });
}

test('raw: send() then close() right after connect() sends the message (raw is established at once) and both sides say so', async (t) => {
  const { port, connections, messages } = await collectingServer(t, { mode: 'raw' });
  const c = kcpwatch.connect({ mode: 'raw', host: '127.0.0.1', port, log: { destination: 'none' } });
  t.teardown(() => c.close());
  t.is(c.state, 'established');
  c.send('queued');
  const closed = new Promise((resolve) => c.once('close', (reason, info) => resolve(info)));
  c.close();
  await c.ready();
  const info = await closed;
  t.is(info.messagesOut, 1);
  await poll(() => messages.length === 1, 5000, 'the message at the server');
  t.deepEqual(messages, ['queued']);
  t.is(connections.length, 1);
});

test('raw: close() while the host name resolves sends nothing and counts nothing', async (t) => {
  const { port, messages, connections } = await collectingServer(t, { mode: 'raw' });
  const c = kcpwatch.connect({ mode: 'raw', host: 'localhost', port, log: { destination: 'none' } });
  t.teardown(() => c.close());
  t.is(c.state, 'connecting');
  c.send('queued');
  const closed = new Promise((resolve) => c.once('close', (reason, info) => resolve(info)));
  c.close();
  const error = await t.throwsAsync(c.ready());
  t.is(error.code, 'KCP_ERR_CLOSED');
  t.is((await closed).messagesOut, 0);
  // A raw server announces a connection on its first datagram: a barrier shows none came.
  const sentinel = await barrier(t, port, { mode: 'raw' });
  await poll(() => messages.includes('sentinel'), 5000, 'the sentinel message');
  t.deepEqual(messages, ['sentinel']);
  t.deepEqual(connections.map((x) => x.remotePort), [sentinel.localPort]);
});

test('datagrams to a late reader: received counts what the application got, dropped what it lost, and they add up to what arrived, in stats(), the close info and the record', async (t) => {
  const SENT = 300;
  const { s, port, records, connections } = await collectingServer(t);
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: { destination: 'none' } });
  t.teardown(() => c.close());
  await c.ready();
  await poll(() => connections.length === 1, 5000, 'the connection announced');
  const conn = connections[0];
  // In turns of 50, so that no burst outruns the server's socket buffer.
  for (let i = 0; i < SENT; i++) {
    t.true(c.sendDatagram(Buffer.from([i & 255])));
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  // Nobody reads yet: the connection holds 256 and drops the oldest beyond that, which it
  // reports to the native side; once those drops are counted, every datagram reached it.
  await poll(() => conn.stats().unreliableDropped >= SENT - 256, 5000, 'the connection dropped the oldest');
  const arrived = conn.stats().unreliableReceived + conn.stats().unreliableDropped;
  t.is(arrived, SENT, 'received + dropped = what arrived');
  let delivered = 0;
  conn.on('datagram', () => delivered++);
  await poll(() => delivered === 256, 5000, 'the held datagrams delivered');
  const stats = conn.stats();
  t.is(stats.unreliableReceived, delivered, 'received = handed to the application');
  t.is(stats.unreliableDropped, SENT - delivered, 'dropped = the oldest, discarded unread');
  const endpoint = s.stats();
  t.is(endpoint.unreliableReceived, delivered);
  t.is(endpoint.unreliableDroppedQueueFull + endpoint.unreliableDroppedStale, SENT - delivered);
  const closed = new Promise((resolve) => conn.once('close', (reason, info) => resolve(info)));
  c.close();
  const info = await closed;
  t.is(info.unreliableReceived, delivered);
  t.is(info.unreliableDropped, SENT - delivered);
  await poll(() => records.some((r) => r.name === 'kcp:connection_closed' && r.direction === 'inbound'), 5000, 'the close record');
  const record = records.find((r) => r.name === 'kcp:connection_closed' && r.direction === 'inbound');
  t.is(record.unreliable_received, delivered);
  t.is(record.unreliable_dropped, SENT - delivered);
  t.is(record.unreliable_received + record.unreliable_dropped, c.closeInfo.unreliableSent);
});

for (const [how, options] of [['server.close()', {}], ['server.close({ force: true })', { force: true }]]) {
  test(`${how} during authenticate gives every waiting client KcpServerShutdownError, also when other clients abandoned their handshakes just before`, async (t) => {
    const PAIRS = 6;
    let asked = 0;
    const s = kcpwatch.createServer({
      log: false,
      authenticate: () => {
        asked++;
        return new Promise(() => {});
      },
    });
    const { port } = await s.listen(0, '127.0.0.1');
    t.teardown(() => s.close({ force: true }));
    const open = (token) => {
      const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, token });
      c.on('error', () => {});
      t.teardown(() => c.close());
      return c;
    };
    const waiting = [];
    // Interleaved: each waiting client's REJECT follows one to a port that no longer exists, whose
    // ICMP port unreachable comes back while the server is still sending.
    for (let i = 0; i < PAIRS; i++) {
      const gone = open(`abandons-${i}`);
      await poll(() => asked === 2 * i + 1, 5000, 'the abandoning client in authenticate');
      const goneClosed = new Promise((resolve) => gone.once('close', resolve));
      gone.close();
      await goneClosed;
      // Its socket closes on the next turn (the client of one connection ends with it).
      await new Promise((resolve) => setImmediate(resolve));
      waiting.push(open(`waits-${i}`));
      await poll(() => asked === 2 * i + 2, 5000, 'the waiting client in authenticate');
    }
    t.is(s.stats().pendingAuth, 2 * PAIRS);
    const closing = s.close(options);
    const results = await Promise.allSettled(waiting.map((c) => c.ready()));
    await closing;
    const got = results.map((r) => (r.status === 'fulfilled' ? 'resolved' : `${r.reason.constructor.name}`));
    t.deepEqual(got, Array(PAIRS).fill('KcpServerShutdownError'));
  });
}
