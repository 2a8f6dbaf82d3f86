import test from 'ava';
import { echoServer, kcpwatch, message, next, until } from './helpers/util.mjs';

test('send() validates what it is given', async (t) => {
  const { server, address } = await echoServer({ maxMessageSize: 1000 });
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, maxMessageSize: 1000 });
  t.throws(() => client.send(Buffer.alloc(1001)), { instanceOf: kcpwatch.KcpMessageTooLargeError, code: 'KCP_ERR_MESSAGE_TOO_LARGE' });
  t.true(client.send(Buffer.alloc(0)), 'an empty message is a message (ikcp sends one as a PUSH of length 0)');
  t.throws(() => client.send(42), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.true(client.send('fits'));
  client.close();
  t.is(client.state, 'closing');
  t.throws(() => client.send('late'), { instanceOf: kcpwatch.KcpClosedError, code: 'KCP_ERR_CLOSED' });
  await next(client, 'close');
  await server.close();
});

test('backpressure: send() reports a full queue and drain follows the acknowledgements', async (t) => {
  const { server, address } = await echoServer();
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, highWaterMark: 4096 });
  let results = [];
  for (let i = 0; i < 40; i++) results.push(client.send(Buffer.alloc(512, i)));
  t.true(results[0]);
  t.false(results.at(-1), 'the queue is reported full past the high-water mark');
  t.true(client.queuedBytes >= 4096);
  await next(client, 'drain');
  t.true(client.queuedBytes <= 2048);
  client.close();
  await server.close();
});

test('the hard queue limit throws KcpQueueFullError when nothing is acknowledged', async (t) => {
  // Nobody listens on this port, so nothing is ever acknowledged.
  const { server, address } = await echoServer();
  await server.close();
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, maxSendQueueBytes: 10_000, linger: 100 });
  for (let i = 0; i < 9; i++) client.send(Buffer.alloc(1000));
  t.throws(() => client.send(Buffer.alloc(2000)), { instanceOf: kcpwatch.KcpQueueFullError });
  client.close();
  await next(client, 'close');
});

test('async iteration yields messages in order and ends at close', async (t) => {
  const { server, address } = await echoServer();
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  const iterator = client.messages();
  for (let i = 0; i < 50; i++) client.send(message(i, 200));
  const got = [];
  for await (const m of iterator) {
    got.push(Buffer.from(m));
    if (got.length === 50) client.close();
  }
  t.deepEqual(got, Array.from({ length: 50 }, (_, i) => message(i, 200)));
  t.is(client.state, 'closed');
  await server.close();
});

test('the server sees a vanished raw client as idle_timeout with the byte counts', async (t) => {
  // Raw mode: a secure client's keepalives would keep the session open while it lives.
  const { server, address } = await echoServer({ idleTimeout: 300, mode: 'raw' });
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw' });
  client.send('one');
  client.send('two');
  const [conn] = await accepted;
  const [reason, info] = await next(conn, 'close');
  t.is(reason, 'idle_timeout');
  t.is(info.initiator, 'local');
  t.is(info.payloadBytesIn, 6);
  t.is(info.messagesIn, 2);
  t.true(info.durationMs >= 300);
  client.close();
  await server.close();
});

test('close() on the client reports local_closed after queued data is acknowledged', async (t) => {
  const { server, address } = await echoServer();
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  // Established first: a close() before ready() abandons the handshake and sends nothing.
  await client.ready();
  for (let i = 0; i < 20; i++) client.send(message(i, 3000));
  client.close();
  const [reason, info] = await next(client, 'close');
  t.is(reason, 'local_closed');
  t.is(info.messagesOut, 20);
  t.is(client.closeInfo, info);
  await server.close();
});

test('stream mode delivers the byte stream in order', async (t) => {
  const { server, address } = await echoServer({ stream: true });
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, stream: true });
  const sent = Buffer.concat(Array.from({ length: 200 }, (_, i) => message(i, 3000)));
  for (let at = 0; at < sent.length; at += 777) client.send(sent.subarray(at, at + 777));
  const chunks = [];
  let total = 0;
  client.on('message', (m) => {
    chunks.push(Buffer.from(m));
    total += m.length;
  });
  await until(client, 'message', () => total >= sent.length);
  t.true(Buffer.concat(chunks).equals(sent));
  client.close();
  await server.close();
});

test('a panic inside one session closes it with internal_error and spares the others', async (t) => {
  const { server, address } = await echoServer();
  const conns = [];
  server.on('connection', (c) => conns.push(c));
  const a = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  const b = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  a.send('a');
  b.send('b');
  await Promise.all([next(a, 'message'), next(b, 'message')]);
  const victim = conns.find((c) => c.remotePort === a.localPort);
  const closed = next(victim, 'close');
  victim._injectEngineFault();
  const [reason] = await closed;
  t.is(reason, 'internal_error');
  b.send('still here');
  const [echo] = await next(b, 'message');
  t.is(echo.toString(), 'still here');
  t.is(server.stats().panics, 1);
  a.close();
  b.close();
  await server.close();
});
