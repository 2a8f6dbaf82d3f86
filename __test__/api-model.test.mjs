// A property test of the JavaScript API against a model (issue #14): seeded random
// interleavings of listen/close/connect/send (fresh, reused, shrunk and detached buffers, every
// binary type), reader attach/detach (listener or iterator) and throwing handlers.
//
// Invariants: every message sent and acknowledged is delivered exactly once, in order, with the
// bytes given at the call, to the right connection (or the connection closed with a reason);
// nothing reaches another connection; no endpoint wedges (everything is acknowledged at the
// end); concurrent listen()/close() make at most one listener, with typed errors for the rest;
// each handler exception surfaces exactly once.
//
// KCPWATCH_MODEL_OPS sets the operation count (default 100000), KCPWATCH_MODEL_SEED the seed.
import test from 'ava';
import { kcpwatch } from './helpers/util.mjs';

const OPS = Number(process.env.KCPWATCH_MODEL_OPS ?? 100_000);
const SEED = Number(process.env.KCPWATCH_MODEL_SEED ?? Date.now() % 2 ** 31);
const MAX_CLIENT_CONNECTIONS = 16;
const HEADER = 8;

/** mulberry32: small, seedable, good enough to pick operations. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Message `seq` of connection `id`: its bytes are a function of both, so a stale read shows. */
function fill(target, id, seq) {
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  view.setUint32(0, id, true);
  view.setUint32(4, seq, true);
  for (let i = HEADER; i < target.length; i++) target[i] = (id * 31 + seq * 7 + i) & 0xff;
}

