// The security event schema itself (schema/events.schema.json): it compiles under ajv's strict
// mode, accepts a valid record of every event, refuses what the canonical writer can never
// produce, and names the same events and vocabularies as the Rust catalog, the TypeScript types
// and docs/events.md.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import ts from 'typescript';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const schema = JSON.parse(read('schema/events.schema.json'));

const ajv = new Ajv2020({ strict: true, allErrors: true });
const validate = ajv.compile(schema);

function errorsOf(record) {
  return validate(record) ? [] : validate.errors.map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

// ---- hand-written records ------------------------------------------------------------------

const levels = { info: [6, 30], notice: [5, 30], warning: [4, 40], error: [3, 50], alert: [1, 60] };
let seq = 0;

function record(name, levelName, fields, msg = `${name} example`) {
  const [severity, level] = levels[levelName];
  const n = seq++;
  const second = new Date((1764170000 + n) * 1000).toISOString().slice(0, 19);
  return {
    ts: `${second}.${String(412305 + n).padStart(6, '0')}Z`,
    time: 1764170000412 + n * 1000,
    level,
    level_name: levelName,
    severity,
    name: `kcp:${name}`,
    seq: n,
    observer_host: 'game-eu-1',
    observer_service: 'arena',
    observer_instance: 'L031iIo9tYbS4XkP2mQ7wZe',
    observer_version: '0.1.0',
    ...fields,
    msg,
  };
}

const inbound = {
  uid: 'K031iIoGxR7fm5m9aE3dISp',
  conv: 1,
  direction: 'inbound',
  src_ip: '203.0.113.7',
  src_port: 52144,
  dst_ip: '10.0.0.5',
  dst_port: 4000,
  transport: 'udp',
  community_id: '1:e23jD2+gS8UFNMTp7fpj/Bjffds=',
};
const outbound6 = {
  uid: 'K031iIoJ8wQe2LrT6nXbY1k',
  conv: 4294967295,
  direction: 'outbound',
  src_ip: '2001:db8::20',
  src_port: 50812,
  dst_ip: '2001:db8:0:1::a',
  dst_port: 4000,
  transport: 'udp',
};
const params = {
  kcp_nodelay: true,
  kcp_interval_ms: 10,
  kcp_resend: 2,
  kcp_nc: true,
  kcp_snd_wnd: 256,
  kcp_rcv_wnd: 256,
  kcp_mtu: 1200,
  kcp_stream: false,
  dead_link: 20,
  idle_timeout_ms: 30000,
  max_message_size: 64000,
};
const summary = {
  duration_ms: 92004,
  bytes_received: 181344,
  bytes_sent: 903112,
  datagrams_received: 4410,
  datagrams_sent: 5012,
  payload_bytes_received: 74210,
  payload_bytes_sent: 782044,
  messages_received: 2204,
  messages_sent: 2290,
  unreliable_received: 0,
  unreliable_sent: 0,
  unreliable_dropped: 0,
  segments_received: 6920,
  segments_sent: 7385,
  segments_retransmitted: 31,
  segments_fast_retransmitted: 12,
  segments_lost: 31,
  segments_duplicate_received: 4,
  acks_sent: 2310,
  acks_received: 4718,
  window_probes_sent: 0,
  window_probes_received: 0,
  guard_drops: 1,
  srtt_ms: 38,
  rttvar_ms: 6,
  rto_ms: 88,
  rtt_min_ms: 29,
  rtt_max_ms: 141,
  history: 'DadARrG',
};

// ---- the declared examples -----------------------------------------------------------------

/**
 * Every event's declared examples (`EventRecord::examples` in crates/kcpwatch-proto/src/events/catalog),
 * as the canonical writer writes them: the fixture `npm run codegen` generates. Named `<event>`,
 * `<event>_2`, ... for the test titles; a new event is covered here without an edit.
 */
const examples = {};
for (const line of read('crates/kcpwatch-log/tests/fixtures/events_docs.ndjson').split('\n').filter(Boolean)) {
  const rec = JSON.parse(line);
  const action = rec.name.slice('kcp:'.length);
  let label = action;
  for (let n = 2; label in examples; n++) label = `${action}_${n}`;
  examples[label] = rec;
}

/** Edge cases beyond the examples: other shapes, other vocabularies, IPv6, privacy modes. */
const handMade = {
  connection_failed_malformed: record('connection_failed', 'notice', {
    ...inbound,
    conv: 3735928559,
    reason: 'malformed',
    trigger: 'guard_violation',
    rule: 'fragment_beyond_window',
    suppressed: 0,
  }),
  listener_started_client_v6: record('listener_started', 'info', {
    local_ip: '::',
    local_port: 50812,
    mode: 'raw',
    role: 'client',
    max_connections: 1,
    ...params,
    kcp_stream: true,
  }),
  listener_started_secure: record('listener_started', 'info', {
    local_ip: '0.0.0.0',
    local_port: 4000,
    mode: 'secure',
    role: 'server',
    max_connections: 10000,
    ...params,
  }),
  connection_established_outbound_v6: record('connection_established', 'info', outbound6),
  connection_failed_capacity_aggregate: record('connection_failed', 'notice', {
    ...inbound,
    reason: 'capacity',
    trigger: 'over_limit',
    rule: 'max_connections',
    suppressed: 1834,
  }),
  connection_failed_rate_limited: record('connection_failed', 'notice', {
    ...inbound,
    conv: 0,
    reason: 'rate_limited',
    trigger: 'rate_limited',
    rule: 'handshake_rate_per_ip',
    suppressed: 0,
  }),
  connection_failed_invalid_cookie: record('connection_failed', 'notice', {
    ...inbound,
    conv: 0,
    reason: 'invalid_cookie',
    trigger: 'bad_tag',
    rule: 'cookie_mac',
    suppressed: 0,
  }),
  connection_failed_per_ip_limit: record('connection_failed', 'notice', {
    ...inbound,
    reason: 'capacity',
    trigger: 'over_limit',
    rule: 'max_connections_per_ip',
    suppressed: 0,
  }),
  connection_failed_auth_rejected: record('connection_failed', 'notice', {
    ...inbound,
    reason: 'auth_rejected',
    rule: 'authenticate',
    suppressed: 0,
  }),
  connection_failed_handshake_timeout: record('connection_failed', 'notice', {
    ...outbound6,
    conv: 0,
    reason: 'handshake_timeout',
    rule: 'handshake_timeout',
    suppressed: 0,
  }),
  connection_failed_unreachable: record('connection_failed', 'notice', {
    ...outbound6,
    conv: 0,
    reason: 'unreachable',
    rule: 'icmp_unreachable',
    suppressed: 0,
  }),
  connection_failed_server_rejected: record('connection_failed', 'notice', {
    ...outbound6,
    conv: 0,
    reason: 'capacity',
    rule: 'server_rejected',
    suppressed: 0,
  }),
  connection_state_updated_closing: record('connection_state_updated', 'info', {
    ...outbound6,
    prev_state: 'closing',
    state: 'closed',
  }),
  connection_state_updated_handshake_failed: record('connection_state_updated', 'info', {
    ...inbound,
    prev_state: 'handshaking',
    state: 'closed',
  }),
  connection_closed_dead_link: record('connection_closed', 'notice', {
    ...outbound6,
    reason: 'dead_link',
    initiator: 'local',
    ...summary,
    history: 'DR',
    ...params,
  }),
  connection_closed_internal_error: record('connection_closed', 'warning', {
    ...inbound,
    reason: 'internal_error',
    initiator: 'local',
    ...summary,
    history: '',
    ...params,
  }),
  peer_address_changed_outbound_v6: record('peer_address_changed', 'notice', {
    ...outbound6,
    old_peer_ip: '2001:db8:0:1::b',
    old_peer_port: 4000,
    old_local_ip: '2001:db8::20',
    old_local_port: 50700,
  }),
  packet_dropped_decrypt_failed: record('packet_dropped', 'notice', {
    uid: inbound.uid,
    conv: 1,
    src_ip: '203.0.113.7',
    src_port: 52144,
    dst_ip: '10.0.0.5',
    dst_port: 4000,
    transport: 'udp',
    trigger: 'decrypt_failed',
    rule: 'session_aead',
    datagram_bytes: 64,
    suppressed: 0,
  }),
  packet_dropped_replayed_aggregate: record('packet_dropped', 'notice', {
    conv: 9,
    src_ip: '192.0.2.99',
    src_port: 40000,
    dst_ip: '10.0.0.5',
    dst_port: 4000,
    transport: 'udp',
    trigger: 'replayed',
    rule: 'replay_window',
    datagram_bytes: 40,
    suppressed: 12,
  }),
  packet_dropped_empty: record('packet_dropped', 'notice', {
    src_ip: '192.0.2.99',
    src_port: 40000,
    dst_ip: '10.0.0.5',
    dst_port: 4000,
    transport: 'udp',
    trigger: 'too_short',
    rule: 'empty',
    datagram_bytes: 0,
    suppressed: 0,
  }),
  packet_dropped_runt_aggregate: record('packet_dropped', 'notice', {
    src_ip: '192.0.2.99',
    src_port: 40000,
    dst_ip: '10.0.0.5',
    dst_port: 4000,
    transport: 'udp',
    community_id: '1:xCJJqi2hdpzl+oUoKXNq7YvvQzE=',
    trigger: 'too_short',
    rule: 'too_short',
    datagram_bytes: 1,
    suppressed: 52211,
  }),
  packet_dropped_no_session: record('packet_dropped', 'notice', {
    conv: 7,
    src_ip: '198.51.100.10',
    src_port: 4000,
    dst_ip: '192.168.1.20',
    dst_port: 50812,
    transport: 'udp',
    trigger: 'unknown_connection',
    rule: 'no_session',
    datagram_bytes: 24,
    suppressed: 0,
  }),
  protocol_violation_gone: record('protocol_violation', 'warning', {
    violation: 'message_on_closed_connection',
    error_type: 'application',
    error_code: 'KCP_ERR_CLOSED',
    size: 12,
  }),
  error_bind: record('error', 'error', {
    local_ip: '0.0.0.0',
    local_port: 4000,
    error_type: 'network',
    error_code: 'EADDRINUSE',
    error_message: 'cannot bind: Address already in use (os error 98)',
  }),
  error_send_peer: record('error', 'error', {
    peer_ip: '192.0.2.44',
    peer_port: 7777,
    error_type: 'network',
    error_code: 'ENETUNREACH',
    error_message: 'send failed: Network is unreachable (os error 101)',
    suppressed: 7,
  }),
  error_panic: record('error', 'error', {
    ...inbound,
    error_type: 'library',
    error_code: 'KCP_ENGINE_PANIC',
    error_message: 'the KCP engine panicked; the session was discarded',
  }),
  log_loss_minimal: record('log_loss', 'warning', { lost_total: 1, lost_critical: 1, lost_bulk: 0 }),
  alert_source: record(
    'alert',
    'warning',
    {
      rule_id: 'KCPW-001',
      rule_name: 'handshake_flood_source',
      threshold: 100,
      window_ms: 10000,
      observed: 120,
      first_seen: '2025-11-26T15:15:31.118000Z',
      last_seen: '2025-11-26T15:15:41.006000Z',
      update: false,
      mitre_technique: 'T1498.001',
      group: 'source',
      group_ip: '198.51.100.23',
    },
    'alert KCPW-001 (handshake_flood_source): 120 in 10000 ms, threshold 100 from 198.51.100.23',
  ),
  alert_listener: record(
    'alert',
    'alert',
    {
      rule_id: 'KCPW-002',
      rule_name: 'handshake_flood_global',
      threshold: 1000,
      window_ms: 10000,
      observed: 5210,
      first_seen: '2025-11-26T15:15:31.118000Z',
      last_seen: '2025-11-26T15:16:31.118000Z',
      update: true,
      mitre_technique: 'T1498.001',
      group: 'listener',
    },
    'alert update KCPW-002 (handshake_flood_global): 5210 in 10000 ms, threshold 1000',
  ),
  alert_without_technique: record('alert', 'warning', {
    rule_id: 'KCPW-007',
    rule_name: 'error_rate_spike',
    threshold: 50,
    window_ms: 60000,
    observed: 81,
    first_seen: '2025-11-26T15:15:31.118000Z',
    last_seen: '2025-11-26T15:16:31.118000Z',
    update: false,
    group: 'listener',
  }),
  alert_source_v6_hmac: record('alert', 'warning', {
    ip_privacy: 'hmac',
    rule_id: 'KCPW-004',
    rule_name: 'conv_scan_source',
    threshold: 32,
    window_ms: 60000,
    observed: 40,
    first_seen: '2025-11-26T15:15:31.118000Z',
    last_seen: '2025-11-26T15:15:41.006000Z',
    update: false,
    mitre_technique: 'T1046',
    group: 'source',
    group_ip_pseudonym: 'k1:jKSYvDBx7bEuMojr3mlyrA',
  }),
  alert_source_omit: record('alert', 'warning', {
    ip_privacy: 'omit',
    rule_id: 'KCPW-009',
    rule_name: 'per_ip_cap_reached',
    threshold: 5,
    window_ms: 60000,
    observed: 5,
    first_seen: '2025-11-26T15:15:31.118000Z',
    last_seen: '2025-11-26T15:15:41.006000Z',
    update: false,
    mitre_technique: 'T1499.002',
    group: 'source',
  }),
};

/** At least one valid record of every event, named for the test titles. */
const valid = { ...examples, ...handMade };

const eventNames = schema.$defs.event_name.enum;
const clone = (value) => structuredClone(value);

// ---- the schema compiles and accepts every event -------------------------------------------

test('the schema is draft 2020-12 with the published $id and compiles under strict mode', (t) => {
  t.is(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.is(schema.$id, 'https://kcpwatch.dev/schema/events.schema.json');
  t.is(typeof validate, 'function');
});

test('every event name has a definition that refuses undeclared fields, and a valid example here', (t) => {
  t.true(eventNames.length >= 14, 'the event names are read from the schema');
  const examples = new Set(Object.values(valid).map((r) => r.name));
  for (const name of eventNames) {
    const def = schema.$defs[name.slice('kcp:'.length)];
    t.truthy(def, `no $defs entry for ${name}`);
    t.is(def.unevaluatedProperties, false, `${name} must refuse undeclared fields`);
    t.deepEqual(def.properties.name, { const: name });
    t.true(examples.has(name), `no valid example of ${name}`);
  }
});

for (const [label, rec] of Object.entries(valid)) {
  test(`valid: ${label}`, (t) => {
    t.deepEqual(errorsOf(rec), []);
  });
}

// ---- what must be refused ----------------------------------------------------------------

test('an unknown extra field is refused on every event', (t) => {
  for (const [label, rec] of Object.entries(valid)) {
    const bad = { ...clone(rec), unexpected_field: 1 };
    const errors = errorsOf(bad);
    t.true(
      errors.some((e) => e.includes('unevaluated') && e.includes('unexpected_field')),
      `${label}: ${errors.join('; ')}`,
    );
  }
  // Fields that exist on other events are unknown here too.
  t.not(errorsOf({ ...clone(valid.connection_attempted), reason: 'malformed' }).length, 0);
  t.not(errorsOf({ ...clone(valid.stats), uid: inbound.uid }).length, 0);
});

test('a wrong name is refused', (t) => {
  t.not(errorsOf({ ...clone(valid.stats), name: 'kcp:detector_fired' }).length, 0, 'not in the catalog');
  t.not(errorsOf({ ...clone(valid.stats), name: 'kcp:alert' }).length, 0, "another event's name");
  t.not(errorsOf({ ...clone(valid.stats), name: 'stats' }).length, 0, 'no kcp: prefix');
  t.not(errorsOf({ ...clone(valid.stats), name: 'kcp:listener_stopped' }).length, 0, "another event's name");
  const noName = clone(valid.stats);
  delete noName.name;
  t.true(errorsOf(noName).some((e) => e.includes("'name'")));
});

test('a bad uid is refused', (t) => {
  for (const uid of ['K031iIoGxR7fm5m9aE3dIS', 'K031iIoGxR7fm5m9aE3dISpp', 'L031iIoGxR7fm5m9aE3dISp', 'K031iIoGxR7fm5m9aE3dIS-', '', 42]) {
    t.true(
      errorsOf({ ...clone(valid.connection_closed), uid }).some((e) => e.startsWith('/uid')),
      `uid ${JSON.stringify(uid)}`,
    );
    t.not(errorsOf({ ...clone(valid.packet_dropped), uid }).length, 0);
  }
});

/** Fields whose removal alone still leaves a valid record. */
const optional = {
  'kcp:connection_attempted': ['community_id'],
  'kcp:connection_established': ['community_id'],
  'kcp:connection_failed': ['community_id'],
  'kcp:connection_state_updated': ['community_id'],
  'kcp:connection_closed': ['community_id', 'peer_reason', 'close_text'],
  'kcp:peer_address_changed': ['community_id'],
  'kcp:packet_dropped': ['community_id', 'uid', 'conv (without uid)'],
  'kcp:protocol_violation': ['community_id', 'limit'],
  'kcp:error': ['community_id', 'suppressed'],
  'kcp:log_loss': ['lost_severity_warning', 'lost_severity_notice', 'lost_severity_info', 'since'],
  'kcp:alert': ['group_ip_pseudonym'],
};

test('a missing required field is refused, and only documented fields are optional', (t) => {
  for (const [label, rec] of Object.entries(valid)) {
    for (const field of Object.keys(rec)) {
      const without = clone(rec);
      delete without[field];
      const allowed = optional[rec.name] ?? [];
      const isOptional = allowed.includes(field) || (!('uid' in rec) && allowed.includes(`${field} (without uid)`));
      t.is(errorsOf(without).length === 0, isOptional, `${label} without ${field}`);
    }
  }
});

test('connection, peer and local address fields come whole or not at all', (t) => {
  const halfConnection = clone(valid.protocol_violation);
  delete halfConnection.uid;
  t.not(errorsOf(halfConnection).length, 0);
  const halfPeer = clone(valid.error_send_peer);
  delete halfPeer.peer_port;
  t.not(errorsOf(halfPeer).length, 0);
  const halfLocal = clone(valid.stats);
  delete halfLocal.local_port;
  t.not(errorsOf(halfLocal).length, 0);
  const both = { ...clone(valid.error_panic), peer_ip: '192.0.2.44', peer_port: 7777 };
  t.not(errorsOf(both).length, 0, 'a connection and a peer at once');
  const uidWithoutConv = clone(valid.packet_dropped);
  delete uidWithoutConv.conv;
  t.not(errorsOf(uidWithoutConv).length, 0);
  const noLocal = clone(valid.stats);
  delete noLocal.local_ip;
  delete noLocal.local_port;
  t.deepEqual(errorsOf(noLocal), []);
});

test('types, ranges and formats are enforced', (t) => {
  const bad = [
    [valid.stats, { ts: '2025-11-26T15:13:20.412Z' }, 'milliseconds only'],
    [valid.stats, { ts: '2025-11-26T15:13:20.412305+00:00' }, 'not Z'],
    [valid.stats, { ts: '2025-11-26 15:13:20.412305Z' }, 'no T'],
    [valid.stats, { time: -1 }, 'negative time'],
    [valid.stats, { seq: 1.5 }, 'fractional seq'],
    [valid.stats, { connections: '412' }, 'string counter'],
    [valid.stats, { level: 35 }, 'not a pino level'],
    [valid.stats, { severity: 8 }, 'severity above 7'],
    [valid.stats, { level_name: 'informational' }, 'not as Severity::as_str prints it'],
    [valid.stats, { observer_instance: 7 }, 'instance is a string'],
    [valid.stats, { local_port: 65536 }, 'port above 65535'],
    [valid.stats, { local_ip: '999.1.1.1' }, 'not an IPv4 address'],
    [valid.stats, { local_ip: 'localhost' }, 'a name, not an address'],
    [valid.stats, { local_ip: '[::1]' }, 'brackets'],
    [valid.connection_attempted, { conv: 4294967296 }, 'conv beyond u32'],
    [valid.connection_attempted, { community_id: '1:e23jD2+gS8UFNMTp7fpj/Bjffds' }, 'community id without padding'],
    [valid.connection_attempted, { community_id: '2:e23jD2+gS8UFNMTp7fpj/Bjffds=' }, 'community id version'],
    [valid.connection_attempted, { direction: 'incoming' }, 'direction vocabulary'],
    [valid.connection_attempted, { transport: 'tcp' }, 'transport'],
    [valid.listener_started, { mode: 'tls' }, 'mode vocabulary'],
    [valid.listener_started, { kcp_interval_ms: 5 }, 'interval below 10'],
    [valid.listener_started, { kcp_nodelay: 1 }, 'boolean parameter'],
    [valid.connection_closed, { history: 'DadX' }, 'unknown history letter'],
    [valid.connection_closed, { reason: 'timeout' }, 'close reason vocabulary'],
    [valid.error_send_peer, { error_message: 'x'.repeat(161) }, 'message beyond 160 bytes'],
    [valid.log_loss, { lost_severity_info: -1 }, 'negative loss count'],
    [valid.log_loss, { since: 'yesterday' }, 'since is a timestamp'],
  ];
  for (const [base, patch, why] of bad) {
    t.not(errorsOf({ ...clone(base), ...patch }).length, 0, why);
  }
  t.deepEqual(errorsOf({ ...clone(valid.stats), local_ip: '::ffff:10.0.0.5' }), [], 'IPv6 with an IPv4 tail');
  t.deepEqual(errorsOf({ ...clone(valid.stats), local_ip: 'fe80::1ff:fe23:4567:890a' }), []);
});

test('severity, level and level_name are pinned per event and agree with each other', (t) => {
  t.not(errorsOf({ ...clone(valid.error_bind), severity: 4, level: 40, level_name: 'warning' }).length, 0);
  t.not(errorsOf({ ...clone(valid.stats), level: 40 }).length, 0, 'level does not follow severity');
  t.not(errorsOf({ ...clone(valid.packet_dropped), level_name: 'info' }).length, 0);
  // connection_closed: severity and initiator follow the reason.
  const closed = (reason, levelName, initiator) => {
    const [severity, level] = levels[levelName];
    return { ...clone(valid.connection_closed_2), reason, initiator, severity, level, level_name: levelName };
  };
  t.deepEqual(errorsOf(closed('dead_link', 'notice', 'local')), []);
  t.deepEqual(errorsOf(closed('evicted', 'notice', 'local')), []);
  t.deepEqual(errorsOf(closed('protocol_violation', 'warning', 'remote')), []);
  t.deepEqual(errorsOf(closed('peer_closed', 'info', 'remote')), []);
  t.deepEqual(errorsOf(closed('local_closed', 'info', 'local')), []);
  t.deepEqual(errorsOf(closed('shutdown', 'info', 'local')), []);
  t.not(errorsOf(closed('dead_link', 'info', 'local')).length, 0);
  t.not(errorsOf(closed('internal_error', 'info', 'local')).length, 0);
  t.not(errorsOf(closed('peer_closed', 'info', 'local')).length, 0);
});

test('vocabularies that belong together are checked together', (t) => {
  const drop = (trigger, rule) => ({ ...clone(valid.packet_dropped), trigger, rule });
  t.deepEqual(errorsOf(drop('bad_length', 'trailing_bytes')), []);
  t.deepEqual(errorsOf(drop('guard_violation', 'una_beyond_sent')), []);
  t.not(errorsOf(drop('bad_length', 'ack_stale')).length, 0);
  t.not(errorsOf(drop('over_limit', 'no_session')).length, 0);
  t.not(errorsOf(drop('guard_violation', 'made_up_rule')).length, 0);
  t.not(errorsOf({ ...clone(valid.connection_failed_malformed), reason: 'capacity' }).length, 0, 'capacity is over_limit');
  t.not(errorsOf({ ...clone(valid.connection_failed_capacity_aggregate), reason: 'malformed' }).length, 0);
  t.deepEqual(
    errorsOf({ ...clone(valid.connection_failed_malformed), reason: 'invalid_cookie', trigger: 'bad_tag', rule: 'cookie_mac' }),
    [],
    'secure-mode reasons are in the vocabulary',
  );
  t.not(errorsOf({ ...clone(valid.connection_failed_malformed), reason: 'invalid_cookie' }).length, 0, 'a bad cookie is bad_tag');
  t.not(errorsOf({ ...clone(valid.protocol_violation), error_code: 'KCP_ERR_CLOSED' }).length, 0);
  t.not(errorsOf({ ...clone(valid.protocol_violation), error_type: 'library' }).length, 0);
  t.not(errorsOf({ ...clone(valid.error_panic), error_code: 'EADDRINUSE' }).length, 0, 'library codes are KCP_*');
  t.not(errorsOf({ ...clone(valid.error_bind), error_code: 'KCP_ENGINE_PANIC' }).length, 0, 'network codes are errno names');
  t.deepEqual(errorsOf({ ...clone(valid.error_panic), error_code: 'KCP_INPUT_BAD_CMD', error_message: 'unsupported cmd 99' }), []);
  // Secure mode and the limits: each trigger with its own rules.
  t.deepEqual(errorsOf(drop('decrypt_failed', 'session_aead')), []);
  t.deepEqual(errorsOf(drop('decrypt_failed', 'hello_noise')), []);
  t.deepEqual(errorsOf(drop('bad_tag', 'reset_tag')), []);
  t.not(errorsOf(drop('bad_tag', 'session_aead')).length, 0);
  t.deepEqual(errorsOf(drop('replayed', 'replay_window')), []);
  t.deepEqual(errorsOf(drop('unknown_connection', 'no_handshake')), []);
  t.deepEqual(errorsOf(drop('bad_cmd', 'hello_to_client')), []);
  t.not(errorsOf(drop('replayed', 'session_aead')).length, 0);
  t.not(errorsOf(drop('bad_tag', 'replay_window')).length, 0);
  t.not(errorsOf(drop('rate_limited', 'max_connections')).length, 0);
  t.not(errorsOf(drop('over_limit', 'handshake_rate_global')).length, 0);
  t.not(errorsOf(drop('bad_tag', 'authenticate')).length, 0, 'a rule of failed attempts without a datagram');
  t.not(errorsOf(drop('made_up_trigger', 'session_aead')).length, 0);
  // kcp:connection_failed: the trigger belongs to the reason, and is absent only when no
  // datagram was refused.
  const failed = (base, patch) => {
    const r = { ...clone(base), ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete r[k];
    return r;
  };
  t.deepEqual(errorsOf(failed(valid.connection_failed_auth_rejected, { rule: 'auth_timeout', suppressed: 3 })), []);
  t.deepEqual(errorsOf(failed(valid.connection_failed_rate_limited, { rule: 'handshake_rate_global' })), []);
  t.deepEqual(errorsOf(failed(valid.connection_failed_invalid_cookie, { reason: 'expired_cookie', rule: 'cookie_expired' })), []);
  t.deepEqual(
    errorsOf(failed(valid.connection_failed_rate_limited, { reason: 'version_mismatch', trigger: 'bad_cmd', rule: 'unsupported_version' })),
    [],
  );
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { trigger: 'too_short', rule: 'hello_too_short' })), []);
  t.deepEqual(errorsOf(failed(valid.connection_failed_per_ip_limit, { rule: 'max_pending_auth' })), []);
  // A REJECT can say any reason but those a side finds out alone: a HELLO that does not
  // decrypt gets no answer, an ACCEPT that does not decrypt or ICMP about our HELLOs is the
  // client's own finding, and an ACCEPT the client never confirmed is the server's.
  const ownFindings = ['decrypt_failed', 'server_auth_failed', 'unreachable', 'handshake_abandoned'];
  for (const reason of schema.$defs.fail_reason.enum.filter((r) => !ownFindings.includes(r))) {
    t.deepEqual(errorsOf(failed(valid.connection_failed_server_rejected, { reason })), [], `server_rejected, ${reason}`);
  }
  for (const reason of ownFindings) {
    t.not(errorsOf(failed(valid.connection_failed_server_rejected, { reason })).length, 0, `server_rejected, ${reason}`);
  }
  t.deepEqual(errorsOf(failed(valid.connection_failed_server_rejected, { reason: 'server_auth_failed', rule: 'accept_noise' })), []);
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { reason: 'decrypt_failed', trigger: 'decrypt_failed', rule: 'hello_noise' })), []);
  // The MTU agreement: a HELLO stating too small an MTU is refused for its length; a client's
  // own finding about the ACCEPT's MTU comes without a trigger, no datagram being refused.
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { trigger: 'bad_length', rule: 'hello_mtu' })), []);
  t.not(errorsOf(failed(valid.connection_failed_malformed, { trigger: 'bad_cmd', rule: 'hello_mtu' })).length, 0);
  for (const rule of ['accept_mtu', 'queued_message_too_large']) {
    t.deepEqual(errorsOf(failed(valid.connection_failed_server_rejected, { reason: 'malformed', rule })), [], rule);
    t.not(errorsOf(failed(valid.connection_failed_server_rejected, { reason: 'malformed', rule, trigger: 'bad_length' })).length, 0, rule);
  }
  // The parameter agreement: a HELLO with an empty window is refused for its length; a stream
  // mode mismatch is refused as a datagram of the other mode, and only as stream_mismatch.
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { trigger: 'bad_length', rule: 'hello_window' })), []);
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { reason: 'stream_mismatch', trigger: 'bad_cmd', rule: 'hello_stream' })), []);
  t.not(errorsOf(failed(valid.connection_failed_malformed, { reason: 'malformed', trigger: 'bad_cmd', rule: 'hello_stream' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_malformed, { reason: 'stream_mismatch', trigger: 'bad_cmd', rule: 'mode_mismatch' })).length, 0);
  t.deepEqual(errorsOf(failed(valid.connection_failed_server_rejected, { reason: 'stream_mismatch', rule: 'accept_stream' })), []);
  t.not(errorsOf(failed(valid.connection_failed_server_rejected, { reason: 'stream_mismatch', rule: 'accept_stream', trigger: 'bad_cmd' })).length, 0);
  t.deepEqual(errorsOf(failed(valid.connection_failed_malformed, { reason: 'unknown_server_key', trigger: 'bad_cmd', rule: 'unknown_key_id' })), []);
  t.not(errorsOf(failed(valid.connection_failed_malformed, { reason: 'decrypt_failed', trigger: 'bad_tag', rule: 'cookie_mac' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_malformed, { trigger: undefined })).length, 0, 'malformed needs its trigger');
  t.not(errorsOf(failed(valid.connection_failed_rate_limited, { trigger: undefined })).length, 0, 'rate_limited needs its trigger');
  t.not(errorsOf(failed(valid.connection_failed_rate_limited, { trigger: 'over_limit', rule: 'max_connections' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_invalid_cookie, { trigger: 'bad_cmd', rule: 'bad_cmd' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_invalid_cookie, { reason: 'capacity' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_auth_rejected, { trigger: 'over_limit' })).length, 0, 'no trigger with authenticate');
  t.not(errorsOf(failed(valid.connection_failed_auth_rejected, { reason: 'capacity' })).length, 0, 'authenticate is auth_rejected');
  t.not(errorsOf(failed(valid.connection_failed_auth_rejected, { rule: 'cookie_mac' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_auth_rejected, { ...outbound6 })).length, 0, 'the application answers on a server');
  t.not(errorsOf(failed(valid.connection_failed_handshake_timeout, { ...inbound })).length, 0, "a client's own handshake");
  t.not(errorsOf(failed(valid.connection_failed_handshake_timeout, { reason: 'capacity' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_handshake_timeout, { trigger: 'too_short' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_unreachable, { ...inbound })).length, 0, "a client's own handshake");
  t.not(errorsOf(failed(valid.connection_failed_unreachable, { rule: 'handshake_timeout' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_unreachable, { reason: 'handshake_timeout' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_unreachable, { trigger: 'too_short' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_server_rejected, { ...inbound })).length, 0, 'a REJECT reaches a client');
  t.not(errorsOf(failed(valid.connection_failed_server_rejected, { trigger: 'over_limit' })).length, 0);
  t.not(errorsOf(failed(valid.connection_failed_server_rejected, { rule: 'max_connections' })).length, 0);
  const transition = (prev_state, state) => ({ ...clone(valid.connection_state_updated), prev_state, state });
  t.deepEqual(errorsOf(transition('established', 'closing')), []);
  t.deepEqual(errorsOf(transition('attempted', 'closed')), []);
  t.not(errorsOf(transition('closed', 'established')).length, 0);
  t.not(errorsOf(transition('closing', 'established')).length, 0);
  t.not(errorsOf(transition('established', 'attempted')).length, 0);
  t.deepEqual(errorsOf(transition('handshaking', 'established')), []);
});

test('kcp:peer_address_changed: the new flow in the connection fields, the old addresses beside it', (t) => {
  const moved = valid.peer_address_changed;
  t.not(errorsOf({ ...clone(moved), severity: 6, level: 30, level_name: 'info' }).length, 0, 'severity notice');
  t.not(errorsOf({ ...clone(moved), old_peer_port: 65536 }).length, 0);
  t.not(errorsOf({ ...clone(moved), old_peer_ip: 'somewhere' }).length, 0);
  t.not(errorsOf({ ...clone(moved), old_src_ip: '203.0.113.7' }).length, 0, 'old_peer, not old_src');
  // Under a privacy mode the old addresses change like every other address.
  const { src_ip, dst_ip, old_peer_ip, old_local_ip, community_id, ...rest } = clone(moved);
  void src_ip, dst_ip, old_peer_ip, old_local_ip, community_id;
  const pseudonyms = {
    ...rest,
    ip_privacy: 'hmac',
    src_ip_pseudonym: 'k1:jKSYvDBx7bEuMojr3mlyrA',
    dst_ip_pseudonym: 'k1:2pDv0Ceco_ivONKY5NXr_Q',
    old_peer_ip_pseudonym: 'k1:VcvgmGxoV7oiPrlYnD-mvg',
    old_local_ip_pseudonym: 'k1:2pDv0Ceco_ivONKY5NXr_Q',
  };
  t.deepEqual(errorsOf(pseudonyms), []);
  t.deepEqual(errorsOf({ ...rest, ip_privacy: 'omit' }), [], 'omit: ports only');
  t.not(errorsOf({ ...rest }).length, 0, 'without ip_privacy the addresses are required');
  t.not(errorsOf({ ...pseudonyms, old_peer_ip_pseudonym: '203.0.113.7' }).length, 0);
});

test('kcp:alert: rule id, name, severity, group and technique belong together', (t) => {
  const alert = (base, patch) => {
    const r = { ...clone(base), ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete r[k];
    return r;
  };
  const src = valid.alert_source;
  const warning = { severity: 4, level: 40, level_name: 'warning' };
  const critical = { severity: 1, level: 60, level_name: 'alert' };
  // Every rule, with its own name, group, severity and technique.
  const rules = [
    ['KCPW-001', 'handshake_flood_source', 'source', warning, 'T1498.001'],
    ['KCPW-002', 'handshake_flood_global', 'listener', critical, 'T1498.001'],
    ['KCPW-003', 'failed_handshakes_source', 'source', warning, 'T1110'],
    ['KCPW-004', 'conv_scan_source', 'source', warning, 'T1046'],
    ['KCPW-005', 'invalid_datagram_burst', 'listener', critical, 'T1498.001'],
    ['KCPW-006', 'dead_link_burst', 'listener', warning, undefined],
    ['KCPW-007', 'error_rate_spike', 'listener', warning, undefined],
    ['KCPW-008', 'connection_churn_source', 'source', warning, 'T1499.002'],
    ['KCPW-009', 'per_ip_cap_reached', 'source', warning, 'T1499.002'],
  ];
  for (const [rule_id, rule_name, group, sev, mitre_technique] of rules) {
    const ok = alert(src, {
      rule_id,
      rule_name,
      group,
      ...sev,
      mitre_technique,
      group_ip: group === 'source' ? '198.51.100.23' : undefined,
    });
    t.deepEqual(errorsOf(ok), [], rule_id);
    t.not(errorsOf({ ...clone(ok), rule_name: rule_id === 'KCPW-001' ? 'conv_scan_source' : 'handshake_flood_source' }).length, 0, `${rule_id}: another rule's name`);
    t.not(errorsOf({ ...clone(ok), ...(sev === warning ? critical : warning) }).length, 0, `${rule_id}: severity`);
    if (mitre_technique) {
      t.not(errorsOf(alert(ok, { mitre_technique: undefined })).length, 0, `${rule_id}: technique required`);
      t.not(errorsOf({ ...clone(ok), mitre_technique: mitre_technique === 'T1110' ? 'T1046' : 'T1110' }).length, 0, `${rule_id}: another technique`);
    } else {
      t.not(errorsOf({ ...clone(ok), mitre_technique: 'T1110' }).length, 0, `${rule_id}: no technique`);
    }
    const other = group === 'source' ? 'listener' : 'source';
    t.not(errorsOf(alert(ok, { group: other, group_ip: other === 'source' ? '198.51.100.23' : undefined })).length, 0, `${rule_id}: group`);
  }
  // The vocabularies.
  t.not(errorsOf({ ...clone(src), rule_id: 'KCPW-010' }).length, 0, 'unknown rule id');
  t.not(errorsOf({ ...clone(src), rule_id: 'kcpw-001' }).length, 0, 'rule ids are upper case');
  t.not(errorsOf({ ...clone(src), mitre_technique: 'T1498' }).length, 0, 'the technique is exact');
  t.not(errorsOf({ ...clone(src), group: 'prefix' }).length, 0);
  t.not(errorsOf({ ...clone(src), update: 'false' }).length, 0, 'update is a boolean');
  t.not(errorsOf({ ...clone(src), observed: -1 }).length, 0);
  t.not(errorsOf({ ...clone(src), threshold: 1.5 }).length, 0);
  t.not(errorsOf({ ...clone(src), first_seen: 1764170131118 }).length, 0, 'first_seen is RFC 3339');
  t.not(errorsOf({ ...clone(src), last_seen: '2025-11-26T15:15:41Z' }).length, 0, 'microsecond format');
  // The grouping address: required for a source in full mode, absent for the listener, through
  // the privacy mode.
  t.not(errorsOf(alert(src, { group_ip: undefined })).length, 0, 'a source alert names its source');
  t.not(errorsOf({ ...clone(src), group_ip: 'somewhere' }).length, 0);
  t.not(errorsOf({ ...clone(valid.alert_listener), group_ip: '198.51.100.23' }).length, 0, 'no address for the listener');
  t.not(errorsOf({ ...clone(valid.alert_listener), group_ip_pseudonym: 'k1:jKSYvDBx7bEuMojr3mlyrA' }).length, 0);
  t.deepEqual(errorsOf({ ...clone(src), ip_privacy: 'truncate', group_ip: '198.51.100.0' }), []);
  t.deepEqual(errorsOf(alert(src, { ip_privacy: 'omit', group_ip: undefined })), [], 'omit: no address');
  t.not(errorsOf({ ...clone(valid.alert_source_v6_hmac), group_ip: '2001:db8:bad:1::' }).length, 0, 'hmac: never the address');
  t.not(errorsOf({ ...clone(src), group_ip_pseudonym: 'k1:jKSYvDBx7bEuMojr3mlyrA' }).length, 0, 'a pseudonym only under hmac');
  t.not(errorsOf({ ...clone(valid.alert_source_v6_hmac), group_ip_pseudonym: '198.51.100.23' }).length, 0);
  // No connection fields.
  for (const [k, v] of Object.entries(inbound)) {
    t.not(errorsOf({ ...clone(src), [k]: v }).length, 0, `no ${k} on an alert`);
  }
});

test('the records the canonical writer makes in tests (crates/kcpwatch-log/tests/fixtures) are valid', (t) => {
  const dir = `${root}/crates/kcpwatch-log/tests/fixtures`;
  if (!existsSync(dir)) {
    t.pass('Rust tests not present (installed package)');
    return;
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.ndjson'));
  t.true(files.includes('events_secure.ndjson'));
  const names = new Set();
  for (const file of files) {
    const lines = readFileSync(`${dir}/${file}`, 'utf8').split('\n').filter(Boolean);
    lines.forEach((line, i) => {
      const rec = JSON.parse(line);
      names.add(rec.name);
      t.deepEqual(errorsOf(rec), [], `${file}:${i + 1} ${rec.name}`);
    });
  }
  t.deepEqual([...names].sort(), [...eventNames].sort(), 'the fixtures cover every event');
});

// ---- the schema, the Rust catalog, the TypeScript types and the docs agree ---------------

// The event names, the vocabularies that Rust enums define, the detector rules, the fields of
// each event, the engine's error codes (`EngineError::from_kcp` over every engine error) and the
// drop and failure rules (the `rule` vocabulary, its pairing with `trigger`, the rules without
// one) are generated from their Rust declarations by `npm run codegen`, whose drift check runs
// in `cargo test` and `npm run lint`. The canonical writer is checked against the catalogue by
// crates/kcpwatch-log/tests/canonical_catalogue.rs.

test('the TypeScript rule unions (DropRule, FailRule) name exactly the schema rules', (t) => {
  // Read through the compiler's own type checker, as the public types export them.
  const file = join(root, 'src/event-types.ts');
  const program = ts.createProgram([file], { strict: true, noEmit: true });
  const checker = program.getTypeChecker();
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)));
  const literals = (alias) => {
    const symbol = exports.find((s) => s.name === alias);
    t.truthy(symbol, `src/event-types.ts exports ${alias}`);
    const type = checker.getDeclaredTypeOfSymbol(checker.getAliasedSymbol(symbol));
    return (type.isUnion() ? type.types : [type]).filter((m) => m.isStringLiteral()).map((m) => m.value);
  };
  const drop = literals('DropRule');
  const fail = literals('FailRule');
  t.deepEqual([...new Set([...drop, ...fail])].sort(), [...schema.$defs.rule.enum].sort());
  // DropRule holds the rules with a trigger, FailRule those without.
  const noTrigger = schema.$defs.connection_failed.allOf.find((s) => s.then?.properties?.trigger === false);
  t.deepEqual([...fail].sort(), [...noTrigger.if.properties.rule.enum].sort());
  t.deepEqual(drop.filter((r) => fail.includes(r)), []);
});

test('every example in docs/events.md is a valid record, and every event is documented', (t) => {
  const docs = read('docs/events.md');
  const blocks = [...docs.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]));
  t.true(blocks.length >= eventNames.length);
  for (const rec of blocks) {
    t.deepEqual(errorsOf(rec), [], `${rec.name} example`);
  }
  const exampled = new Set(blocks.map((r) => r.name));
  for (const name of eventNames) {
    t.true(exampled.has(name), `no example of ${name}`);
    t.true(docs.includes(`### ${name}\n`), `no section for ${name}`);
  }
});
