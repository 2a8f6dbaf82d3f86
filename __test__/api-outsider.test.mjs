// What an outside tester found writing against the README in a hurry: one reader per message
// (iterator or listener), views out of bounds of a resized buffer, handler errors that must not
// fail listen(), a silent throwing authenticate, the secure maxMessageSize ceiling, and the
// server's public surface (connections view, broadcast lists, error wording).
import test from 'ava';
import { kcpwatch, next, poll, until } from './helpers/util.mjs';

const quiet = { log: { destination: 'none' } };

async function pair(t, serverOptions = {}, clientOptions = {}) {
  const server = kcpwatch.createServer({ ...quiet, ...serverOptions });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = kcpwatch.connect({ ...quiet, host: '127.0.0.1', port: address.port, serverKey: server.publicKey, ...clientOptions });
  t.teardown(() => client.close());
  await client.ready();
  return { server, address, client, sconn: await accepted };
}

/** Errors the application's handlers threw, as `uncaughtException` would see them. */
function captureUncaught(t) {
  const errors = [];
  process.setUncaughtExceptionCaptureCallback((err) => errors.push(err));
  t.teardown(() => process.setUncaughtExceptionCaptureCallback(null));
  return errors;
}

/** Resolves with `promise`'s value, or rejects after `ms` (a bounded wait, not a sleep). */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

test('messages held before any reader go to the reader that takes them; a forgotten iterator takes none', async (t) => {
  const { client, sconn } = await pair(t);
  const it = client.messages(); // created, not iterated yet
  for (let i = 0; i < 4; i++) sconn.send(`a${i}`);
  await poll(() => client._heldBytes() === 8, 5000, 'four messages held');
  const fromListener = [];
  client.on('message', (m) => fromListener.push(m.toString()));
  await until(client, 'message', () => fromListener.length === 4);
  t.deepEqual(fromListener, ['a0', 'a1', 'a2', 'a3'], 'the listener took what was held');
  t.is(client._heldBytes(), 0, 'nothing kept for the forgotten iterator');
  // Iterated now, the iterator reads from here on, alone.
  const pending = it.next();
  sconn.send('a4');
  t.deepEqual((await within(pending, 5000, 'next')).value.toString(), 'a4');
  await it.return();
  t.deepEqual(fromListener, ['a0', 'a1', 'a2', 'a3']);
  // And a held message goes to an iterator that takes it, not also to a listener added later.
  client.removeAllListeners('message');
  sconn.send('a5');
  await poll(() => client._heldBytes() === 2, 5000, 'a5 held');
  const second = client.messages();
  t.is((await within(second.next(), 5000, 'next')).value.toString(), 'a5');
  client.on('message', (m) => fromListener.push(m.toString()));
  sconn.send('a6');
  t.is((await within(second.next(), 5000, 'next')).value.toString(), 'a6');
  t.deepEqual(fromListener, ['a0', 'a1', 'a2', 'a3'], 'the listener got neither');
});

test('a for-await loop and a message listener: each message reaches exactly one of them', async (t) => {
  const { client, sconn } = await pair(t);
  const fromLoop = [];
  const fromListener = [];
  const loop = (async () => {
    for await (const m of client) {
      fromLoop.push(m.toString());
      if (fromLoop.length === 10) break;
    }
  })();
  for (let i = 0; i < 5; i++) sconn.send(`x${i}`);
  client.on('message', (m) => fromListener.push(m.toString()));
  for (let i = 5; i < 10; i++) sconn.send(`x${i}`);
  await within(loop, 5000, 'loop');
  t.deepEqual(fromLoop, Array.from({ length: 10 }, (_, i) => `x${i}`));
  t.deepEqual(fromListener, [], 'the listener got none of what the loop read');
  // The loop ended: the listener has the messages again.
  sconn.send('after');
  await until(client, 'message', () => fromListener.length === 1);
  t.deepEqual(fromListener, ['after']);
  t.is(fromLoop.length, 10);
});

test('a pending next() and a listener added after it: the iterator gets every message, the listener none', async (t) => {
  const { client, sconn } = await pair(t);
  const it = client.messages();
  const first = it.next();
  const fromListener = [];
  client.on('message', (m) => fromListener.push(m.toString()));
  for (let i = 0; i < 4; i++) sconn.send(`b${i}`);
  const got = [(await within(first, 5000, 'next')).value.toString()];
  for (let i = 1; i < 4; i++) got.push((await within(it.next(), 5000, 'next')).value.toString());
  t.deepEqual(got, ['b0', 'b1', 'b2', 'b3']);
  t.deepEqual(fromListener, []);
});

