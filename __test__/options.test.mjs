import test from 'ava';
import { kcpwatch } from './helpers/util.mjs';

test('presets match the design table', (t) => {
  const { presets } = kcpwatch;
  t.deepEqual(
    Object.fromEntries(Object.entries(presets).map(([k, p]) => [k, [p.nodelay ? 1 : 0, p.interval, p.resend, p.nc ? 1 : 0]])),
    { normal: [0, 40, 2, 1], fast: [0, 30, 2, 1], fast2: [1, 20, 2, 1], fast3: [1, 10, 2, 1], game: [1, 10, 2, 1] },
  );
  t.deepEqual([presets.game.sndWnd, presets.game.rcvWnd, presets.game.mtu], [256, 256, 1200]);
  t.true(Object.isFrozen(presets));
});

test('every knob is validated with a clear message', (t) => {
  for (const [key, value] of [
    ['interval', 5],
    ['sndWnd', 0],
    ['rcvWnd', 70000],
    ['mtu', 70000],
    ['resend', -1],
    ['nodelay', 'yes'],
    ['stream', 1],
    ['deadLink', 1],
    ['idleTimeout', 0],
    ['maxMessageSize', 1.5],
    ['highWaterMark', 0],
    ['minRto', 0],
  ]) {
    const err = t.throws(() => kcpwatch.createServer({ [key]: value }), { code: 'KCP_ERR_INVALID_OPTION' });
    t.regex(err.message, new RegExp(key));
  }
});

test('secure mode refuses an mtu too small for the session overhead up front, naming the real minimum (79)', async (t) => {
  const serverKey = Buffer.alloc(32, 7);
  for (const mtu of [50, 53, 54, 60, 78]) {
    const e = t.throws(() => kcpwatch.createServer({ log: false, mtu, maxMessageSize: 100 }), { instanceOf: kcpwatch.KcpInvalidOptionError }, `mtu ${mtu}`);
    t.regex(e.message, new RegExp(`^mtu ${mtu} .*secure mode.*at least 79`), e.message);
    t.throws(() => kcpwatch.connect({ log: false, port: 9, serverKey, mtu, maxMessageSize: 100 }), {
      instanceOf: kcpwatch.KcpInvalidOptionError,
      message: /at least 79/,
    });
  }
  const server = kcpwatch.createServer({ log: false, mtu: 79, maxMessageSize: 100 });
  t.teardown(() => server.close());
  await t.notThrowsAsync(server.listen(0, '127.0.0.1'));
  const raw = kcpwatch.createServer({ log: false, mode: 'raw', mtu: 50, maxMessageSize: 26 });
  t.teardown(() => raw.close());
  await t.notThrowsAsync(raw.listen(0, '127.0.0.1'));
});

test('limits of 0 are refused: no limit means a large number', (t) => {
  for (const key of ['handshakesPerSecondPerIp', 'handshakeBurstPerIp', 'handshakesPerSecond', 'handshakeBurst', 'maxConnectionsPerIp', 'maxConnectionsPerPrefix', 'maxPendingAuth']) {
    t.throws(() => kcpwatch.createServer({ log: false, limits: { [key]: 0 } }), {
      instanceOf: kcpwatch.KcpInvalidOptionError,
      message: new RegExp(`limits\\.${key} must be an integer in 1\\.\\.`),
    });
  }
});

test('serverKeys: more than four keys, or the same key twice, are refused by createServer', (t) => {
  const key = () => kcpwatch.generateKeyPair().privateKey;
  t.throws(() => kcpwatch.createServer({ log: false, serverKeys: [key(), key(), key(), key(), key()] }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /serverKeys.*at most 4.*got 5/,
  });
  const k = key();
  t.throws(() => kcpwatch.createServer({ log: false, serverKeys: [k, Buffer.from(k).toString('base64')] }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /serverKeys\[1\] is the same key as serverKeys\[0\]/,
  });
  t.notThrows(() => kcpwatch.createServer({ log: false, serverKeys: [key(), key(), key(), key()] }));
});

test('option values that cannot become text still get KcpInvalidOptionError, never a TypeError from building the message', (t) => {
  const bare = () => Object.create(null);
  for (const options of [
    { log: { level: bare() } },
    { log: { format: bare() } },
    { log: { ringCapacity: bare() } },
    { log: { destination: 1n } },
    { log: { destination: bare() } },
    { log: { ipPrivacy: { mode: bare() } } },
    { log: { outputs: [{ destination: 'stdout', level: bare() }] } },
    { detection: { tableCapacity: bare() } },
    { detection: { allowList: [bare()] } },
    { detection: { enforce: { rules: [bare()] } } },
    { port: bare() },
    { preset: bare() },
    { log: { destination: { http: 'http://127.0.0.1:9/x', kind: bare() } } },
    { mode: bare() },
    { limits: { maxConnectionsPerIp: bare() } },
  ]) {
    t.throws(() => kcpwatch.createServer(options), { instanceOf: kcpwatch.KcpInvalidOptionError }, JSON.stringify(Object.keys(options)));
  }
});

test('the relay refuses settings that cannot become text with its RangeError, not a TypeError', async (t) => {
  await t.throwsAsync(kcpwatch.createRelay({ target: { host: '127.0.0.1', port: 9 }, loss: Object.create(null) }), { instanceOf: RangeError, message: /loss must be .*got an object/ });
});
