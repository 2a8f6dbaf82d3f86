// The API a game developer reaches for (issue #15): identity from authenticate, lookup and
// broadcast, close codes, typed errors, options that forgive nothing silently, the ESM entry.
import test from 'ava';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kcpwatch, next, runProcess, until } from './helpers/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const quiet = { log: { destination: 'none' } };
/** A well-formed server key, for clients that never reach a server. */
const KEY = Buffer.alloc(32, 7).toString('base64');

async function secureServer(t, options = {}, onConnection) {
  const server = kcpwatch.createServer({ ...quiet, ...options }, onConnection);
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  return { server, address };
}

test('error classes: one per code, real classes with their code on the class and on each error', (t) => {
  const { errorFor } = kcpwatch;
  const classes = Object.entries(kcpwatch).filter(([name, v]) => typeof v === 'function' && /^Kcp.+Error$/.test(name) && name !== 'KcpError');
  t.true(classes.length >= 20);
  const codes = new Set();
  for (const [name, Cls] of classes) {
    t.is(Cls.name, name);
    t.regex(Cls.code, /^KCP_ERR_[A-Z_]+$/, name);
    t.false(codes.has(Cls.code), `${Cls.code} is one class's`);
    codes.add(Cls.code);
    const e = new Cls('m');
    t.true(e instanceof Cls && e instanceof kcpwatch.KcpError && e instanceof Error);
    t.is(e.name, name);
    t.is(e.code, Cls.code);
    const mapped = errorFor(Cls.code, 'from native');
    t.true(mapped instanceof Cls, `${Cls.code} maps onto ${name}`);
  }
  t.is(new kcpwatch.KcpError('m').code, 'KCP_ERR_GENERIC');
});

test('authenticate: the identity it returns is conn.auth; true still accepts; false, null and undefined refuse', async (t) => {
  const players = new Map([
    ['alice', { userId: 'u-1', name: 'alice' }],
    ['yes', true],
    ['zero', 0],
  ]);
  const seen = [];
  const { server, address } = await secureServer(t, { authenticate: async (token) => players.get(token.toString()) ?? (token.toString() === 'null' ? null : false) }, (conn) => seen.push(conn));
  for (const [token, auth] of players) {
    const c = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token });
    t.teardown(() => c.close());
    await c.ready();
    await until(server, 'connection', () => seen.some((s) => s.remotePort === c.localPort));
    t.deepEqual(seen.find((s) => s.remotePort === c.localPort).auth, auth, token);
    t.is(c.auth, undefined, 'client connections have no identity');
  }
  for (const token of ['nobody', 'null']) {
    const c = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token });
    await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError }, token);
  }
  t.is(server.connectionCount, players.size);
});

test('a server without authenticate gives conn.auth undefined', async (t) => {
  const { address, server } = await secureServer(t);
  const accepted = next(server, 'connection');
  const c = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.teardown(() => c.close());
  const [conn] = await accepted;
  t.is(conn.auth, undefined);
});

test('server.connections is a live read-only map by id; server.connection(id) finds one; a connection leaves it before its close event', async (t) => {
  const { server, address } = await secureServer(t);
  t.is(server.connections.size, 0);
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.teardown(() => client.close());
  const conns = Array.from({ length: 5 }, () => client.connect());
  await Promise.all(conns.map((c) => c.ready()));
  await until(server, 'connection', () => server.connections.size === 5);
  const view = server.connections;
  t.is(view.set, undefined, 'read-only at runtime too, not the internal Map');
  for (const [id, conn] of view) {
    t.is(conn.id, id);
    t.is(server.connection(id), conn);
  }
  t.is(server.connection('K0000000000000000000000'), undefined);
  const leaving = [...view.values()][0];
  const closed = new Promise((resolve) => leaving.once('close', () => resolve(server.connection(leaving.id))));
  leaving.close();
  t.is(await closed, undefined);
  t.is(view.size, 4, 'the same view follows the server');
});

