// Option handling at the edges an outside user met with only the README and the .d.ts: secure-only
// options in raw mode, inherited keys, the mtu range per mode, close() on a closed connection.
import test from 'ava';
import { kcpwatch, next, poll } from './helpers/util.mjs';

const serverKey = Buffer.alloc(32, 7);
const invalid = { instanceOf: kcpwatch.KcpInvalidOptionError, code: 'KCP_ERR_INVALID_OPTION' };

test('raw mode refuses every secure-only option, naming it and secure mode', (t) => {
  const server = [
    ['authenticate', { authenticate: () => true }],
    ['authTimeout', { authTimeout: 1000 }],
    ['handshakeTimeout', { handshakeTimeout: 1000 }],
    ['keepalive', { keepalive: 1000 }],
    ['limits.maxPendingAuth', { limits: { maxPendingAuth: 5 } }],
    ['serverKeys', { serverKeys: [serverKey] }],
    ['keyFile', { keyFile: '/nonexistent/server.key' }],
  ];
  for (const [name, options] of server) {
    const e = t.throws(() => kcpwatch.createServer({ log: false, mode: 'raw', ...options }), invalid, `createServer ${name}`);
    t.regex(e.message, new RegExp(`^${name.replace('.', '\\.')} needs mode 'secure'`), e.message);
  }
  const client = [
    ['token', { token: 'x' }],
    ['serverKey', { serverKey }],
    ['handshakeTimeout', { handshakeTimeout: 10 }],
    ['keepalive', { keepalive: 10 }],
  ];
  for (const [name, options] of client) {
    const e = t.throws(() => kcpwatch.connect({ log: false, port: 9, mode: 'raw', ...options }), invalid, `connect ${name}`);
    t.regex(e.message, new RegExp(`^${name} needs mode 'secure'`), e.message);
    if (name === 'token') continue;
    const c = t.throws(() => kcpwatch.createClient({ log: false, port: 9, mode: 'raw', ...options }), invalid, `createClient ${name}`);
    t.regex(c.message, new RegExp(`^${name} needs mode 'secure'`), c.message);
  }
  // The options both modes share stay accepted in raw mode, and the raw-only one is refused in secure mode.
  const raw = kcpwatch.createServer({ log: false, mode: 'raw', limits: { maxConnectionsPerIp: 5, handshakesPerSecond: 10 }, idleTimeout: 1000 });
  raw.close();
  t.throws(() => kcpwatch.connect({ log: false, port: 9, serverKey, conv: 5 }), { ...invalid, message: /^conv needs mode 'raw'/ });
});

test('inherited option keys are checked and read alike: a misspelt inherited key is refused, a valid one applies', async (t) => {
  const e = t.throws(() => kcpwatch.createServer(Object.create({ idleTimout: 5 })), invalid);
  t.regex(e.message, /unknown option "idleTimout" \(did you mean "idleTimeout"\?\)/);
  t.throws(() => kcpwatch.connect(Object.assign(Object.create({ tokn: 'x' }), { port: 9, serverKey, log: false })), { ...invalid, message: /unknown option "tokn"/ });
  t.throws(() => kcpwatch.createServer({ log: false, limits: Object.create({ maxConnectionPerIp: 5 }) }), { ...invalid, message: /limits: unknown option "maxConnectionPerIp"/ });
  // Valid inherited keys are used, as Node's own createServer options are (a defaults prototype).
  const conn = kcpwatch.connect(Object.assign(Object.create({ mtu: 600, log: false }), { port: 9, host: '127.0.0.1', serverKey }));
  t.teardown(() => conn.close());
  t.is(conn.maxDatagramSize, 600 - 31);
  const records = [];
  const server = kcpwatch.createServer(Object.assign(Object.create({ maxConnections: 7, mode: 'raw' }), { log: { destination: 'none', onEvent: (r) => records.push(r) } }));
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  t.is(server.mode, 'raw');
  // Records come through the log thread: wait for it (bounded), not for a number of turns.
  await poll(() => records.some((r) => r.name === 'kcp:listener_started'), 5000, 'the listener_started record');
  const started = records.find((r) => r.name === 'kcp:listener_started');
  t.truthy(started, records.map((r) => r.name).join());
  t.is(started.max_connections, 7);
});

test('a non-integer mtu names the real range for the mode (and fec)', (t) => {
  const fec = { dataShards: 4, parityShards: 2 };
  for (const [options, range] of [
    [{}, '79..65507'],
    [{ mode: 'raw' }, '50..65507'],
    [{ mode: 'raw', fec }, '58..1500'],
    [{ fec }, '109..65507'],
  ]) {
    for (const mtu of [1200.5, Number.NaN, '1200']) {
      const e = t.throws(() => kcpwatch.createServer({ log: false, ...options, mtu }), invalid, `${JSON.stringify(options)} ${mtu}`);
      t.true(e.message.startsWith(`mtu must be an integer in ${range}`), e.message);
    }
  }
  const e = t.throws(() => kcpwatch.connect({ log: false, port: 9, serverKey, mtu: 1200.5 }), invalid);
  t.true(e.message.startsWith('mtu must be an integer in 79..65507'), e.message);
  // An integer below the mode's minimum keeps the message that says where the bytes go.
  t.throws(() => kcpwatch.createServer({ log: false, mtu: 60 }), { ...invalid, message: /^mtu 60 is too small for secure mode: at least 79/ });
});

test('close() is idempotent: once closing or closed, a further call does nothing, whatever its arguments', async (t) => {
  const conn = kcpwatch.connect({ log: false, mode: 'raw', host: '127.0.0.1', port: 9, linger: 0 });
  t.teardown(() => conn.close());
  // An open connection refuses a bad code: it would be sent.
  t.throws(() => conn.close(999), { ...invalid, message: /close code must be 1000 or an integer in 3000\.\.4999, got 999/ });
  t.is(conn.state, 'established');
  const closed = next(conn, 'close');
  conn.close(4000, 'bye');
  t.notThrows(() => conn.close(999), 'closing');
  t.notThrows(() => conn.close(1000, 'x'.repeat(500)), 'closing');
  const [, info] = await closed;
  t.is(info.code, 4000, 'the first close() decides the code');
  t.is(conn.state, 'closed');
  t.notThrows(() => conn.close(999), 'closed');
  t.notThrows(() => conn.close('x'), 'closed');
  t.notThrows(() => conn.close(), 'closed');
});

test("an empty log.outputs is refused, pointing at destination 'none' and log: false, not silently a log that writes nothing", (t) => {
  const e = t.throws(() => kcpwatch.createServer({ log: { outputs: [] } }), invalid);
  t.regex(e.message, /log\.outputs is empty/);
  t.regex(e.message, /destination: 'none'/);
  t.regex(e.message, /log: false/);
  t.throws(() => kcpwatch.createClient({ log: { outputs: [] } }), invalid);
});
