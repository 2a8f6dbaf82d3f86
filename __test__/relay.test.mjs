import test from 'ava';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';

const require = createRequire(import.meta.url);
const { createRelay } = require('../dist/relay.js');
const RELAY_JS = fileURLToPath(new URL('../dist/relay.js', import.meta.url));

// Every wait is on an event; this only bounds how long a broken relay can hang a test.
const STEP_TIMEOUT_MS = 10_000;
// Unread datagrams sit in the receiver's socket buffer; keeping few in flight
// means a burst can never overflow it, so loss only ever comes from the relay.
const WINDOW = 16;

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function counter() {
  let waiters = [];
  const c = {
    count: 0,
    bump() {
      c.count++;
      waiters = waiters.filter((w) => {
        if (c.count < w.n) return true;
        w.resolve();
        return false;
      });
    },
    until(n, what = `${n} events`) {
      if (c.count >= n) return Promise.resolve();
      return withTimeout(new Promise((resolve) => waiters.push({ n, resolve })), what);
    },
  };
  return c;
}

function collect(socket) {
  const c = counter();
  c.msgs = [];
  socket.on('message', (msg, rinfo) => {
    c.msgs.push({ msg, rinfo });
    c.bump();
  });
  return c;
}

async function bindSocket(type = 'udp4', host = '127.0.0.1', port = 0) {
  const s = dgram.createSocket(type);
  await new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

function send(sock, buf, port, host) {
  return new Promise((resolve, reject) => sock.send(buf, port, host, (err) => (err ? reject(err) : resolve())));
}

function closeAll(t, ...socks) {
  t.teardown(() => Promise.all(socks.map((s) => new Promise((resolve) => {
    try {
      s.close(resolve);
    } catch {
      resolve();
    }
  }))));
}

function echo(server) {
  server.on('message', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
}

// Creates a relay whose decisions are observable as events, so tests can wait
// for "the relay has handled datagram n" even when it was dropped.
async function relayFor(t, server, opts = {}) {
  const up = counter();
  const down = counter();
  const traces = [];
  const addr = server.address();
  const relay = await createRelay({
    ...opts,
    target: { host: addr.address, port: addr.port },
    onDatagram(trace) {
      traces.push(trace);
      (trace.direction === 'up' ? up : down).bump();
    },
  });
  t.teardown(() => relay.close());
  return { relay, up, down, traces };
}

async function sendPaced(sock, payloads, relay, up) {
  const base = up.count;
  for (let i = 0; i < payloads.length; i++) {
    if (i >= WINDOW) await up.until(base + i - WINDOW + 1, `relay to handle datagram ${i - WINDOW}`);
    await send(sock, payloads[i], relay.port, relay.host);
  }
  await up.until(base + payloads.length, `relay to handle all ${payloads.length} datagrams`);
}

function payloadsOf(n, tag = 'p', sizeOf = () => 0) {
  return Array.from({ length: n }, (_, i) => {
    const head = Buffer.from(`${tag}-${i}|`);
    const pad = Buffer.alloc(sizeOf(i));
    // Non-text bytes (including 0x00 and 0xff) catch any re-encoding.
    for (let k = 0; k < pad.length; k++) pad[k] = (i * 31 + k * 7) & 0xff;
    return Buffer.concat([head, pad]);
  });
}

const idOf = (buf) => Number(buf.toString('latin1').split('|')[0].split('-')[1]);

async function setup(t, opts, { type = 'udp4', host = '127.0.0.1' } = {}) {
  const server = await bindSocket(type, host);
  const client = await bindSocket(type, host);
  closeAll(t, server, client);
  const serverRx = collect(server);
  const clientRx = collect(client);
  const r = await relayFor(t, server, opts);
  return { server, client, serverRx, clientRx, ...r };
}

test('passthrough with no impairment delivers every datagram unmodified and in order', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, {});
  const payloads = payloadsOf(100, 'pass', (i) => (i * 37) % 1400);
  payloads.push(Buffer.alloc(60_000, 0xab)); // near the UDP maximum
  await sendPaced(client, payloads, relay, up);
  await serverRx.until(payloads.length, 'server to receive all datagrams');
  t.deepEqual(serverRx.msgs.map((m) => m.msg), payloads);
  const s = relay.stats();
  t.is(s.upstreamDatagrams, payloads.length);
  t.is(s.forwarded, payloads.length);
  t.is(s.dropped, 0);
  t.is(s.delayed, 0);
  t.is(s.errors, 0);
});

