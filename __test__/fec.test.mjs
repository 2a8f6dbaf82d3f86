// kcp-go's Reed-Solomon FEC in raw mode (docs/fec.md), against the kcp-go reference peer with
// the same shard counts on both sides (DialWithOptions / ListenWithOptions(addr, nil, 10, 3)),
// through the lossy relay at 10% loss each way, so datagrams are really lost and rebuilt.
import test from 'ava';
import { requireKcpgo, runKcpgo, startKcpgoServer } from './helpers/kcpgo.mjs';
import { echoServer, kcpwatch, message, until } from './helpers/util.mjs';

const FEC = { dataShards: 10, parityShards: 3 };
const FEC_FLAGS = ['--fec-data', '10', '--fec-parity', '3'];
const COUNT = 1000;

async function lossyRelay(t, port, seed) {
  const relay = await kcpwatch.createRelay({ target: { host: '127.0.0.1', port }, loss: 0.1, seed });
  t.teardown(() => relay.close());
  return relay;
}

test('a kcp-go FEC client echoes 1,000 messages through a kcpwatch raw FEC server at 10% loss', async (t) => {
  if (!requireKcpgo(t)) return;
  const { server, address } = await echoServer({ mode: 'raw', preset: 'game', fec: FEC });
  t.teardown(() => server.close());
  const relay = await lossyRelay(t, address.port, 7);
  const r = await runKcpgo(t, [
    'client', '--addr', `127.0.0.1:${relay.port}`, '--count', String(COUNT), '--min-size', '1', '--max-size', '1000',
    '--seed', '21', '--timeout-ms', '60000', ...FEC_FLAGS,
  ], 90_000);
  t.is(r.code, 0, r.out + r.err);
  const result = JSON.parse(r.out.trim().split('\n').at(-1) || '{}');
  t.true(result.ok, r.out);
  t.is(result.received, COUNT);
  t.is(result.bytes_received, result.bytes_sent);
  t.true(relay.stats().dropped > 0, 'the relay lost datagrams');
  // Both sides rebuilt datagrams from parity.
  t.true(result.snmp.FECRecovered > 0, JSON.stringify(result.snmp));
  t.log(`relay dropped ${relay.stats().dropped}; kcp-go recovered ${result.snmp.FECRecovered}, kcpwatch recovered ${server.stats().fecRecovered}`);
  const stats = server.stats();
  t.true(stats.fecEnabled);
  t.true(stats.fecRecovered > 0, JSON.stringify(stats));
  t.true(stats.fecParityShards > 0);
  t.is(stats.fecErrs, 0);
  t.regex(kcpwatch.renderMetrics(stats), /^kcpwatch_fec_recovered_total [1-9]\d*$/m);
});

test('a kcpwatch raw FEC client echoes 1,000 messages through a kcp-go FEC server at 10% loss', async (t) => {
  if (!requireKcpgo(t)) return;
  const peer = await startKcpgoServer(t, FEC_FLAGS);
  t.teardown(() => peer.stop());
  const relay = await lossyRelay(t, peer.port, 8);
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: relay.port, mode: 'raw', preset: 'game', fec: FEC, maxConnections: 1 });
  t.teardown(() => client.close());
  const conn = client.connect();
  const sent = Array.from({ length: COUNT }, (_, i) => message(i));
  const received = [];
  conn.on('message', (m) => received.push(Buffer.from(m)));
  for (const m of sent) conn.send(m);
  await until(conn, 'message', () => received.length === sent.length, 60_000);
  t.deepEqual(received, sent);
  t.true(relay.stats().dropped > 0, 'the relay lost datagrams');
  const stats = client.stats();
  t.true(stats.fecRecovered > 0, JSON.stringify(stats));
  t.is(stats.fecErrs, 0);
  await client.close();
  const out = await peer.stop();
  const stopped = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.event === 'stopped');
  t.truthy(stopped, out);
  t.true(stopped.snmp.FECRecovered > 0, JSON.stringify(stopped.snmp));
  t.log(`relay dropped ${relay.stats().dropped}; kcpwatch recovered ${stats.fecRecovered}, kcp-go recovered ${stopped.snmp.FECRecovered}`);
});

