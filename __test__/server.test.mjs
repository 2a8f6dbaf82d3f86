import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoServer, kcpwatch, message, next, until } from './helpers/util.mjs';

test('listen binds an ephemeral port and address() reports it', async (t) => {
  const server = kcpwatch.createServer();
  t.is(server.address(), null);
  const address = await server.listen(0, '127.0.0.1');
  t.is(address.address, '127.0.0.1');
  t.is(address.family, 'IPv4');
  t.true(address.port > 0);
  t.deepEqual(server.address(), address);
  await server.close();
  t.is(server.address(), null);
});

test('echoes messages with exact contents and emits connection with real addresses', async (t) => {
  const { server, address } = await echoServer();
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  const received = [];
  client.on('message', (m) => received.push(Buffer.from(m)));
  const sent = Array.from({ length: 300 }, (_, i) => message(i, 4000));
  for (const m of sent) client.send(m);
  const [conn] = await accepted;
  await client.ready();
  t.regex(conn.id, /^K[0-9A-Za-z]{22}$/);
  t.is(conn.conv, client.conv);
  t.is(conn.remoteAddress, '127.0.0.1');
  t.is(conn.remotePort, client.localPort);
  t.is(conn.localPort, address.port);
  await until(client, 'message', () => received.length === sent.length);
  t.deepEqual(received, sent);
  client.close();
  await server.close();
});

test('IPv6 loopback works', async (t) => {
  const { server, address } = await echoServer({}, '::1');
  t.is(address.family, 'IPv6');
  const client = kcpwatch.connect({ host: '::1', port: address.port, serverKey: server.publicKey });
  client.send('over v6');
  const [m] = await next(client, 'message');
  t.is(m.toString(), 'over v6');
  t.is(client.remoteAddress, '::1');
  client.close();
  await server.close();
});

test('a dual-stack server reports IPv4 peers as IPv4', async (t) => {
  const { server, address } = await echoServer({}, '::');
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  client.send('v4 to ::');
  const [conn] = await accepted;
  t.is(conn.remoteAddress, '127.0.0.1');
  client.close();
  await server.close();
});

test('binding a used port fails with KcpAddressInUseError', async (t) => {
  const { server, address } = await echoServer();
  const other = kcpwatch.createServer({ log: false });
  const err = await t.throwsAsync(other.listen(address.port, '127.0.0.1'), {
    instanceOf: kcpwatch.KcpAddressInUseError,
  });
  t.is(err.code, 'KCP_ERR_ADDR_IN_USE');
  t.true(err instanceof kcpwatch.KcpError);
  await server.close();
});

test('close() ends every connection with reason shutdown before the server closes', async (t) => {
  const { server, address } = await echoServer();
  const clients = [0, 1, 2].map(() => kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey }));
  const order = [];
  server.on('connection', (conn) => conn.on('close', (reason) => order.push(reason)));
  for (const c of clients) c.send('hi');
  await until(server, 'connection', () => server.connectionCount === 3);
  server.on('close', () => order.push('server'));
  await server.close();
  t.deepEqual(order, ['shutdown', 'shutdown', 'shutdown', 'server']);
  t.is(server.connectionCount, 0);
  for (const c of clients) c.close();
  await t.throwsAsync(server.listen(), { instanceOf: kcpwatch.KcpClosedError });
});

test('stats() counts datagrams, opens and guard drops', async (t) => {
  // Raw mode: a 5-byte datagram is a runt there (in secure mode its first byte is an unknown type).
  const { server, address } = await echoServer({ mode: 'raw' });
  const { createSocket } = await import('node:dgram');
  const stray = createSocket('udp4');
  await new Promise((r) => stray.send(Buffer.from('short'), address.port, '127.0.0.1', r));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw' });
  client.send('x');
  await next(client, 'message');
  const stats = server.stats();
  t.is(stats.passiveOpens, 1);
  t.is(stats.droppedTooShort, 1);
  t.true(stats.datagramsIn >= 2);
  t.true(stats.datagramsOut >= 1);
  stray.close();
  client.close();
  await server.close();
  // Closed: the totals it ended with, the connection's close included.
  const final = server.stats();
  t.is(final.connections, 0);
  t.is(final.passiveOpens, 1);
  t.is(final.closed, 1);
  t.true(final.datagramsIn >= stats.datagramsIn);
});