test('broadcast: one message to every established connection, to those a filter accepts, or to a list; size checked once', async (t) => {
  const { server, address } = await secureServer(t, { authenticate: (token) => ({ team: token.toString() }) });
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.teardown(() => client.close());
  const teams = ['red', 'red', 'blue', 'blue', 'blue'];
  const conns = teams.map((team) => client.connect({ token: team }));
  await Promise.all(conns.map((c) => c.ready()));
  await until(server, 'connection', () => server.connections.size === teams.length);
  const received = conns.map(() => []);
  conns.forEach((c, i) => c.on('message', (m) => received[i].push(m.toString())));

  t.is(server.broadcast('all'), 5);
  t.is(server.broadcast(Buffer.from('blue'), (conn) => conn.auth.team === 'blue'), 3);
  const reds = [...server.connections.values()].filter((c) => c.auth.team === 'red');
  t.is(server.broadcast(new TextEncoder().encode('red'), reds), 2);
  for (let i = 0; i < 5; i++) {
    await until(conns[i], 'message', () => received[i].length === 2);
    t.deepEqual(received[i], ['all', teams[i]], `connection ${i}`);
  }
  t.throws(() => server.broadcast(Buffer.alloc(65537)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  t.throws(() => server.broadcast('x', 42), { instanceOf: kcpwatch.KcpInvalidOptionError });
  // Another server's connection, or a closed one, is skipped.
  const closing = [...server.connections.values()][0];
  closing.close();
  t.is(server.broadcast('after', [closing, { id: 'not a connection' }].filter((c) => c === closing)), 0);
});

test('broadcast to 1,000 connections queues them all in one turn and every connection gets the message once', async (t) => {
  const limits = { maxConnectionsPerIp: 2000, maxConnectionsPerPrefix: 2000, handshakesPerSecondPerIp: 100_000, handshakeBurstPerIp: 100_000 };
  const { server, address } = await secureServer(t, { mode: 'raw', limits });
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: address.port, mode: 'raw' });
  t.teardown(() => client.close());
  const conns = Array.from({ length: 1000 }, () => client.connect());
  const arrivals = new EventEmitter();
  let got = 0;
  for (const c of conns) {
    c.send('hi');
    c.on('message', (m) => {
      t.is(m.length, 64);
      got += 1;
      arrivals.emit('message');
    });
  }
  await until(server, 'connection', () => server.connections.size === 1000, 20_000);
  // Count the crossings into Rust (the transport is private to TypeScript, not to a test).
  const native = server.transport.native;
  const sendBatch = native.sendBatch;
  let crossings = 0;
  native.sendBatch = function (batch) {
    crossings += 1;
    return sendBatch.call(this, batch);
  };
  t.teardown(() => (native.sendBatch = sendBatch));
  t.is(server.broadcast(Buffer.alloc(64, 7)), 1000);
  await Promise.resolve();
  t.is(crossings, 1, 'one native call for the whole broadcast');
  await until(arrivals, 'message', () => got === 1000, 20_000);
  t.is(got, 1000);
});

test('close(code, reason): validated as WebSocket does, in the local close info and, in secure mode, the peer\'s', async (t) => {
  const { server, address } = await secureServer(t);
  const accepted = next(server, 'connection');
  const c = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  await c.ready();
  const [conn] = await accepted;
  for (const [code, reason] of [[999], [1001], [2999], [5000], [4000.5], ['4000'], [4000, 'x'.repeat(124)], [4000, 'é'.repeat(62)], [undefined, 'why']]) {
    t.throws(() => conn.close(code, reason), { instanceOf: kcpwatch.KcpInvalidOptionError }, `${code} ${reason?.length}`);
  }
  t.is(conn.state, 'established', 'a refused close() closes nothing');
  const serverSide = new Promise((resolve) => conn.once('close', (reason, info) => resolve({ reason, info })));
  const clientSide = new Promise((resolve) => c.once('close', (reason, info) => resolve({ reason, info })));
  conn.close(4001, 'kicked: afk');
  const local = await serverSide;
  t.is(local.reason, 'local_closed');
  t.is(local.info.code, 4001);
  t.is(local.info.description, 'kicked: afk');
  const remote = await clientSide;
  t.is(remote.reason, 'peer_closed');
  t.is(remote.info.code, 4001, 'the DISCONNECT carries the code');
  t.is(remote.info.description, 'kicked: afk');
  conn.close(4002, 'again');
  t.is(conn.closeInfo.code, 4001, 'idempotent: the first close stands');
});