test('several FEC connections of one createClient to one kcpwatch server each get their own echoes at 10% loss', async (t) => {
  // FEC state is per UDP peer: the connections share one socket, so their shards share one
  // seqid sequence each way, and parity never rebuilds one connection's datagram from another's.
  const CONNECTIONS = 8;
  const PER_CONNECTION = 300;
  const { server, address } = await echoServer({ mode: 'raw', preset: 'game', fec: FEC });
  t.teardown(() => server.close());
  const relay = await lossyRelay(t, address.port, 9);
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: relay.port, mode: 'raw', preset: 'game', fec: FEC });
  t.teardown(() => client.close());
  // Alike but for the numbers, as game state updates are: content is what tells them apart.
  const body = (k, i) => Buffer.from(`conn ${String(k).padStart(2, '0')} seq ${String(i).padStart(5, '0')} ${'.'.repeat(40)}`);
  const received = [];
  const done = [];
  for (let k = 0; k < CONNECTIONS; k++) {
    const conn = client.connect();
    const got = [];
    received.push(got);
    conn.on('message', (m) => got.push(Buffer.from(m).toString()));
    // One message every 10 ms per connection: a steady stream, so the connections' datagrams
    // interleave on the shared socket (a burst would mostly fill groups with one connection's).
    let i = 0;
    const timer = setInterval(() => {
      if (i < PER_CONNECTION) conn.send(body(k, i++));
      else clearInterval(timer);
    }, 10);
    t.teardown(() => clearInterval(timer));
    done.push(until(conn, 'message', () => got.length >= PER_CONNECTION, 60_000));
  }
  await Promise.all(done);
  for (let k = 0; k < CONNECTIONS; k++) {
    t.deepEqual(received[k], Array.from({ length: PER_CONNECTION }, (_, i) => body(k, i).toString()), `conn ${k}`);
  }
  t.true(relay.stats().dropped > 0, 'the relay lost datagrams');
  const [c, s] = [client.stats(), server.stats()];
  t.log(`relay dropped ${relay.stats().dropped}; client recovered ${c.fecRecovered}, server recovered ${s.fecRecovered}`);
  t.true(c.fecRecovered + s.fecRecovered > 0, JSON.stringify({ c, s }));
  t.is(c.fecErrs, 0, JSON.stringify(c));
  t.is(s.fecErrs, 0, JSON.stringify(s));
});

test('fec is checked at creation: kcp-go shard limits and mtu at most 1500 in raw mode, 64 shards in secure mode', (t) => {
  const invalid = { instanceOf: kcpwatch.KcpInvalidOptionError };
  // Secure mode has FEC of its own (secure-fec.test.mjs), at most 64 shards a group.
  t.throws(() => kcpwatch.createServer({ fec: { dataShards: 50, parityShards: 15 } }), { ...invalid, message: /at most 64 in secure mode/ });
  t.throws(() => kcpwatch.createServer({ mode: 'raw', fec: { dataShards: 0, parityShards: 3 } }), invalid);
  t.throws(() => kcpwatch.createServer({ mode: 'raw', fec: { dataShards: 200, parityShards: 100 } }), { ...invalid, message: /at most 256/ });
  t.throws(() => kcpwatch.createServer({ mode: 'raw', fec: { dataShards: 10 } }), invalid);
  t.throws(() => kcpwatch.createServer({ mode: 'raw', fec: { dataShards: 10, parityShards: 3, ratio: 1 } }), invalid);
  t.throws(() => kcpwatch.createServer({ mode: 'raw', mtu: 9000, fec: FEC }), { ...invalid, message: /mtu <= 1500/ });
  t.throws(() => kcpwatch.connect({ port: 9, serverKey: Buffer.alloc(32, 1), fec: { dataShards: 60, parityShards: 5 } }), { ...invalid, message: /at most 64 in secure mode/ });
  const server = kcpwatch.createServer({ mode: 'raw', fec: FEC });
  t.truthy(server);
  t.truthy(kcpwatch.createServer({ fec: FEC }));
});

test('without fec the FEC metrics are absent, not zero', async (t) => {
  const { server } = await echoServer({ mode: 'raw', preset: 'game' });
  t.teardown(() => server.close());
  const stats = server.stats();
  t.false(stats.fecEnabled);
  t.notRegex(kcpwatch.renderMetrics(stats), /kcpwatch_fec_/);
});
