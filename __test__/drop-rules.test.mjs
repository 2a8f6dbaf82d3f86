// The drop and failure rules (issue #17): every rule the endpoint can write is declared once in
// Rust (`kcpwatch_proto::events::Rule`) and the schema's rule vocabulary is generated from that
// declaration. Here real datagrams make a raw-FEC server write the FEC rules the hand-kept schema
// once lacked, and each record must pass the published schema as an analyst's validator runs it.
import test from 'ava';
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import { EventLog, kcpwatch, udpSocket } from './helpers/util.mjs';

const schema = JSON.parse(readFileSync(new URL('../schema/events.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
const errorsOf = (record) =>
  validate(record) ? [] : validate.errors.map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);

/** A kcp-go FEC shard header: seqid (u32 LE), flag (u16 LE), then `body`. */
function shard(seqid, flag, body) {
  const out = Buffer.alloc(6 + body.length);
  out.writeUInt32LE(seqid, 0);
  out.writeUInt16LE(flag, 4);
  body.copy(out, 6);
  return out;
}

test('a raw-FEC server: parity for no session, OOB and a malformed shard are dropped with records the schema accepts', async (t) => {
  const log = new EventLog();
  const server = kcpwatch.createServer({
    mode: 'raw',
    fec: { dataShards: 10, parityShards: 3 },
    log: { destination: 'none', sampleBurst: 1000, onEvent: log.push },
  });
  t.teardown(() => server.close({ force: true }));
  const { port } = await server.listen(0, '127.0.0.1');
  const socket = await udpSocket();
  t.teardown(() => socket.close());
  const send = (datagram) => new Promise((resolve, reject) => socket.send(datagram, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));

  // size (u16 LE) then 32 bytes of shard: what an encoder would send, but no session exists.
  const body = Buffer.alloc(34);
  body.writeUInt16LE(32, 0);
  await send(shard(1, 0xf2, body));
  await send(shard(2, 0xf3, Buffer.alloc(8)));
  // A data shard whose size field disagrees with its length.
  await send(shard(3, 0xf1, Buffer.from([0xff, 0x00, 1, 2, 3, 4])));

  const expected = {
    fec_parity_no_session: 'unknown_connection',
    fec_oob_unsupported: 'bad_cmd',
    fec_bad_size: 'bad_length',
  };
  const records = await log.waitForCount((e) => e.rule in expected, 3, 5000, 'the three FEC drop records');
  for (const record of records) {
    t.like(record, { name: 'kcp:packet_dropped', trigger: expected[record.rule], dst_port: port });
    t.deepEqual(errorsOf(record), [], `${record.rule}: ${JSON.stringify(record)}`);
  }
  t.deepEqual(records.map((r) => r.rule).sort(), Object.keys(expected).sort());
});

test('a secure session datagram whose plaintext is malformed: the record the endpoint writes passes the schema', (t) => {
  // Secure DATAGRAM bodies are encrypted, so a test outside the core cannot forge one: these
  // are the records the endpoint writes for them (crates/kcpwatch-proto/src/endpoint/datagram.rs:
  // too_short / datagram_too_short, bad_cmd / datagram_flags) as the canonical writer renders them.
  const base = {
    ts: '2025-11-26T15:13:26.612310Z',
    time: 1764170006612,
    level: 30,
    level_name: 'notice',
    severity: 5,
    name: 'kcp:packet_dropped',
    seq: 7,
    observer_host: 'game-eu-1',
    observer_service: 'arena',
    observer_instance: 'L031iIo9tYbS4XkP2mQ7wZe',
    observer_version: '0.1.0',
    uid: 'K031iIoGxR7fm5m9aE3dISp',
    conv: 1,
    src_ip: '203.0.113.7',
    src_port: 52144,
    dst_ip: '10.0.0.5',
    dst_port: 4000,
    transport: 'udp',
    datagram_bytes: 40,
    suppressed: 0,
    msg: 'dropped',
  };
  for (const [trigger, rule] of [['too_short', 'datagram_too_short'], ['bad_cmd', 'datagram_flags']]) {
    t.deepEqual(errorsOf({ ...base, trigger, rule }), [], rule);
    t.not(errorsOf({ ...base, trigger: 'guard_violation', rule }).length, 0, `${rule} belongs to ${trigger} only`);
  }
});
