// Forward error correction in secure mode (docs/fec.md, "Secure mode"; docs/protocol.md,
// FEC_PARITY): a secure server and client, each sending FEC 10/3, through the lossy relay at
// 10% loss each way, so datagrams are really lost and rebuilt from authenticated parity.
import test from 'ava';
import { echoServer, kcpwatch, message, until } from './helpers/util.mjs';

const FEC = { dataShards: 10, parityShards: 3 };
const COUNT = 1000;

test('a secure FEC client echoes 1,000 messages through a secure FEC server at 10% loss', async (t) => {
  const { server, address, key } = await echoServer({ preset: 'game', fec: FEC });
  t.teardown(() => server.close());
  const relay = await kcpwatch.createRelay({ target: { host: '127.0.0.1', port: address.port }, loss: 0.1, seed: 11 });
  t.teardown(() => relay.close());
  const client = kcpwatch.createClient({ host: '127.0.0.1', port: relay.port, serverKey: key, preset: 'game', fec: FEC, maxConnections: 1 });
  t.teardown(() => client.close());
  const conn = client.connect();
  const sent = Array.from({ length: COUNT }, (_, i) => message(i));
  const received = [];
  conn.on('message', (m) => received.push(Buffer.from(m)));
  for (const m of sent) conn.send(m);
  await until(conn, 'message', () => received.length >= sent.length, 60_000);
  t.deepEqual(received, sent);
  t.true(relay.stats().dropped > 0, 'the relay lost datagrams');
  const [c, s] = [client.stats(), server.stats()];
  t.log(`relay dropped ${relay.stats().dropped}; client recovered ${c.fecRecovered}, server recovered ${s.fecRecovered}`);
  for (const [side, stats] of [['client', c], ['server', s]]) {
    t.true(stats.fecEnabled, side);
    t.true(stats.fecRecovered > 0, `${side} ${JSON.stringify(stats)}`);
    t.true(stats.fecParityShards > 0, side);
    t.is(stats.fecErrs, 0, side);
  }
  t.regex(kcpwatch.renderMetrics(s), /^kcpwatch_fec_recovered_total [1-9]\d*$/m);
});

test('a secure server without the option reads the parity of a client that sends it', async (t) => {
  const { server, address, key } = await echoServer({ preset: 'game' });
  t.teardown(() => server.close());
  const relay = await kcpwatch.createRelay({ target: { host: '127.0.0.1', port: address.port }, loss: 0.1, seed: 12 });
  t.teardown(() => relay.close());
  const conn = kcpwatch.connect({ host: '127.0.0.1', port: relay.port, serverKey: key, preset: 'game', fec: FEC });
  t.teardown(() => conn.close());
  const sent = Array.from({ length: 300 }, (_, i) => message(i));
  const received = [];
  conn.on('message', (m) => received.push(Buffer.from(m)));
  for (const m of sent) conn.send(m);
  await until(conn, 'message', () => received.length >= sent.length, 60_000);
  t.deepEqual(received, sent);
  const s = server.stats();
  t.true(s.fecParityShards > 0, JSON.stringify(s));
  t.true(s.fecRecovered > 0, JSON.stringify(s));
  t.is(s.fecErrs, 0);
});