test('ready() rejects for a connection closed before it was established, and resolves for one established and then closed', async (t) => {
  const { server, address } = await secureServer(t);
  const early = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  const readyEarly = early.ready();
  early.close();
  await t.throwsAsync(readyEarly, { instanceOf: kcpwatch.KcpClosedError });
  await t.throwsAsync(early.ready(), { instanceOf: kcpwatch.KcpClosedError });

  const late = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  await late.ready();
  const closed = next(late, 'close');
  late.close();
  await closed;
  t.is(late.state, 'closed');
  await t.notThrowsAsync(late.ready(), 'it was established: ready() says so even after the close');
});

test('unknown or misspelt option keys throw KcpInvalidOptionError naming the closest valid key, at every level', async (t) => {
  const invalid = (fn, near) => {
    const e = t.throws(fn, { instanceOf: kcpwatch.KcpInvalidOptionError });
    t.regex(e.message, new RegExp(`did you mean "${near}"`), e.message);
  };
  invalid(() => kcpwatch.createServer({ idleTimout: 1000 }), 'idleTimeout');
  invalid(() => kcpwatch.createServer({ authenticte: () => true }), 'authenticate');
  invalid(() => kcpwatch.createServer({ limits: { maxConnectionPerIp: 1 } }), 'maxConnectionsPerIp');
  invalid(() => kcpwatch.createServer({ log: { destnation: 'none' } }), 'destination');
  invalid(() => kcpwatch.createServer({ log: { outputs: [{ destination: 'stdout', fromat: 'json' }] } }), 'format');
  invalid(() => kcpwatch.createServer({ log: { destination: { file: '/tmp/x', maxByte: 1 } } }), 'maxBytes');
  invalid(() => kcpwatch.createServer({ log: { ipPrivacy: { mode: 'truncate', v4prefix: 16 } } }), 'v4Prefix');
  invalid(() => kcpwatch.createServer({ detection: { enabeld: false } }), 'enabled');
  invalid(() => kcpwatch.createServer({ detection: { enforce: { refuseMS: 1000 } } }), 'refuseMs');
  invalid(() => kcpwatch.createClient({ port: 1, maxConnection: 5 }), 'maxConnections');
  invalid(() => kcpwatch.connect({ port: 1, tokn: 'x' }), 'token');
  invalid(() => kcpwatch.connect({ port: 1, handshakeTimout: 10 }), 'handshakeTimeout');
  const client = kcpwatch.createClient({ port: 1, serverKey: KEY });
  t.teardown(() => client.close());
  invalid(() => client.connect({ tokem: 'x' }), 'token');
  const server = kcpwatch.createServer(quiet);
  const e = await t.throwsAsync(server.listen({ prot: 0 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.regex(e.message, /did you mean "port"/);
  await t.throwsAsync(server.close({ forse: true }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /did you mean "force"/ });
});

test('createServer(handler) works; createServer(null) and listen(null) are typed errors', async (t) => {
  const server = kcpwatch.createServer((conn) => conn.on('message', (m) => conn.send(m)));
  // A handler-only server keeps the default options (secure mode, records to stdout): quiet it.
  t.is(server.mode, 'secure');
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: server.publicKey });
  t.teardown(() => c.close());
  c.send('echo');
  const [m] = await next(c, 'message');
  t.is(m.toString(), 'echo');
  t.throws(() => kcpwatch.createServer(null), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got null/ });
  t.throws(() => kcpwatch.createServer('4000'), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "4000"/ });
  t.throws(() => kcpwatch.createServer({}, 'not a function'), { instanceOf: kcpwatch.KcpInvalidOptionError });
  const other = kcpwatch.createServer(quiet);
  await t.throwsAsync(other.listen(null), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got null/ });
  await t.throwsAsync(other.listen('4000'), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /the string "4000"/ });
  t.is(other.address(), null, 'nothing was bound');
});