test('a forgotten iterator does not stall a listener: 2 MiB stream through a 256 KiB receive queue', async (t) => {
  const { client, sconn } = await pair(t, {}, { maxReceiveQueueBytes: 256 * 1024 });
  client.messages(); // forgotten
  let got = 0;
  client.on('message', () => (got += 1));
  const chunk = Buffer.alloc(32 * 1024, 1);
  const total = 64;
  for (let sent = 0; sent < total; sent++) {
    if (!sconn.send(chunk)) await within(new Promise((resolve) => sconn.once('drain', resolve)), 5000, `drain after ${sent} sent, ${got} received`);
  }
  await until(client, 'message', () => got === total, 5000);
  t.is(got, total);
  t.is(client._heldBytes(), 0, 'nothing held for the forgotten iterator');
});

test('return() while a next() is pending resolves that next() with done; later messages go to the listener', async (t) => {
  const { client, sconn } = await pair(t);
  const it = client.messages();
  const pending = it.next();
  t.deepEqual(await it.return(), { value: undefined, done: true });
  t.deepEqual(await within(pending, 1000, 'the pending next()'), { value: undefined, done: true });
  const got = [];
  client.on('message', (m) => got.push(m.toString()));
  sconn.send('e0');
  await until(client, 'message', () => got.length === 1);
  t.deepEqual(got, ['e0']);
});

for (const kind of ['Uint8Array', 'DataView', 'broadcast']) {
  test(`a ${kind} out of bounds of its resized ArrayBuffer is refused with KcpInvalidOptionError and nothing is sent`, async (t) => {
    const { server, client, sconn } = await pair(t);
    const got = [];
    sconn.on('message', (m) => got.push(m.toString()));
    const cgot = [];
    client.on('message', (m) => cgot.push(m.toString()));
    const rab = new ArrayBuffer(16, { maxByteLength: 64 });
    const view = kind === 'DataView' ? new DataView(rab, 4, 8) : new Uint8Array(rab, 4, 8);
    rab.resize(6);
    const error = t.throws(() => (kind === 'broadcast' ? server.broadcast(view) : client.send(view)), { instanceOf: kcpwatch.KcpInvalidOptionError });
    t.regex(error.message, /out of bounds/);
    t.regex(error.message, kind === 'broadcast' ? /^broadcast\(\)/ : /^send\(\)/);
    // What follows arrives alone: no empty message was queued before it.
    if (kind === 'broadcast') {
      server.broadcast('after');
      await until(client, 'message', () => cgot.length === 1);
      t.deepEqual(cgot, ['after']);
    } else {
      client.send('after');
      await until(sconn, 'message', () => got.length === 1);
      t.deepEqual(got, ['after']);
    }
  });
}

test.serial('a throwing listening handler does not make listen() reject; its error surfaces on its own tick', async (t) => {
  const errors = captureUncaught(t);
  const server = kcpwatch.createServer(quiet);
  t.teardown(() => server.close({ force: true }));
  server.on('listening', () => {
    throw new Error('listening boom');
  });
  const address = await server.listen(0, '127.0.0.1');
  t.is(address.port, server.address().port);
  await within(new Promise((resolve) => setImmediate(resolve)), 1000, 'a tick');
  t.deepEqual(errors.map((e) => e.message), ['listening boom']);
});

test.serial('a throwing authenticate without a server error listener emits one process warning per distinct message', async (t) => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const server = kcpwatch.createServer({
    ...quiet,
    authenticate: () => {
      throw new Error('db down');
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  for (let i = 0; i < 3; i++) {
    const c = kcpwatch.connect({ ...quiet, host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: 'x' });
    t.teardown(() => c.close());
    await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError });
  }
  await within(new Promise((resolve) => setImmediate(resolve)), 1000, 'a tick');
  const ours = warnings.filter((w) => w.name === 'KcpAuthenticateWarning');
  t.is(ours.length, 1, 'once per distinct message');
  t.regex(ours[0].message, /authenticate threw \(Error: db down\)/);
  t.is(ours[0].code, 'KCP_ERR_AUTHENTICATE');
});

test('the secure maxMessageSize ceiling is 127 x (mtu - 24 - 29): createServer enforces what listen() enforces', async (t) => {
  const limit = 127 * (1200 - 24 - 29);
  t.is(limit, 145_669);
  for (const size of [limit + 1, 146_685]) {
    const e = t.throws(() => kcpwatch.createServer({ ...quiet, maxMessageSize: size }), { instanceOf: kcpwatch.KcpInvalidOptionError });
    t.true(e.message.includes(`exceeds ${limit},`), e.message);
    t.throws(() => kcpwatch.connect({ ...quiet, port: 1, serverKey: kcpwatch.generateKeyPair?.().publicKey ?? Buffer.alloc(32, 7), maxMessageSize: size }), {
      instanceOf: kcpwatch.KcpInvalidOptionError,
    });
  }
  const { client, sconn } = await pair(t, { maxMessageSize: limit }, { maxMessageSize: limit });
  const big = Buffer.alloc(limit, 9);
  sconn.send(big);
  const m = await within(new Promise((resolve) => client.once('message', resolve)), 10_000, 'the largest message');
  t.is(m.length, limit);
});