function check(data, id, seq) {
  if (data.length < HEADER) return 'short message';
  const gotId = data.readUInt32LE(0);
  const gotSeq = data.readUInt32LE(4);
  if (gotId !== id) return `message of connection ${gotId} delivered to connection ${id}`;
  if (gotSeq !== seq) return `connection ${id}: message ${gotSeq} where ${seq} was due`;
  for (let i = HEADER; i < data.length; i++) {
    if (data[i] !== ((id * 31 + seq * 7 + i) & 0xff)) return `connection ${id}: message ${seq} byte ${i} differs`;
  }
  return undefined;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

async function waitFor(predicate, ms) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

test('the JavaScript API against a model', async (t) => {
  t.timeout(120_000);
  t.log(`seed ${SEED} (KCPWATCH_MODEL_SEED), ${OPS} operations (KCPWATCH_MODEL_OPS)`);
  const random = rng(SEED);
  const pick = (n) => Math.floor(random() * n);
  const problems = [];
  const problem = (text) => {
    if (problems.length < 20) problems.push(text);
  };
  const thrown = [];
  let throwsArmed = 0;
  process.setUncaughtExceptionCaptureCallback((err) => thrown.push(err));
  t.teardown(() => process.setUncaughtExceptionCaptureCallback(null));

  // The receiving side: each server connection checks what arrives against the model.
  /** @type {Map<object, {id: number|undefined, next: number, reader: string, stopIterator?: () => void, throwNext: boolean}>} */
  const receivers = new Map();
  const byId = new Map();
  let connectionThrows = 0;
  let finalPhase = false;
  const server = kcpwatch.createServer(
    {
      mode: 'raw',
      log: false,
      maxReceiveQueueBytes: 16 * 1024,
      idleTimeout: 120_000,
      // One client address opens every connection, faster than a real one would.
      limits: { maxConnectionsPerIp: 100_000, maxConnectionsPerPrefix: 100_000, handshakesPerSecondPerIp: 100_000, handshakeBurstPerIp: 100_000 },
    },
    (conn) => {
      const r = { id: undefined, next: 0, reader: 'none', throwNext: false, conn };
      receivers.set(conn, r);
      if (finalPhase) setReader(r, 'listener');
      if (connectionThrows > 0) {
        connectionThrows -= 1;
        throw new Error('model: connection handler');
      }
    },
  );
  t.teardown(() => server.close({ force: true }));
  const { port } = await server.listen(0, '127.0.0.1');

  const receive = (r, data) => {
    if (r.id === undefined) {
      r.id = data.readUInt32LE(0);
      if (byId.has(r.id)) problem(`connection ${r.id} seen on two server connections`);
      byId.set(r.id, r);
    }
    const bad = check(data, r.id, r.next);
    if (bad) problem(bad);
    r.next += 1;
  };
  const onMessage = (r) => (data) => {
    receive(r, data);
    if (r.throwNext) {
      r.throwNext = false;
      throw new Error('model: message handler');
    }
  };
  const setReader = (r, reader) => {
    if (r.reader === 'listener') r.conn.removeListener('message', r.listener);
    if (r.reader === 'iterator') r.stopIterator();
    r.reader = reader;
    if (reader === 'listener') {
      r.listener = onMessage(r);
      r.conn.on('message', r.listener);
    } else if (reader === 'iterator') {
      const it = r.conn.messages();
      let stopped = false;
      r.stopIterator = () => {
        stopped = true;
        void it.return();
      };
      void (async () => {
        for (;;) {
          const { value, done } = await it.next();
          if (done) return;
          receive(r, value);
          // A message read after `return()` was asked is still this reader's: it was taken.
          if (stopped) return;
        }
      })();
    }
  };

  // The sending side: one client endpoint, connections come and go.
  const client = kcpwatch.createClient({ port, mode: 'raw', maxConnections: MAX_CLIENT_CONNECTIONS, maxSendQueueBytes: 64 * 1024 });
  t.teardown(() => client.close());
  /** @type {{id: number, conn: object, sent: number, sizes: number[], closedAcked?: number}[]} */
  const senders = [];
  let nextId = 1;
  const reused = Buffer.alloc(2048);
  const counts = {};
  const count = (k) => (counts[k] = (counts[k] ?? 0) + 1);

  const send = (s) => {
    const size = HEADER + pick(400);
    const kind = pick(8);
    let data;
    let after = () => {};
    if (kind === 0) {
      data = Buffer.alloc(size);
      fill(data, s.id, s.sent);
    } else if (kind === 1) {
      // Reused: refilled with garbage right after the call.
      data = reused.subarray(0, size);
      fill(data, s.id, s.sent);
      after = () => data.fill(0xee);
    } else if (kind === 2) {
      // Resizable, shrunk right after the call.
      const ab = new ArrayBuffer(size, { maxByteLength: size });
      fill(new Uint8Array(ab), s.id, s.sent);
      data = new Uint8Array(ab);
      after = () => ab.resize(pick(HEADER));
    } else if (kind === 3) {
      // Detached right after the call.
      const ab = new ArrayBuffer(size);
      fill(new Uint8Array(ab), s.id, s.sent);
      data = pick(2) ? ab : new Uint8Array(ab);
      after = () => structuredClone(ab, { transfer: [ab] });
    } else if (kind === 4) {
      const ab = new ArrayBuffer(size + 3);
      fill(new Uint8Array(ab, 3, size), s.id, s.sent);
      data = new DataView(ab, 3, size);
    } else if (kind === 5) {
      const ab = new ArrayBuffer(Math.ceil(size / 2) * 2);
      fill(new Uint8Array(ab, 0, size), s.id, s.sent);
      data = size % 2 === 0 ? new Uint16Array(ab) : new Uint8Array(ab, 0, size);
    } else if (kind === 6) {
      data = new Uint8Array(size);
      fill(data, s.id, s.sent);
    } else {
      // A detached buffer offered to send(): refused at the call, nothing queued.
      const ab = new ArrayBuffer(16);
      const view = new Uint8Array(ab);
      structuredClone(ab, { transfer: [ab] });
      try {
        s.conn.send(pick(2) ? view : ab);
        problem('a detached buffer was accepted');
      } catch (err) {
        if (err.code !== 'KCP_ERR_INVALID_OPTION') problem(`detached buffer: ${err.code}`);
      }
      count('send-detached');
      return;
    }
    const length = data.byteLength;
    try {
      s.conn.send(data);
    } catch (err) {
      if (err.code === 'KCP_ERR_QUEUE_FULL') {
        count('queue-full');
        after();
        return;
      }
      if (err.code === 'KCP_ERR_CLOSED' && s.conn.state !== 'established') return;
      problem(`send threw ${err.code}: ${err.message}`);
      return;
    }
    after();
    s.sizes.push(length);
    s.sent += 1;
    count(`send-${kind}`);
  };

  const connect = () => {
    if (client.connectionCount >= MAX_CLIENT_CONNECTIONS) return;
    const conn = client.connect();
    const s = { id: nextId++, conn, sent: 0, sizes: [] };
    conn.on('close', () => {
      // What the peer acknowledged when it closed: those messages must have arrived.
      s.closedAcked = ackedMessages(s);
    });
    senders.push(s);
    count('connect');
  };

  const ackedMessages = (s) => {
    let acked = s.sizes.reduce((a, b) => a + b, 0) - s.conn.queuedBytes;
    let n = 0;
    for (const size of s.sizes) {
      if (acked < size) break;
      acked -= size;
      n += 1;
    }
    return n;
  };

  // Concurrent listen()/close() on fresh servers: at most one listener each.
  const races = [];
  const race = () => {
    const s = kcpwatch.createServer({ log: false });
    const steps = [];
    const n = 2 + pick(3);
    for (let i = 0; i < n; i++) {
      const op = pick(3);
      if (op === 0) steps.push(['listen', s.listen(0, '127.0.0.1').then((a) => a, (e) => e)]);
      else if (op === 1) steps.push(['listen', s.listen(0, 'localhost').then((a) => a, (e) => e)]);
      else steps.push(['close', s.close().then(() => 'closed', (e) => e)]);
    }
    races.push(
      Promise.all(steps.map(([, p]) => p)).then(async (results) => {
        const listened = results.filter((r, i) => steps[i][0] === 'listen' && r && typeof r.port === 'number');
        if (listened.length > 1) problem(`${listened.length} listeners on one server`);
        for (let i = 0; i < results.length; i++) {
          const r = results[i];
          if (steps[i][0] === 'listen' && r instanceof Error && !['KCP_ERR_ALREADY_LISTENING', 'KCP_ERR_CLOSED'].includes(r.code)) {
            problem(`listen() failed with ${r.code ?? r.message}`);
          }
        }
        await s.close();
        if (s.address() !== null) problem('a closed server still has an address');
      }),
    );
    count('listen-close-race');
  };

  connect();
  for (let op = 0; op < OPS; op++) {
    const roll = random();
    if (roll < 0.8) {
      const live = senders.filter((s) => s.conn.state === 'established');
      if (live.length === 0) connect();
      else send(live[pick(live.length)]);
    } else if (roll < 0.86) {
      const rs = [...receivers.values()];
      if (rs.length) {
        setReader(rs[pick(rs.length)], ['none', 'listener', 'iterator'][pick(3)]);
        count('reader');
      }
    } else if (roll < 0.88) {
      const rs = [...receivers.values()].filter((r) => r.reader === 'listener' && !r.throwNext);
      if (rs.length) {
        rs[pick(rs.length)].throwNext = true;
        throwsArmed += 1;
        count('throw-armed');
      }
    } else if (roll < 0.9) {
      connect();
      if (pick(4) === 0) {
        connectionThrows += 1;
        throwsArmed += 1;
      }
    } else if (roll < 0.905) {
      const live = senders.filter((s) => s.conn.state === 'established');
      if (live.length > 1) {
        live[pick(live.length)].conn.close();
        count('close');
      }
    } else if (roll < 0.9055) {
      race();
    }
    // Let I/O run: the event loop turns as a game server's would.
    if (op % 64 === 63) await tick();
  }
  await Promise.all(races);

  // Every reader attached: nothing may stay held or wedged.
  finalPhase = true;
  for (const r of receivers.values()) if (r.reader === 'none') setReader(r, 'listener');
  const live = senders.filter((s) => s.conn.state !== 'closed');
  const drained = await waitFor(() => live.every((s) => s.conn.state === 'closed' || s.conn.queuedBytes === 0), 30_000);
  if (!drained) problem(`endpoint wedged: ${live.filter((s) => s.conn.queuedBytes > 0).length} connections keep bytes unacknowledged`);
  await waitFor(() => senders.every((s) => (byId.get(s.id)?.next ?? 0) >= (s.closedAcked ?? (s.conn.state === 'closed' ? 0 : s.sent))), 10_000);
  await tick();

  let delivered = 0;
  for (const s of senders) {
    const got = byId.get(s.id)?.next ?? 0;
    delivered += got;
    const must = s.conn.state === 'closed' ? (s.closedAcked ?? 0) : s.sent;
    if (got < must) problem(`connection ${s.id}: ${got} of ${must} acknowledged messages delivered (${s.sent} sent, ${s.conn.state})`);
    if (got > s.sent) problem(`connection ${s.id}: ${got} delivered, only ${s.sent} sent`);
  }
  if (thrown.length !== throwsArmed) {
    // A throw armed on a connection that got no further message, or a connect that got none, never fires.
    const unfired = [...receivers.values()].filter((r) => r.throwNext).length + connectionThrows;
    if (thrown.length !== throwsArmed - unfired) problem(`${thrown.length} handler errors surfaced, ${throwsArmed - unfired} thrown`);
  }
  if (!thrown.every((e) => /^model: /.test(e.message))) problem(`unexpected error: ${thrown.find((e) => !/^model: /.test(e.message))}`);
  const silent = [...receivers.values()].filter((r) => r.id === undefined);
  if (silent.length && problems.length) t.log(`server connections without a message: ${silent.map((r) => `${r.reader}/${r.conn.state}/${r.conn._heldBytes()}/${r.conn.stats()?.messagesIn}`).join(' ')}`);
  t.log(`delivered ${delivered} messages on ${senders.length} connections; ${JSON.stringify(counts)}`);
  if (problems.length) t.fail(`seed ${SEED}: ${problems.join('; ')}`);
  else t.pass();
});