test("connect({ port: '4000' }) says it got a string; options are checked by createServer and connect, before any socket", (t) => {
  t.throws(() => kcpwatch.connect({ port: '4000' }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "4000"/ });
  t.throws(() => kcpwatch.createServer({ port: '4000' }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "4000"/ });
  t.throws(() => kcpwatch.connect(null), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got null/ });
  t.throws(() => kcpwatch.connect({ port: 1, conv: 5 }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /conv needs mode 'raw'/ });
  t.throws(() => kcpwatch.createServer({ log: { level: 'verbose' } }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => kcpwatch.connect({ port: 1, rcvWnd: 4, maxMessageSize: 65536 }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /stream: true/ });
});

test('the maxMessageSize ceiling is min(127, rcvWnd) x (mtu - 24 - 29 in secure mode), stated in the error', (t) => {
  const cases = [
    [{ mode: 'secure', mtu: 1200, rcvWnd: 256 }, 127 * (1200 - 53)],
    [{ mode: 'raw', mtu: 1200, rcvWnd: 256 }, 127 * (1200 - 24)],
    [{ mode: 'raw', mtu: 1400, rcvWnd: 32 }, 32 * (1400 - 24)],
    [{ mode: 'secure', mtu: 576, rcvWnd: 16 }, 16 * (576 - 53)],
  ];
  for (const [options, limit] of cases) {
    t.notThrows(() => kcpwatch.createServer({ ...quiet, ...options, maxMessageSize: limit }), JSON.stringify(options));
    const e = t.throws(() => kcpwatch.createServer({ ...quiet, ...options, maxMessageSize: limit + 1 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
    t.true(e.message.includes(`exceeds ${limit},`), e.message);
    t.notThrows(() => kcpwatch.createServer({ ...quiet, ...options, maxMessageSize: limit + 1, stream: true }), 'stream mode has no message ceiling');
  }
});

test("pinoSink keeps the logger's name: the record's name goes under event", (t) => {
  const calls = [];
  const logger = { info: (obj, msg) => calls.push({ obj, msg }), warn() {}, error() {} };
  kcpwatch.pinoSink(logger)({ name: 'kcp:connection_established', level: 30, time: 1, msg: 'hello', severity: 6, seq: 0 });
  t.is(calls.length, 1);
  t.is(calls[0].obj.event, 'kcp:connection_established');
  t.false('name' in calls[0].obj, "pino's own name binding is not overwritten");
  t.is(calls[0].msg, 'hello');
});

test('the ESM entry exports every name of the CommonJS build, and the package resolves by its exports map', async (t) => {
  const esm = await import('../index.mjs');
  t.deepEqual(Object.keys(esm).filter((k) => k !== 'default' && k !== '__esModule').sort(), Object.keys(kcpwatch).sort());
  t.is(esm.default, kcpwatch);
  t.is(esm.createServer, kcpwatch.createServer, 'one copy of the library');
  const selfEsm = await import('kcpwatch');
  t.is(selfEsm.createServer, kcpwatch.createServer);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  t.deepEqual(pkg.exports['.'], { types: './index.d.ts', import: './index.mjs', require: './index.js' });
});

/** The first fenced js block of the README's "Use" section. */
function readmeExample() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const use = readme.slice(readme.indexOf('\n## Use'));
  const match = /```js\n([\s\S]*?)```/.exec(use);
  return match[1];
}

test("the README's example runs as written (an ES module importing 'kcpwatch'), with only the port substituted", async (t) => {
  const code = readmeExample();
  t.regex(code, /^import \{[^}]*\} from 'kcpwatch';/m, 'an ES module');
  t.true(code.includes('listen(4000'), 'the README listens on 4000');
  const runnable = code.replace(/listen\(4000, '0\.0\.0\.0'\)/, "listen(0, '127.0.0.1')").replaceAll('port: 4000', 'port: server.address().port');
  t.not(runnable, code);
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'kcpwatch'), 'dir');
  writeFileSync(join(dir, 'example.mjs'), runnable);
  const r = await runProcess(t, process.execPath, [join(dir, 'example.mjs')], { cwd: dir, timeoutMs: 30_000 });
  t.is(r.code, 0, r.err);
  const lines = r.out.split('\n').filter((l) => l && !l.startsWith('{'));
  t.true(lines.some((l) => /^alice joined from 127\.0\.0\.1 \d+$/.test(l)), r.out);
  t.true(lines.includes('hello'), r.out);
  t.true(lines.some((l) => /^alice (peer_closed|shutdown) \d+ \d+$/.test(l)), r.out);
  t.true(r.out.includes('"name":"kcp:connection_established"'), 'the security records went to stdout');
});

