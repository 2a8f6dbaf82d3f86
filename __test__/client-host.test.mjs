// createClient() with a host name (issue #15): it resolves the name as connect() and the
// server's listen() do (the first address the system's resolver gives, `localhost` included),
// with the same code; connections opened while it resolves are `connecting` and open once it has.
import test from 'ava';
import { echoServer, kcpwatch, next, until } from './helpers/util.mjs';
import { lookup } from 'node:dns/promises';

async function echoes(c, tag) {
  const received = [];
  c.on('message', (m) => received.push(m.toString()));
  for (let i = 0; i < 3; i++) c.send(`${tag}-${i}`);
  await until(c, 'message', () => received.length === 3);
  return received;
}

for (const mode of ['secure', 'raw']) {
  test(`createClient({ host: 'localhost' }) in ${mode} mode reaches a server listening on localhost`, async (t) => {
    const { server, address, key } = await echoServer({ mode }, 'localhost');
    const { address: resolved } = await lookup('localhost');
    t.is(address.address, resolved, 'the server bound what the resolver gives first');
    const client = kcpwatch.createClient({ host: 'localhost', port: address.port, mode, ...(mode === 'secure' ? { serverKey: key } : {}) });
    t.teardown(() => Promise.all([client.close(), server.close()]));
    // Opened before the name resolved: connecting, and what is sent now leaves once it is open.
    const a = client.connect();
    const b = client.connect();
    t.is(a.state, 'connecting');
    t.is(client.connectionCount, 2);
    t.deepEqual(await Promise.all([echoes(a, 'a'), echoes(b, 'b')]), [
      ['a-0', 'a-1', 'a-2'],
      ['b-0', 'b-1', 'b-2'],
    ]);
    await Promise.all([a.ready(), b.ready()]);
    t.is(a.remoteAddress, resolved);
    t.is(client.remoteAddress, resolved);
    t.is(client.address().port, a.localPort, 'one socket for both');
    t.is(b.localPort, a.localPort);
    // Opened after: the usual path.
    const c = client.connect();
    t.deepEqual(await echoes(c, 'c'), ['c-0', 'c-1', 'c-2']);
    t.is(server.stats().connections, 3);
  });
}

test('createClient() with a name that does not resolve fails each connection with KcpResolveError', async (t) => {
  const client = kcpwatch.createClient({ host: 'no-such-host.invalid', port: 4000, serverKey: kcpwatch.generateKeyPair().publicKey });
  t.teardown(() => client.close());
  const first = client.connect();
  // (events.once would reject on the 'error' event that comes first.)
  const closed = new Promise((resolve) => first.once('close', (reason) => resolve([reason])));
  first.on('error', () => undefined);
  await t.throwsAsync(first.ready(), { instanceOf: kcpwatch.KcpResolveError, message: /no-such-host\.invalid/ });
  t.is((await closed)[0], 'connect_failed');
  // After the failure a new connection fails the same way, not with a different error.
  const second = client.connect();
  second.on('error', () => undefined);
  await t.throwsAsync(second.ready(), { instanceOf: kcpwatch.KcpResolveError });
  t.is(client.connectionCount, 0);
  t.is(client.address(), null);
});

test('closing a createClient() while its name resolves closes its waiting connections', async (t) => {
  const client = kcpwatch.createClient({ host: 'localhost', port: 4000, mode: 'raw' });
  const waiting = client.connect();
  waiting.send('never');
  const closed = next(waiting, 'close');
  await client.close();
  t.is((await closed)[0], 'shutdown');
  t.is(client.connectionCount, 0);
  t.throws(() => client.connect(), { instanceOf: kcpwatch.KcpClosedError });
});