test('each client gets its own upstream source port and its own replies', async (t) => {
  const server = await bindSocket();
  const a = await bindSocket();
  const b = await bindSocket();
  closeAll(t, server, a, b);
  echo(server);
  const serverRx = collect(server);
  const aRx = collect(a);
  const bRx = collect(b);
  const { relay, up } = await relayFor(t, server);

  await sendPaced(a, payloadsOf(3, 'a'), relay, up);
  await sendPaced(b, payloadsOf(3, 'b'), relay, up);
  await sendPaced(a, payloadsOf(2, 'a2'), relay, up);
  await serverRx.until(8, 'server to receive 8 datagrams');
  await aRx.until(5, 'client a replies');
  await bRx.until(3, 'client b replies');

  const portsFor = (tag) => new Set(serverRx.msgs.filter((m) => m.msg.toString().startsWith(`${tag}-`)).map((m) => m.rinfo.port));
  const aPorts = new Set([...portsFor('a'), ...portsFor('a2')]);
  const bPorts = portsFor('b');
  t.is(aPorts.size, 1, 'one stable source port per client');
  t.is(bPorts.size, 1, 'one stable source port per client');
  const [aPort] = aPorts;
  const [bPort] = bPorts;
  t.not(aPort, bPort);
  for (const p of [aPort, bPort]) {
    t.not(p, relay.port);
    t.not(p, a.address().port);
    t.not(p, b.address().port);
  }
  t.true(serverRx.msgs.every((m) => m.rinfo.address === '127.0.0.1'));
  // Replies come back from the relay's listening port, each to its own client.
  t.true(aRx.msgs.every((m) => m.rinfo.port === relay.port && m.msg.toString().startsWith('a')));
  t.true(bRx.msgs.every((m) => m.rinfo.port === relay.port && m.msg.toString().startsWith('b-')));
});

test('loss=1 drops everything and counts it', async (t) => {
  const { client, serverRx, relay, up, traces } = await setup(t, { loss: 1 });
  await sendPaced(client, payloadsOf(50, 'lost'), relay, up);
  const s = relay.stats();
  // forwarded === 0 proves nothing is in flight that could still arrive.
  t.is(s.forwarded, 0);
  t.is(s.dropped, 50);
  t.is(s.upstreamDatagrams, 50);
  t.is(serverRx.count, 0);
  t.true(traces.every((tr) => tr.fate === 'dropped' && tr.copies === 0));
});

async function lossyRun(t, seed) {
  const { client, serverRx, relay, up } = await setup(t, { loss: 0.3, seed });
  const n = 1000;
  await sendPaced(client, payloadsOf(n, 'l'), relay, up);
  const s = relay.stats();
  t.is(s.forwarded + s.dropped, n);
  await serverRx.until(s.forwarded, 'server to receive every forwarded datagram');
  t.is(serverRx.count, n - s.dropped);
  return { dropped: s.dropped, survivors: serverRx.msgs.map((m) => idOf(m.msg)) };
}

test('loss=0.3 with a fixed seed is reproducible and close to 30%', async (t) => {
  const first = await lossyRun(t, 42);
  const second = await lossyRun(t, 42);
  t.is(first.dropped, second.dropped);
  t.deepEqual(first.survivors, second.survivors, 'identical drop pattern, not just count');
  t.true(first.dropped >= 250 && first.dropped <= 350, `dropped ${first.dropped} of 1000`);
  const other = await lossyRun(t, 43);
  t.notDeepEqual(other.survivors, first.survivors, 'a different seed gives a different pattern');
});

test('duplicate=1 delivers every datagram exactly twice', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, { duplicate: 1 });
  const payloads = payloadsOf(50, 'dup');
  await sendPaced(client, payloads, relay, up);
  await serverRx.until(100, 'server to receive 100 datagrams');
  const seen = new Map();
  for (const { msg } of serverRx.msgs) seen.set(msg.toString('latin1'), (seen.get(msg.toString('latin1')) ?? 0) + 1);
  t.is(seen.size, 50);
  t.true([...seen.values()].every((c) => c === 2));
  const s = relay.stats();
  t.is(s.duplicated, 50);
  t.is(s.forwarded, 100);
});

function inversions(ids) {
  let n = 0;
  for (let i = 1; i < ids.length; i++) if (ids[i] < ids[i - 1]) n++;
  return n;
}

test('jitter reorders while delivering every datagram exactly once', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, { delayMs: 2, jitterMs: 25, seed: 7 });
  const n = 100;
  await sendPaced(client, payloadsOf(n, 'j'), relay, up);
  await serverRx.until(n, `server to receive ${n} datagrams`);
  const ids = serverRx.msgs.map((m) => idOf(m.msg));
  t.deepEqual([...ids].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
  t.true(inversions(ids) > 0, 'jitter should reorder at least once');
  const s = relay.stats();
  t.is(s.delayed, n);
  t.is(s.forwarded, n);
  t.is(s.duplicated, 0);
});

