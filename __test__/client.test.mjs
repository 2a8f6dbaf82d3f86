import test from 'ava';
import { echoServer, kcpwatch, message, until } from './helpers/util.mjs';

test('connect() validates its options', (t) => {
  t.throws(() => kcpwatch.connect({ port: 0 }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.throws(() => kcpwatch.connect({ host: 'example.invalid', port: 1 }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, conv: -1 }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, mode: 'tls' }), { code: 'KCP_ERR_INVALID_OPTION' });
  t.throws(() => kcpwatch.connect({ host: '127.0.0.1', port: 1, handshakeTimeout: 0 }), { code: 'KCP_ERR_INVALID_OPTION' });
});

test('raw mode: a chosen conv is used on the wire and seen by the server', async (t) => {
  const { server, address } = await echoServer({ mode: 'raw' });
  const client = kcpwatch.connect({ host: 'localhost', port: address.port, mode: 'raw', conv: 4242 });
  t.is(client.conv, 4242);
  const seen = new Promise((resolve) => server.once('connection', resolve));
  client.send('x');
  const conn = await seen;
  t.is(conn.conv, 4242);
  client.close();
  await server.close();
});

for (const loss of [0.1, 0.3]) {
  test(`1,000 messages arrive exactly once and in order through a relay with ${loss * 100}% loss, jitter, reordering and duplication`, async (t) => {
    const { server, address } = await echoServer({ idleTimeout: 30_000 });
    const relay = await kcpwatch.createRelay({
      target: { host: '127.0.0.1', port: address.port },
      loss,
      delayMs: 5,
      jitterMs: 5,
      reorder: 0.05,
      duplicate: 0.05,
      seed: 7,
    });
    const client = kcpwatch.connect({ host: relay.host, port: relay.port, idleTimeout: 30_000, deadLink: 100 });
    const sent = Array.from({ length: 1000 }, (_, i) => message(i, 2000));
    const received = [];
    client.on('message', (m) => received.push(Buffer.from(m)));
    for (const m of sent) client.send(m);
    await until(client, 'message', () => received.length === sent.length, 60_000);
    t.deepEqual(received, sent);
    t.true(relay.stats().dropped > 0);
    client.close();
    await relay.close();
    await server.close();
  });
}