test('server.connections is a read-only view at runtime: no set, delete or clear', async (t) => {
  const { server, client } = await pair(t);
  const view = server.connections;
  t.is(view.size, 1);
  t.is(view.set, undefined);
  t.is(view.delete, undefined);
  t.is(view.clear, undefined);
  const [id, conn] = [...view][0];
  t.is(view.get(id), conn);
  t.true(view.has(id));
  t.deepEqual([...view.keys()], [id]);
  t.deepEqual([...view.values()], [conn]);
  t.deepEqual([...view.entries()], [[id, conn]]);
  const seen = [];
  view.forEach((v, k, m) => seen.push([k, v, m]));
  t.deepEqual(seen, [[id, conn, view]]);
  t.throws(() => {
    'use strict';
    view.size = 5;
  });
  t.is(server.connections, view, 'the same view every time');
  t.is(view.size, 1);
  void client;
});

test('broadcast to a list refuses non-Connection entries before sending, sends once to a duplicated connection, and names itself for null', async (t) => {
  const { server, client, sconn } = await pair(t);
  const got = [];
  client.on('message', (m) => got.push(m.toString()));
  t.throws(() => server.broadcast('x', [sconn, { id: 'not a connection' }]), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /entry 1 is not a Connection/ });
  t.is(server.broadcast('twice?', [sconn, sconn]), 1);
  server.broadcast('end');
  await until(client, 'message', () => got.length === 2);
  t.deepEqual(got, ['twice?', 'end'], 'the refused broadcast sent nothing; the duplicate went once');
  t.throws(() => server.broadcast(null), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /^broadcast\(\) takes a string/ });
  t.throws(() => server.broadcast('x', null), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /^broadcast\(\) takes .*got null/ });
});

test('error messages quote strings alike; an empty host is named as such', (t) => {
  t.throws(() => kcpwatch.rejectAuth('4003'), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "4003"/ });
  t.throws(() => kcpwatch.connect({ host: '', port: 1, serverKey: Buffer.alloc(32, 7) }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /host must be a non-empty string .*got an empty string/,
  });
  t.throws(() => kcpwatch.createClient({ host: '', port: 1, serverKey: Buffer.alloc(32, 7) }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /got an empty string/,
  });
  const server = kcpwatch.createServer(quiet);
  return t.throwsAsync(server.close({ force: 'yes' }), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "yes"/ });
});

test('close(code) with a string code says it got a string', async (t) => {
  const { client } = await pair(t);
  t.throws(() => client.close('4003'), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /got the string "4003"/ });
});

test.serial('a throwing onEvent does not hide the record from server.on("event")', async (t) => {
  const errors = captureUncaught(t);
  let thrown = 0;
  const server = kcpwatch.createServer({
    log: {
      destination: 'none',
      onEvent: () => {
        thrown += 1;
        if (thrown === 1) throw new Error('onEvent boom');
      },
    },
  });
  const seen = [];
  server.on('event', (e) => seen.push(e.name ?? e.event));
  await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  await until(server, 'event', () => seen.length > 0, 5000);
  t.true(seen.length > 0);
  await within(new Promise((resolve) => setImmediate(resolve)), 1000, 'a tick');
  t.deepEqual(errors.map((e) => e.message), ['onEvent boom']);
});

// A second outside pass: values the library cannot turn into text, broadcasts that half-send,
// identity fields that could be reassigned, habits from net/dgram.