test('reorder holds some datagrams back without losing any', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, { reorder: 0.2, reorderDelayMs: 30, seed: 11 });
  const n = 100;
  await sendPaced(client, payloadsOf(n, 'r'), relay, up);
  await serverRx.until(n, `server to receive ${n} datagrams`);
  const ids = serverRx.msgs.map((m) => idOf(m.msg));
  t.deepEqual([...ids].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
  const s = relay.stats();
  t.true(s.reordered > 0);
  t.is(s.delayed, s.reordered, 'only held-back datagrams are queued');
  t.true(inversions(ids) > 0);
});

test('downstream replies reach the client from the relay port', async (t) => {
  const { server, client, clientRx, relay, up, down } = await setup(t, {});
  echo(server);
  const payloads = payloadsOf(50, 'echo', (i) => i * 13);
  await sendPaced(client, payloads, relay, up);
  await clientRx.until(50, 'client to receive 50 echoes');
  await down.until(50);
  t.deepEqual(clientRx.msgs.map((m) => m.msg), payloads);
  t.true(clientRx.msgs.every((m) => m.rinfo.port === relay.port && m.rinfo.address === relay.host));
  const s = relay.stats();
  t.is(s.downstreamDatagrams, 50);
  t.is(s.forwarded, 100);
});

test('per-direction overrides apply only to their direction', async (t) => {
  const { server, client, serverRx, clientRx, relay, up, down, traces } = await setup(t, { downstream: { loss: 1 } });
  echo(server);
  await sendPaced(client, payloadsOf(20, 'd'), relay, up);
  await serverRx.until(20, 'server to receive all 20 upstream datagrams');
  await down.until(20, 'relay to handle 20 replies');
  t.is(clientRx.count, 0);
  t.true(traces.filter((tr) => tr.direction === 'down').every((tr) => tr.fate === 'dropped'));
  const s = relay.stats();
  t.is(s.dropped, 20);
  t.is(s.forwarded, 20);
});

test('setImpairment changes behaviour at run time', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, {});
  await sendPaced(client, payloadsOf(10, 'before'), relay, up);
  await serverRx.until(10);

  relay.setImpairment('up', { loss: 1 });
  await sendPaced(client, payloadsOf(10, 'cut'), relay, up);
  t.is(relay.stats().dropped, 10);
  t.is(relay.stats().forwarded, 10);

  relay.setImpairment('both', { loss: 0, duplicate: 1 });
  await sendPaced(client, payloadsOf(10, 'after'), relay, up);
  await serverRx.until(30);
  const tags = serverRx.msgs.map((m) => m.msg.toString().split('-')[0]);
  t.is(tags.filter((x) => x === 'before').length, 10);
  t.is(tags.filter((x) => x === 'cut').length, 0);
  t.is(tags.filter((x) => x === 'after').length, 20);

  t.throws(() => relay.setImpairment('up', { loss: 2 }), { instanceOf: RangeError });
  t.throws(() => relay.setImpairment('sideways', { loss: 0 }), { instanceOf: RangeError });
});

test('maxClients bounds the mapping table', async (t) => {
  const server = await bindSocket();
  const a = await bindSocket();
  const b = await bindSocket();
  closeAll(t, server, a, b);
  const serverRx = collect(server);
  const { relay, up, traces } = await relayFor(t, server, { maxClients: 1 });
  await sendPaced(a, payloadsOf(2, 'a'), relay, up);
  await sendPaced(b, payloadsOf(3, 'b'), relay, up);
  await serverRx.until(2);
  const s = relay.stats();
  t.is(s.rejectedClients, 3);
  t.is(s.forwarded, 2);
  t.deepEqual(traces.map((tr) => tr.fate), ['forwarded', 'forwarded', 'rejected', 'rejected', 'rejected']);
});

test('close() is idempotent and releases every port and queued datagram', async (t) => {
  const { client, serverRx, relay, up } = await setup(t, {});
  await sendPaced(client, payloadsOf(3, 'x'), relay, up);
  await serverRx.until(3);
  const mappingPort = serverRx.msgs[0].rinfo.port;
  relay.setImpairment('up', { delayMs: 60_000 });
  await sendPaced(client, payloadsOf(5, 'late'), relay, up);
  t.is(relay.stats().delayed, 5);

  const first = relay.close();
  const second = relay.close();
  t.is(first, second);
  await first;
  await relay.close();
  t.is(relay.stats().dropped, 5, 'queued datagrams are discarded and counted');
  t.is(relay.address().port, relay.port, 'address() stays readable after close');

  // Re-binding both ports proves the listening and per-client sockets are gone.
  const l = await bindSocket('udp4', relay.host, relay.port);
  const u = await bindSocket('udp4', '127.0.0.1', mappingPort);
  closeAll(t, l, u);
  t.pass();
});