test('invalid options are rejected with KcpInvalidOptionError', (t) => {
  t.throws(() => kcpwatch.createServer({ interval: 1 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => kcpwatch.createServer({ preset: 'turbo' }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ mtu: 20 }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ mode: 'tls' }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.createServer({ authTimeout: 0 }), { code: 'KCP_ERR_INVALID_OPTION' });
});

test('a message too large for the window is refused by createServer itself, with the ceiling and stream: true', (t) => {
  const error = t.throws(() => kcpwatch.createServer({ rcvWnd: 8, maxMessageSize: 65536 }), { code: 'KCP_ERR_INVALID_OPTION' });
  // min(127, 8) x (1200 - 24 - 29): secure mode carries its 13-byte session header and 16-byte tag in each datagram.
  t.regex(error.message, /exceeds 9176\b.*stream: true/);
});

for (const bind of ['0.0.0.0', '::']) {
  test(`a server bound to ${bind} reports the address each client really used, in the API and in its records`, async (t) => {
    const events = [];
    const server = kcpwatch.createServer({ log: { destination: 'none', statsInterval: 0 } }, (conn) =>
      conn.on('message', (m) => conn.send(m)),
    );
    server.on('event', (e) => events.push(e));
    const { port } = await server.listen(0, bind);
    t.teardown(() => server.close());
    const targets = bind === '::' ? ['127.0.0.1', '127.0.0.2', '::1'] : ['127.0.0.1', '127.0.0.2'];
    for (const host of targets) {
      const accepted = next(server, 'connection');
      const client = kcpwatch.connect({ host, port, serverKey: server.publicKey });
      t.teardown(() => client.close());
      client.send(`to ${host}`);
      const [conn] = await accepted;
      // The reply must come from the address the client used, or the client would not accept it.
      const [echo] = await next(client, 'message');
      t.is(echo.toString(), `to ${host}`);
      t.is(conn.localAddress, host);
      t.is(conn.localPort, port);
      t.is(conn.remoteAddress, client.localAddress);
      await until(server, 'event', () => events.some((e) => e.name === 'kcp:connection_established' && e.uid === conn.id));
      const established = events.find((e) => e.name === 'kcp:connection_established' && e.uid === conn.id);
      t.is(established.dst_ip, host);
      t.is(established.dst_port, port);
      t.is(established.src_ip, client.localAddress);
      t.is(established.src_port, client.localPort);
    }
  });
}

test('a log file in a directory that does not exist, or a directory as the file, is refused by createServer naming the option and the path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-logpath-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'no', 'such', 'dir', 'sec.log');
  let e = t.throws(() => kcpwatch.createServer({ log: { destination: { file: missing } } }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.true(e.message.startsWith('log.destination.file'), e.message);
  t.true(e.message.includes(missing), e.message);
  t.regex(e.message, /does not exist/);
  e = t.throws(() => kcpwatch.createServer({ log: { outputs: [{ destination: 'none' }, { destination: { file: dir } }] } }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
  });
  t.true(e.message.startsWith('log.outputs[1].destination.file'), e.message);
  t.true(e.message.includes(dir), e.message);
  t.regex(e.message, /is a directory/);
});

test('a log file that cannot be opened at listen() rejects with a typed error naming the path, not an internal one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-logpath-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sub = join(dir, 'gone');
  mkdirSync(sub);
  const file = join(sub, 'sec.log');
  const server = kcpwatch.createServer({ log: { destination: { file } } });
  t.teardown(() => server.close());
  rmSync(sub, { recursive: true });
  const e = await t.throwsAsync(server.listen(0, '127.0.0.1'), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.true(e.message.includes(file), e.message);
  t.true(e.message.startsWith('log.destination.file'), e.message);
  // Nothing was bound: the server can listen once the directory is back.
  mkdirSync(sub);
  await t.notThrowsAsync(server.listen(0, '127.0.0.1'));
});

test('a CA, certificate or key file of a log output that does not exist is refused by createServer naming the option and the path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-logpath-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = join(dir, 'missing-ca.pem');
  let e = t.throws(() => kcpwatch.createServer({ log: { destination: { syslog: 'tls://127.0.0.1:6514', caFile: ca } } }), {
    instanceOf: kcpwatch.KcpInvalidOptionError,
  });
  t.true(e.message.startsWith(`log.destination.caFile ${ca}`), e.message);
  e = t.throws(
    () =>
      kcpwatch.createServer({
        log: { outputs: [{ destination: { http: 'https://127.0.0.1:9/x', kind: 'otlp', caFile: dir } }] },
      }),
    { instanceOf: kcpwatch.KcpInvalidOptionError },
  );
  t.true(e.message.startsWith(`log.outputs[0].destination.caFile ${dir}`), e.message);
  t.regex(e.message, /is a directory/);
});
