// server.broadcast() against connections whose limits differ: in secure mode each session's
// message ceiling follows the MTU its handshake agreed, not the server's own.
import test from 'ava';
import { kcpwatch, poll } from './helpers/util.mjs';

test('broadcast skips, and logs, a connection whose agreed MTU makes the message too large for it; the others get it', async (t) => {
  const records = [];
  const s = kcpwatch.createServer({ mtu: 1400, log: { destination: 'none', onEvent: (e) => records.push(e) } });
  const { port } = await s.listen(0, '127.0.0.1');
  t.teardown(() => s.close({ force: true }));
  const open = async (options) => {
    const client = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: s.publicKey, log: false, ...options });
    t.teardown(() => client.close());
    const got = [];
    client.on('message', (m) => got.push(m.length));
    await client.ready();
    return got;
  };
  // The small client's own maxMessageSize must fit its MTU; the server's session follows the
  // agreed MTU 200 (127 fragments of 147 bytes), below the server's 65536.
  const small = await open({ mtu: 200, maxMessageSize: 10000 });
  const large = await open({ mtu: 1400 });
  await poll(() => s.connections.size === 2, 5000, 'two connections');
  const [a, b] = [...s.connections.values()];
  const ceilings = [a, b].map((c) => c.maxMessageSize).sort((x, y) => x - y);
  t.true(ceilings[0] < ceilings[1], `ceilings ${ceilings}`);
  const size = ceilings[0] + 1;
  t.is(s.broadcast(Buffer.alloc(size, 7)), 1);
  t.is(s.broadcast(Buffer.alloc(100, 8)), 2);
  await poll(() => small.length === 1 && large.length === 2, 5000, 'the broadcasts');
  t.deepEqual(small, [100]);
  t.deepEqual(large, [size, 100]);
  // Records come through the log thread, after the messages themselves.
  const refusals = () => records.filter((r) => r.name === 'kcp:protocol_violation');
  await poll(() => refusals().length > 0, 5000, 'the refusal record');
  const refused = refusals();
  t.is(refused.length, 1);
  t.is(refused[0].violation, 'oversized_message');
});