test.serial('authenticate throwing values that cannot become text refuses each client, warns once per distinct message, and never crashes', async (t) => {
  const uncaught = captureUncaught(t);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const throwingToString = {
    toString() {
      throw new Error('toString boom');
    },
  };
  const throwingMessage = Object.create(Error.prototype, {
    message: {
      get() {
        throw new Error('message getter boom');
      },
    },
  });
  const cases = {
    nullProto: () => {
      throw Object.create(null);
    },
    rejectNullProto: () => Promise.reject(Object.create(null)),
    badToString: () => {
      throw throwingToString;
    },
    badMessage: () => {
      throw throwingMessage;
    },
    symbol: () => {
      throw Symbol('s');
    },
    rejectSymbol: () => Promise.reject(Symbol('r')),
    huge: () => {
      throw new Error('x'.repeat(100_000));
    },
  };
  const server = kcpwatch.createServer({ ...quiet, authenticate: (token) => cases[token.toString()]() });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  for (const name of [...Object.keys(cases), 'nullProto']) {
    const c = kcpwatch.connect({ ...quiet, host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: name });
    t.teardown(() => c.close());
    await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError }, name);
  }
  await within(new Promise((resolve) => setImmediate(resolve)), 1000, 'a tick');
  t.deepEqual(uncaught.map(String), [], 'nothing escaped to uncaughtException');
  const ours = warnings.filter((w) => w.name === 'KcpAuthenticateWarning');
  // Two cases throw the same thing (an empty null-prototype object): one message, one warning.
  t.is(ours.length, Object.keys(cases).length - 1, ours.map((w) => w.message).join('\n'));
  t.true(ours.some((w) => /\[Object: null prototype\] \{\}/.test(w.message)));
  t.true(ours.every((w) => w.message.length < 1000), 'a huge message is cut short');
  t.true(ours.some((w) => /Symbol\(s\)/.test(w.message)));
  t.is(server.address().port, address.port, 'still listening');
});

test('broadcast with a throwing filter sends to nobody; server.connections (a Map view) is a target', async (t) => {
  const server = kcpwatch.createServer(quiet);
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const client = kcpwatch.createClient({ ...quiet, host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.teardown(() => client.close());
  const conns = [client.connect(), client.connect(), client.connect()];
  await Promise.all(conns.map((c) => c.ready()));
  await poll(() => server.connectionCount === 3, 5000, 'three accepted');
  const got = [];
  conns.forEach((c, i) => c.on('message', (m) => got.push(`${i}:${m}`)));
  let calls = 0;
  t.throws(
    () =>
      server.broadcast('half', () => {
        calls += 1;
        if (calls === 2) throw new Error('filter bug');
        return true;
      }),
    { message: 'filter bug' },
  );
  t.is(server.broadcast('all', server.connections), 3);
  await poll(() => got.length >= 3, 5000, 'three deliveries');
  t.deepEqual(got.sort(), ['0:all', '1:all', '2:all'], 'the throwing broadcast reached nobody');
});

test('a connection\'s identity fields cannot be reassigned, and the server\'s connections stay keyed by the real id', async (t) => {
  const { server, client, sconn } = await pair(t);
  const id = sconn.id;
  for (const field of ['id', 'remoteAddress', 'remotePort', 'localAddress', 'localPort', 'auth', 'stream']) {
    t.throws(() => {
      sconn[field] = 'renamed';
    }, { instanceOf: TypeError }, field);
    t.throws(() => {
      client[field] = 'renamed';
    }, { instanceOf: TypeError }, `client ${field}`);
  }
  t.is(sconn.id, id);
  t.deepEqual([...server.connections.keys()], [id]);
  const closed = next(sconn, 'close');
  client.close();
  await closed;
  t.is(server.connections.size, 0);
});

test('listen(port, host, callback) calls the callback once listening, as net and dgram do', async (t) => {
  const server = kcpwatch.createServer(quiet);
  t.teardown(() => server.close({ force: true }));
  const called = new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = await within(called, 5000, 'the listen callback');
  t.is(address.port, server.address().port);
  const other = kcpwatch.createServer(quiet);
  t.teardown(() => other.close({ force: true }));
  const second = await within(new Promise((resolve) => other.listen(0, resolve)), 5000, 'listen(port, cb)');
  t.is(second.port, other.address().port);
  const third = kcpwatch.createServer(quiet);
  t.teardown(() => third.close({ force: true }));
  await within(new Promise((resolve) => third.listen({ port: 0, host: '127.0.0.1' }, resolve)), 5000, 'listen(options, cb)');
  const fourth = kcpwatch.createServer(quiet);
  t.teardown(() => fourth.close({ force: true }));
  await t.throwsAsync(fourth.listen(0, '127.0.0.1', 'cb'), { instanceOf: kcpwatch.KcpInvalidOptionError, message: /callback/ });
});

test('async methods reject, never throw: close() and listen() with bad options', async (t) => {
  const server = kcpwatch.createServer(quiet);
  let closing;
  t.notThrows(() => {
    closing = server.close({ forc: true });
  });
  await t.throwsAsync(closing, { instanceOf: kcpwatch.KcpInvalidOptionError, message: /did you mean "force"/ });
  let listening;
  t.notThrows(() => {
    listening = server.listen({ prot: 1 });
  });
  await t.throwsAsync(listening, { instanceOf: kcpwatch.KcpInvalidOptionError, message: /did you mean "port"/ });
  await server.close();
});

test('connect without a port says what it got', (t) => {
  t.throws(() => kcpwatch.connect({ ...quiet, serverKey: Buffer.alloc(32, 7) }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
    message: /port must be .*1\.\.65535.*got undefined/,
  });
});