test('the strict-TypeScript lobby example builds under node16, bundler and CommonJS resolution, and runs for a bounded number of ticks', async (t) => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const lobby = join(root, 'examples', 'lobby');
  // Inside the package, so that `require('kcpwatch')` resolves through its exports map.
  mkdirSync(join(lobby, 'build'), { recursive: true });
  const out = mkdtempSync(join(lobby, 'build', 'test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  for (const config of ['node16', 'bundler', 'cjs']) {
    const args = [tsc, '-p', join(lobby, `tsconfig.${config}.json`), ...(config === 'bundler' ? [] : ['--outDir', join(out, config)])];
    const r = await runProcess(t, process.execPath, args, { cwd: root, timeoutMs: 60_000 });
    t.is(r.code, 0, `${config}: ${r.out}${r.err}`);
  }
  for (const config of ['node16', 'cjs']) {
    const r = await runProcess(t, process.execPath, [join(out, config, 'lobby.js'), '30'], { cwd: root, timeoutMs: 30_000 });
    t.is(r.code, 0, `${config}: ${r.out}${r.err}`);
    t.notRegex(r.out, /FAIL/);
    t.regex(r.out, /^ok {3}mallory was kicked with the code, half-way$/m);
    t.regex(r.out, /^ok {3}the download waited for drain$/m);
    t.regex(r.out, /lobby: 30 ticks, alice 30 ticks 1048576 map bytes/);
  }
});

test('connect({ host }) resolves a name as listen() does and returns the connection at once; what is sent meanwhile goes out in order', async (t) => {
  // Bound by name too, so both sides agree whichever family the resolver gives first.
  const server = kcpwatch.createServer({ ...quiet, mode: 'raw' }, (conn) => conn.on('message', (m) => conn.send(m)));
  const { port, address } = await server.listen(0, 'localhost');
  t.teardown(() => server.close({ force: true }));
  for (const mode of ['raw', 'secure']) {
    const s = mode === 'raw' ? server : kcpwatch.createServer(quiet, (conn) => conn.on('message', (m) => conn.send(m)));
    const p = mode === 'raw' ? port : (await s.listen(0, 'localhost')).port;
    if (s !== server) t.teardown(() => s.close({ force: true }));
    const c = kcpwatch.connect({ host: 'localhost', port: p, mode, ...(mode === 'raw' ? { conv: 4242 } : { serverKey: s.publicKey }) });
    t.teardown(() => c.close());
    t.is(c.state, 'connecting', `${mode}: returned before the name resolved`);
    t.is(c.remoteAddress, 'localhost');
    const received = [];
    c.on('message', (m) => received.push(m.toString()));
    for (let i = 0; i < 5; i++) c.send(`m${i}`);
    await c.ready();
    t.is(c.remoteAddress, address, `${mode}: the resolved address`);
    t.regex(c.id, /^K[0-9A-Za-z]{22}$/);
    if (mode === 'raw') t.is(c.conv, 4242);
    await until(c, 'message', () => received.length === 5);
    t.deepEqual(received, ['m0', 'm1', 'm2', 'm3', 'm4'], mode);
  }
});

test('connect() to a name that does not resolve fails the connection with KcpResolveError; closing before it resolved ends it at once', async (t) => {
  const c = kcpwatch.connect({ host: 'no-such-host.invalid', port: 4000, serverKey: KEY });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  // (events.once would reject on the 'error' event that comes first.)
  const closed = new Promise((resolve) => c.once('close', resolve));
  await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpResolveError, message: /no-such-host\.invalid/ });
  const reason = await closed;
  t.is(reason, 'connect_failed');
  t.is(errors.length, 1);

  const early = kcpwatch.connect({ host: 'localhost', port: 4000, mode: 'raw' });
  early.send('never');
  const [earlyReason] = await Promise.all([next(early, 'close').then(([r]) => r), Promise.resolve(early.close())]);
  t.is(earlyReason, 'local_closed');
  await t.throwsAsync(early.ready(), { instanceOf: kcpwatch.KcpClosedError });
  // createClient() resolves names the same way (__test__/client-host.test.mjs).
});
