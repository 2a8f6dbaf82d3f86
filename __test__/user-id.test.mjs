// The user id from `authenticate` in every record of the connection (issue #15): what names
// the user (a string answer, or `userId` / `user` / `id` / `user.id` of an object), that it
// crosses to the native side once and every later record carries it, the privacy modes
// (full: `user_id`; hmac: `user_id_pseudonym` with the address key; truncate, cryptopan, omit:
// nothing), the 128-byte bound, and that the records still validate against the schema.
import test from 'ava';
import Ajv2020 from 'ajv/dist/2020.js';
import { EventLog, kcpwatch, next, require } from './helpers/util.mjs';

const schema = require('../../schema/events.schema.json');
const ajv = new Ajv2020({ strict: false, allErrors: true });
const validate = ajv.compile(schema);

const KEY = 'a'.repeat(32);

/** One authenticated connection's life under `ipPrivacy`; returns the server's records of it. */
async function life(t, authenticate, ipPrivacy = { mode: 'full' }) {
  const log = new EventLog();
  const server = kcpwatch.createServer({ authenticate, log: { destination: 'none', ipPrivacy, onEvent: log.push } }, (conn) => {
    conn.on('message', (m) => conn.send(m));
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const accepted = next(server, 'connection');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: 'ticket' });
  t.teardown(() => client.close());
  await client.ready();
  const [conn] = await accepted;
  client.send('ping');
  await next(client, 'message');
  // A refusal the application makes itself: its kcp:protocol_violation names the connection.
  t.throws(() => conn.send(Buffer.alloc(1 << 20)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  await log.waitFor((e) => e.name === 'kcp:protocol_violation' && e.uid === conn.id, 10_000, 'the violation record');
  client.close();
  await log.waitFor((e) => e.name === 'kcp:connection_closed' && e.uid === conn.id, 10_000, 'the close record');
  const records = log.records.filter((e) => e.uid === conn.id);
  for (const r of records) t.true(validate(r), `${r.name}: ${ajv.errorsText(validate.errors)}`);
  return { conn, records };
}

const named = (records) => records.map((e) => [e.name === 'kcp:connection_state_updated' ? `${e.prev_state}->${e.state}` : e.name, e.user_id]);

test('an object with `user` names the user: every record from the establishment on carries user_id; conn.auth is the whole answer', async (t) => {
  const answer = { user: 'alice', level: 3 };
  const { conn, records } = await life(t, () => answer);
  t.is(conn.auth, answer);
  t.deepEqual(named(records), [
    ['kcp:connection_attempted', undefined],
    ['attempted->handshaking', undefined],
    ['handshaking->established', 'alice'],
    ['kcp:connection_established', 'alice'],
    ['kcp:protocol_violation', 'alice'],
    ['established->closed', 'alice'],
    ['kcp:connection_closed', 'alice'],
  ]);
});

test('what names the user: a string or number answer, userId, user, id, user.id; true and empty strings name none', async (t) => {
  const cases = [
    ['bob', 'bob'],
    [{ userId: 'u-1', user: 'ignored' }, 'u-1'],
    [{ id: 42 }, '42'],
    [{ user: { id: 'nested', name: 'N' } }, 'nested'],
    [{ user: 'Zoë 🎮' }, 'Zoë 🎮'],
    [true, undefined],
    [{ name: 'no id' }, undefined],
    ['', undefined],
  ];
  for (const [answer, expected] of cases) {
    const { records } = await life(t, () => answer);
    const established = records.find((e) => e.name === 'kcp:connection_established');
    t.is(established.user_id, expected, JSON.stringify(answer));
  }
});

test('privacy: hmac writes a keyed pseudonym (user_id_pseudonym) the same in every record; truncate, cryptopan and omit write none', async (t) => {
  const hmac = { mode: 'hmac', keyId: 'k1', key: KEY };
  const { records } = await life(t, () => ({ user: 'alice' }), hmac);
  const established = records.filter((e) => e.name !== 'kcp:connection_attempted' && e.prev_state !== 'attempted');
  t.true(established.length >= 3);
  const pseudonyms = new Set(established.map((e) => e.user_id_pseudonym));
  t.is(pseudonyms.size, 1);
  const [pseudonym] = pseudonyms;
  t.regex(pseudonym, /^k1:[A-Za-z0-9_-]{22}$/);
  t.false(JSON.stringify(records).includes('alice'));
  // The same key gives the same pseudonym in another run; another id another one.
  const again = await life(t, () => ({ user: 'alice' }), hmac);
  t.is(again.records.find((e) => e.name === 'kcp:connection_closed').user_id_pseudonym, pseudonym);
  const other = await life(t, () => ({ user: 'bob' }), hmac);
  t.not(other.records.find((e) => e.name === 'kcp:connection_closed').user_id_pseudonym, pseudonym);
  for (const ipPrivacy of [{ mode: 'truncate' }, { mode: 'cryptopan', key: 'b'.repeat(64) }, { mode: 'omit' }]) {
    const { records: hidden } = await life(t, () => ({ user: 'alice' }), ipPrivacy);
    t.false(JSON.stringify(hidden).includes('alice'), ipPrivacy.mode);
    t.false(hidden.some((e) => 'user_id' in e || 'user_id_pseudonym' in e), ipPrivacy.mode);
  }
});

test('a user id over 128 bytes of UTF-8 refuses the client with a clear error on the server', async (t) => {
  const log = new EventLog();
  const server = kcpwatch.createServer({ authenticate: () => ({ user: 'é'.repeat(65) }), log: { destination: 'none', onEvent: log.push } });
  const errors = [];
  server.on('error', (e) => errors.push(e));
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey });
  t.teardown(() => client.close());
  client.on('error', () => undefined);
  await t.throwsAsync(client.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError });
  t.is(errors.length, 1);
  t.true(errors[0] instanceof kcpwatch.KcpAuthenticateError);
  t.regex(errors[0].message, /user id longer than 128 bytes/);
  t.regex(errors[0].cause.message, /130 bytes of UTF-8; at most 128/);
  // Exactly 128 bytes is carried whole.
  const { records } = await life(t, () => 'x'.repeat(128));
  t.is(records.find((e) => e.name === 'kcp:connection_established').user_id, 'x'.repeat(128));
});