test('a process that closes its relay exits on its own', async (t) => {
  // async_hooks sees unref'd timers too, which getActiveResourcesInfo() hides;
  // beforeExit only fires once the loop has drained, so a leaked ref'd timer
  // or socket shows up as the child never exiting.
  const script = `
    const dgram = require('node:dgram');
    const { createHook } = require('node:async_hooks');
    const { createRelay } = require(${JSON.stringify(RELAY_JS)});
    const live = new Map();
    createHook({
      init(id, type) { if (type === 'Timeout' || type === 'UDPWRAP') live.set(id, type); },
      destroy(id) { live.delete(id); },
    }).enable();
    let stats;
    process.once('beforeExit', () => {
      process.stdout.write(JSON.stringify({ left: [...live.values()], stats }));
    });
    (async () => {
      const server = dgram.createSocket('udp4');
      await new Promise((r) => server.bind(0, '127.0.0.1', r));
      let handled = 0;
      let done;
      const allHandled = new Promise((r) => { done = r; });
      const relay = await createRelay({
        target: { host: '127.0.0.1', port: server.address().port },
        delayMs: 60000, jitterMs: 1000, idleMs: 600000,
        onDatagram() { if (++handled === 5) done(); },
      });
      const client = dgram.createSocket('udp4');
      for (let i = 0; i < 5; i++) client.send('x' + i, relay.port, '127.0.0.1');
      await allHandled;
      await relay.close();
      await new Promise((r) => client.close(r));
      await new Promise((r) => server.close(r));
      stats = relay.stats();
    })().catch((err) => { console.error(err); process.exit(2); });
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let result;
  try {
    result = await withTimeout(exited, 'child process to exit after relay.close()');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  t.deepEqual(result, { code: 0, signal: null }, err);
  const report = JSON.parse(out);
  t.deepEqual(report.left, []);
  t.is(report.stats.delayed, 5);
  t.is(report.stats.dropped, 5);
});

test('ICMP port-unreachable from a dead target is counted, not thrown', async (t) => {
  const dead = await bindSocket();
  const client = await bindSocket();
  closeAll(t, client);
  const { relay, up } = await relayFor(t, dead);
  await new Promise((resolve) => dead.close(resolve));
  // One at a time: each round trip gives the relay a poll phase in which the
  // previous send's ECONNREFUSED surfaces. An unhandled 'error' event would
  // crash this worker instead of failing an assertion.
  for (const p of payloadsOf(20, 'dead')) {
    const before = up.count;
    await send(client, p, relay.port, relay.host);
    await up.until(before + 1);
  }
  const s = relay.stats();
  t.is(s.upstreamDatagrams, 20);
  t.true(s.errors > 0, `errors: ${s.errors}`);
});

test('works over IPv6 loopback', async (t) => {
  // This machine has ::1; a bind failure here is a real failure, not a skip.
  const { server, client, serverRx, clientRx, relay, up } = await setup(t, {}, { type: 'udp6', host: '::1' });
  echo(server);
  t.is(relay.host, '::1');
  t.is(relay.address().family, 'IPv6');
  const payloads = payloadsOf(20, 'v6', (i) => i * 50);
  await sendPaced(client, payloads, relay, up);
  await serverRx.until(20);
  await clientRx.until(20);
  t.deepEqual(serverRx.msgs.map((m) => m.msg), payloads);
  t.deepEqual(clientRx.msgs.map((m) => m.msg), payloads);
  t.true(serverRx.msgs.every((m) => m.rinfo.address === '::1' && m.rinfo.port !== relay.port));
  t.true(clientRx.msgs.every((m) => m.rinfo.address === '::1' && m.rinfo.port === relay.port));
});

test('invalid options are rejected', async (t) => {
  await t.throwsAsync(() => createRelay({ target: { host: '127.0.0.1', port: 0 } }), { instanceOf: RangeError });
  await t.throwsAsync(() => createRelay({ target: { host: '127.0.0.1', port: 9 }, loss: -0.1 }), { instanceOf: RangeError });
  await t.throwsAsync(() => createRelay({ target: { host: '127.0.0.1', port: 9 }, upstream: { jitterMs: Number.NaN } }), { instanceOf: RangeError });
  await t.throwsAsync(() => createRelay({ target: { host: '127.0.0.1', port: 9 }, maxClients: 0 }), { instanceOf: RangeError });
});
