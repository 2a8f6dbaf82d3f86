// Raw mode against a real kcp-go peer (github.com/xtaci/kcp-go/v5), both directions, with the
// same knobs on both sides (the `game` preset: nodelay 1, interval 10, resend 2, nc 1,
// windows 256/256, mtu 1200).
import test from 'ava';
import { buildKcpgo, runKcpgo, startKcpgoServer } from './helpers/kcpgo.mjs';
import { echoServer, kcpwatch, until } from './helpers/util.mjs';

test.before(() => {
  buildKcpgo();
});

test('a kcp-go client echoes 1,000 messages through a kcpwatch server', async (t) => {
  const { server, address } = await echoServer({ preset: 'game' });
  t.teardown(() => server.close());
  const connections = [];
  server.on('connection', (c) => connections.push(c));
  const r = await runKcpgo(['client', '--addr', `127.0.0.1:${address.port}`, '--count', '1000', '--min-size', '1', '--max-size', '1000', '--seed', '11']);
  t.is(r.code, 0, r.out + r.err);
  const result = JSON.parse(r.out.trim().split('\n').at(-1) || '{}');
  t.true(result.ok);
  t.is(result.received, 1000);
  t.is(result.bytes_received, result.bytes_sent);
  t.is(connections.length, 1);
  t.is(connections[0].conv, result.conv);
  t.is(`${connections[0].remoteAddress}:${connections[0].remotePort}`, result.local);
  await server.close();
});

test('a kcpwatch client echoes 1,000 messages through a kcp-go server', async (t) => {
  const peer = await startKcpgoServer();
  t.teardown(() => peer.stop());
  const client = kcpwatch.connect({ host: peer.host, port: peer.port, preset: 'game' });
  const sent = Array.from({ length: 1000 }, (_, i) => {
    const size = 1 + ((i * 7919) % 1000);
    const m = Buffer.alloc(size, (i * 31) & 0xff);
    if (size >= 4) m.writeUInt32LE(i, 0);
    return m;
  });
  const received = [];
  client.on('message', (m) => received.push(Buffer.from(m)));
  for (const m of sent) client.send(m);
  await until(client, 'message', () => received.length === sent.length, 30_000);
  t.deepEqual(received, sent);
  client.close();
  await new Promise((r) => client.once('close', r));
  const summary = await peer.stop();
  const closed = summary
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((e) => e.conv === client.conv);
  t.truthy(closed, summary);
  const bytes = sent.reduce((n, m) => n + m.length, 0);
  t.is(closed.bytes_in, bytes);
  t.is(closed.bytes_out, bytes);
});
