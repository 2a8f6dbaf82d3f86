// A client and a server in different modes (issue #15): the server names the mismatch in its
// records (rule `mode_mismatch`, counted and sampled like every drop) and answers nothing; the
// secure client that gets no answer ends with a handshake timeout whose message names the
// likely causes. A raw client has no handshake to fail: its data goes unacknowledged.
import test from 'ava';
import { EventLog, kcpwatch } from './helpers/util.mjs';

const quiet = { destination: 'none', sampleBurst: 1000 };

async function server(t, mode) {
  const log = new EventLog();
  const s = kcpwatch.createServer({ mode, log: { ...quiet, onEvent: log.push } });
  const address = await s.listen(0, '127.0.0.1');
  t.teardown(() => s.close({ force: true }));
  const connections = [];
  s.on('connection', (c) => connections.push(c));
  return { server: s, address, log, connections };
}

test('a secure client to a raw server: the server records mode_mismatch and opens nothing; the client times out naming the likely causes', async (t) => {
  const { server: raw, address, log, connections } = await server(t, 'raw');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: kcpwatch.generateKeyPair().publicKey, handshakeTimeout: 600 });
  t.teardown(() => client.close());
  client.on('error', () => undefined);
  const error = await t.throwsAsync(client.ready(), { instanceOf: kcpwatch.KcpHandshakeTimeoutError });
  t.regex(error.message, /secure mode/);
  t.regex(error.message, /address and port/);
  const dropped = await log.waitFor((e) => e.rule === 'mode_mismatch', 5000, 'the mode_mismatch record');
  t.like(dropped, { name: 'kcp:packet_dropped', trigger: 'bad_cmd', src_port: client.localPort, dst_port: address.port });
  t.is(connections.length, 0);
  t.false(log.records.some((e) => e.name === 'kcp:connection_attempted'), 'a HELLO is not a raw connection attempt');
  const stats = raw.stats();
  t.true(stats.droppedBadCmd >= 1);
  t.is(stats.datagramsOut, 0, 'the raw server answered nothing');
  t.true(stats.modeMismatch >= 1);
});

test('a raw client to a secure server: the server records mode_mismatch and answers nothing', async (t) => {
  const { server: secure, address, log, connections } = await server(t, 'secure');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw', conv: 0x12345678, idleTimeout: 2000 });
  t.teardown(() => client.close());
  await client.ready();
  // The conv's low byte (0x78) is the first byte on the wire: not a secure-mode type byte. A
  // conv whose low byte is one (9 of 256) reaches a secure-mode check first and is recorded
  // under that check's rule (docs/security.md, "Mode mismatch").
  client.send('hello?');
  const dropped = await log.waitFor((e) => e.rule === 'mode_mismatch', 5000, 'the mode_mismatch record');
  t.like(dropped, { name: 'kcp:packet_dropped', trigger: 'bad_cmd', src_port: client.localPort, dst_port: address.port });
  t.is(connections.length, 0);
  const stats = secure.stats();
  t.is(stats.datagramsOut, 0, 'the secure server answered nothing');
  t.true(stats.modeMismatch >= 1);
});
