// The logging surface (src/log.ts): every path that produces a security record, checked end to
// end through the public API. Each record a test receives is validated against
// schema/events.schema.json; each connection's records are checked as the exact ordered
// sequence the endpoint emits (crates/kcpwatch-proto/src/endpoint.rs).
//
// The tests run serially: several depend on timing windows (sampling, idle timeout, dead link)
// and on ICMP errors for just-closed ports, which a concurrently running test could disturb.

import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';

import { CMD_ACK, CMD_WASK, datagram, segment } from './helpers/kcpwire.mjs';
import { EventLog, closedPort, kcpwatch, next, udpSocket, untilFile } from './helpers/util.mjs';

const schema = JSON.parse(readFileSync(new URL('../schema/events.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true });
const validate = ajv.compile(schema);

/** A record collector that checks every record against the schema as it arrives. */
function eventLog() {
  return new EventLog((record) =>
    validate(record) ? undefined : `${record.name} seq ${record.seq}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(record)}`,
  );
}

/** Quiet, unsampled logging delivered to JavaScript only. */
const quiet = { destination: 'none', statsInterval: 0, sampleBurst: 1000 };

/** One label per record: the name plus what distinguishes records of that name. */
function label(e) {
  const name = e.name.replace(/^kcp:/, '');
  switch (name) {
    case 'connection_state_updated':
      return `${name}:${e.prev_state}>${e.state}`;
    case 'connection_closed':
    case 'connection_failed':
      return `${name}:${e.reason}`;
    case 'packet_dropped':
      return `${name}:${e.trigger}`;
    case 'error':
      return `${name}:${e.error_code}`;
    case 'protocol_violation':
      return `${name}:${e.violation}`;
    default:
      return name;
  }
}

/** The labels of one connection's records, in arrival order. */
function flow(log, uid) {
  return log.records.filter((e) => e.uid === uid).map(label);
}

/** `count` copies of `label`. */
const times = (count, l) => Array.from({ length: count }, () => l);

const opened = [
  'connection_attempted',
  'connection_state_updated:attempted>established',
  'connection_established',
];

/** Community ID v1 (https://github.com/corelight/community-id-spec) of a UDP flow. */
function communityId(srcIp, srcPort, dstIp, dstPort, seed = 0) {
  const bytes = (ip) => Buffer.from(ip.split('.').map(Number));
  let [a, ap, b, bp] = [bytes(srcIp), srcPort, bytes(dstIp), dstPort];
  const order = Buffer.compare(a, b);
  if (order > 0 || (order === 0 && ap > bp)) [a, ap, b, bp] = [b, bp, a, ap];
  const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
  const hash = createHash('sha1')
    .update(Buffer.concat([u16(seed), a, b, Buffer.from([17, 0]), u16(ap), u16(bp)]))
    .digest('base64');
  return `1:${hash}`;
}

/** Every record valid; `seq` runs 0, 1, 2, ... without a gap (nothing lost, nothing reordered). */
function checkStream(t, log, what = 'records') {
  t.deepEqual(log.problems, [], `${what} that do not match the schema`);
  t.deepEqual(
    log.records.map((e) => e.seq),
    log.records.map((_, i) => i),
    `${what}: seq ${log.records.map((e) => e.seq).join(',')}`,
  );
}

/** The connection fields of an inbound record: src is the peer, dst the server. */
function assertInbound(t, e, { uid, conv, peerPort, serverPort, seed = 0 }) {
  t.like(
    e,
    {
      uid,
      conv,
      direction: 'inbound',
      src_ip: '127.0.0.1',
      src_port: peerPort,
      dst_ip: '127.0.0.1',
      dst_port: serverPort,
      transport: 'udp',
      community_id: communityId('127.0.0.1', peerPort, '127.0.0.1', serverPort, seed),
    },
    `${e.name} seq ${e.seq}`,
  );
}

/**
 * A server with records delivered to `log` from the first one (the listener is added before
 * listen). Raw mode unless asked: the sequences here are raw mode's, and many tests speak plain
 * KCP at it; secure mode's records are tested in secure.test.mjs.
 */
async function loggedServer(t, options = {}, onConnection) {
  const log = eventLog();
  const merged = { ...quiet, ...options.log };
  if (merged.outputs) delete merged.destination;
  const server = kcpwatch.createServer({ mode: 'raw', ...options, log: merged }, onConnection);
  server.on('event', log.push);
  t.teardown(() => server.close());
  const address = await server.listen(0, '127.0.0.1');
  return { server, address, log };
}

function echo(conn) {
  conn.on('message', (m) => conn.send(m));
}

function client(t, port, options = {}) {
  const c = kcpwatch.connect({ host: '127.0.0.1', port, mode: 'raw', ...options });
  t.teardown(() => c.close());
  return c;
}

async function rawSocket(t) {
  const socket = await udpSocket();
  t.teardown(() => {
    try {
      socket.close();
    } catch {
      // Already closed.
    }
  });
  return socket;
}

function sendTo(socket, port, data) {
  return new Promise((resolve, reject) => socket.send(data, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
}

const isClosed = (uid) => (e) => e.name === 'kcp:connection_closed' && e.uid === uid;

test.serial('established then closed by idle_timeout: the whole record sequence and the summary', async (t) => {
  const { server, address, log } = await loggedServer(t, { idleTimeout: 300 }, echo);
  const accepted = next(server, 'connection');
  const c = client(t, address.port);
  const text = 'hello, idle server';
  c.send(text);
  const [[conn], [reply]] = await Promise.all([accepted, next(c, 'message')]);
  t.is(reply.toString(), text);
  const serverClosed = next(conn, 'close');
  const clientClosed = next(c, 'close');
  c.close();
  const [, clientInfo] = await clientClosed;
  const closed = await log.waitFor(isClosed(conn.id), 10_000, 'the idle_timeout close');
  const [serverReason, serverInfo] = await serverClosed;

  t.deepEqual(flow(log, conn.id), [...opened, 'connection_state_updated:established>closed', 'connection_closed:idle_timeout']);
  for (const e of log.records.filter((r) => r.uid === conn.id)) {
    assertInbound(t, e, { uid: conn.id, conv: c.conv, peerPort: c.localPort, serverPort: address.port });
  }
  t.is(c.localAddress, '127.0.0.1');
  t.like(closed, {
    reason: 'idle_timeout',
    initiator: 'local',
    severity: 6,
    level_name: 'info',
    // The server received exactly what the client sent, and sent exactly what it received.
    bytes_received: clientInfo.bytesOut,
    datagrams_received: clientInfo.datagramsOut,
    bytes_sent: clientInfo.bytesIn,
    datagrams_sent: clientInfo.datagramsIn,
    payload_bytes_received: Buffer.byteLength(text),
    payload_bytes_sent: Buffer.byteLength(text),
    messages_received: 1,
    messages_sent: 1,
    guard_drops: 0,
    idle_timeout_ms: 300,
  });
  t.regex(closed.history, /^D/, 'the originator (the client) sent data first');
  t.true(closed.duration_ms >= 300);
  // The record and the application's close event describe the same connection.
  t.is(serverReason, 'idle_timeout');
  t.like(serverInfo, {
    bytesIn: closed.bytes_received,
    bytesOut: closed.bytes_sent,
    datagramsIn: closed.datagrams_received,
    datagramsOut: closed.datagrams_sent,
    payloadBytesIn: closed.payload_bytes_received,
  });
  await server.close();
  checkStream(t, log);
});

test.serial('dead_link: ICMP errors for a vanished client carry its uid, then the connection closes', async (t) => {
  // idleTimeout far beyond the few retransmissions deadLink 3 allows (~30 + 45 + 70 ms).
  let conn;
  const { server, address, log } = await loggedServer(t, { deadLink: 3, idleTimeout: 8000 }, (c) => {
    conn = c;
    echo(c);
  });
  const c = client(t, address.port);
  c.send('before vanishing');
  await next(c, 'message');
  const clientClosed = next(c, 'close');
  c.close();
  await clientClosed;
  // The client's socket is released by a microtask queued after its close event.
  await new Promise(setImmediate);
  const serverClosed = next(conn, 'close');
  conn.send('anyone there?');
  const [reason] = await serverClosed;
  t.is(reason, 'dead_link');
  await log.waitFor(isClosed(conn.id), 10_000, 'the dead_link close');

  // Every transmission to the closed port is answered by ICMP port unreachable (loopback is not
  // rate limited); the error records are sampled, so there is at least one before the close.
  const labels = flow(log, conn.id);
  const refused = labels.filter((l) => l === 'error:ECONNREFUSED').length;
  t.true(refused >= 1, 'at least one ICMP error names the connection');
  t.deepEqual(labels, [
    ...opened,
    ...times(refused, 'error:ECONNREFUSED'),
    'connection_state_updated:established>closed',
    'connection_closed:dead_link',
  ]);
  const errors = log.records.filter((e) => e.name === 'kcp:error');
  t.true(errors.some((e) => e.uid === conn.id));
  for (const e of errors) {
    t.like(e, { error_type: 'network', error_code: 'ECONNREFUSED', severity: 3 });
    if (e.uid) assertInbound(t, e, { uid: conn.id, conv: conn.conv, peerPort: c.localPort, serverPort: address.port });
    // An ICMP error for the last retransmission arrives after the close: it names the peer.
    else t.like(e, { peer_ip: '127.0.0.1', peer_port: c.localPort });
  }
  const closed = log.records.find(isClosed(conn.id));
  t.like(closed, { reason: 'dead_link', initiator: 'local', severity: 5, level_name: 'notice', dead_link: 3 });
  t.true(closed.segments_retransmitted >= 1);
  t.true(server.stats().icmpErrors >= 1);
  await server.close();
  checkStream(t, log);
});

test.serial('local_closed: the server closes after the queued reply is acknowledged', async (t) => {
  // A non-default Community ID seed changes every community_id.
  let serverClosed;
  const { server, address, log } = await loggedServer(t, { log: { communityIdSeed: 4242 } }, (conn) => {
    serverClosed = next(conn, 'close');
    conn.on('message', (m) => {
      conn.send(m);
      conn.close();
    });
  });
  const accepted = next(server, 'connection');
  const c = client(t, address.port);
  c.send('last words');
  const [[conn], [reply]] = await Promise.all([accepted, next(c, 'message')]);
  t.is(reply.toString(), 'last words', 'the reply queued before close() still flows');
  const closed = await log.waitFor(isClosed(conn.id), 10_000, 'the local close');
  t.deepEqual(flow(log, conn.id), [
    ...opened,
    'connection_state_updated:established>closing',
    'connection_state_updated:closing>closed',
    'connection_closed:local_closed',
  ]);
  for (const e of log.records.filter((r) => r.uid === conn.id)) {
    assertInbound(t, e, { uid: conn.id, conv: c.conv, peerPort: c.localPort, serverPort: address.port, seed: 4242 });
  }
  t.like(closed, { reason: 'local_closed', initiator: 'local', messages_sent: 1, messages_received: 1 });
  const [reason, info] = await serverClosed;
  t.is(reason, 'local_closed');
  t.is(info.bytesOut, closed.bytes_sent);
  await server.close();
  checkStream(t, log);
});

test.serial('shutdown: close() ends live connections, listener_started is first and listener_stopped last', async (t) => {
  const { server, address, log } = await loggedServer(t, {}, echo);
  const accepted = next(server, 'connection');
  const c = client(t, address.port);
  c.send('ping');
  const [[conn]] = await Promise.all([accepted, next(c, 'message')]);
  // close() delivers every remaining record before it resolves: no wait needed.
  await server.close();
  // A graceful close: the connection lingers (closing) until its queue is acknowledged.
  t.deepEqual(flow(log, conn.id), [
    ...opened,
    'connection_state_updated:established>closing',
    'connection_state_updated:closing>closed',
    'connection_closed:shutdown',
  ]);
  t.like(log.records.find(isClosed(conn.id)), { reason: 'shutdown', initiator: 'local' });
  const first = log.records[0];
  const last = log.records.at(-1);
  t.like(first, {
    name: 'kcp:listener_started',
    seq: 0,
    local_ip: '127.0.0.1',
    local_port: address.port,
    role: 'server',
    mode: 'raw',
  });
  t.like(last, { name: 'kcp:listener_stopped', local_ip: '127.0.0.1', local_port: address.port, connections_total: 1 });
  // Every record of the run carries the same observer fields.
  t.is(new Set(log.records.map((e) => e.observer_instance)).size, 1);
  t.regex(first.observer_instance, /^L[0-9A-Za-z]{22}$/);
  checkStream(t, log);
});

test.serial('internal_error: an engine panic is an error record, then the close', async (t) => {
  const { server, address, log } = await loggedServer(t, {}, echo);
  const accepted = next(server, 'connection');
  const c = client(t, address.port);
  c.send('ping');
  const [[conn]] = await Promise.all([accepted, next(c, 'message')]);
  const serverClosed = next(conn, 'close');
  conn._injectEngineFault();
  const [reason] = await serverClosed;
  t.is(reason, 'internal_error');
  const closed = await log.waitFor(isClosed(conn.id), 10_000, 'the internal_error close');
  t.deepEqual(flow(log, conn.id), [
    ...opened,
    'error:KCP_ENGINE_PANIC',
    'connection_state_updated:established>closed',
    'connection_closed:internal_error',
  ]);
  const error = log.records.find((e) => e.name === 'kcp:error');
  t.like(error, { error_type: 'library', error_code: 'KCP_ENGINE_PANIC', severity: 3, level_name: 'error' });
  assertInbound(t, error, { uid: conn.id, conv: c.conv, peerPort: c.localPort, serverPort: address.port });
  t.like(closed, { reason: 'internal_error', initiator: 'local', severity: 4, level_name: 'warning' });
  t.is(server.stats().panics, 1);
  await server.close();
  checkStream(t, log);
});

test.serial('failed, malformed: a first datagram the guard refuses never becomes a connection', async (t) => {
  const { server, address, log } = await loggedServer(t);
  const connections = [];
  server.on('connection', (conn) => connections.push(conn));
  // frg 255 is beyond any reassemblable message (guard rule fragment_beyond_window).
  const fragments = await rawSocket(t);
  await sendTo(fragments, address.port, segment({ conv: 1001, frg: 255, payload: Buffer.from('x') }));
  // A payload beyond the receive MSS (1500 - 24 bytes), really present (length_beyond_mss).
  const oversized = await rawSocket(t);
  await sendTo(oversized, address.port, segment({ conv: 1002, payload: Buffer.alloc(1477) }));
  const [first, second] = await log.waitForCount((e) => e.name === 'kcp:connection_failed', 2);
  // A valid opening afterwards does become a connection: had either refused datagram opened
  // one, its 'connection' event would have come first.
  const valid = await rawSocket(t);
  const accepted = next(server, 'connection');
  await sendTo(valid, address.port, segment({ conv: 1003, payload: Buffer.from('ok') }));
  const [conn] = await accepted;
  t.deepEqual(
    connections.map((x) => x.conv),
    [1003],
  );
  t.is(conn.conv, 1003);

  const cases = [
    [first, fragments, 1001, { trigger: 'guard_violation', rule: 'fragment_beyond_window' }],
    [second, oversized, 1002, { trigger: 'bad_length', rule: 'length_beyond_mss' }],
  ];
  for (const [failed, socket, conv, fields] of cases) {
    t.deepEqual(flow(log, failed.uid), [
      'connection_attempted',
      'connection_state_updated:attempted>closed',
      'connection_failed:malformed',
    ]);
    t.like(failed, { reason: 'malformed', suppressed: 0, severity: 5, level_name: 'notice', ...fields });
    for (const e of log.records.filter((r) => r.uid === failed.uid)) {
      assertInbound(t, e, { uid: failed.uid, conv, peerPort: socket.address().port, serverPort: address.port });
    }
  }
  t.like(server.stats(), { connectionsFailed: 2, passiveOpens: 1, droppedGuardViolation: 1, droppedBadLength: 1 });
  await server.close();
  checkStream(t, log);
});

test.serial('failed, capacity: a source beyond maxConnections is refused with over_limit', async (t) => {
  const { server, address, log } = await loggedServer(t, { maxConnections: 1 }, echo);
  const a = client(t, address.port);
  a.send('first');
  await next(a, 'message');
  const connections = [];
  server.on('connection', (conn) => connections.push(conn));
  const b = client(t, address.port, { linger: 0 });
  b.send('second');
  const failed = await log.waitFor(
    (e) => e.name === 'kcp:connection_failed' && e.src_port === b.localPort,
    10_000,
    'the capacity failure',
  );
  t.deepEqual(flow(log, failed.uid), [
    'connection_attempted',
    'connection_state_updated:attempted>closed',
    'connection_failed:capacity',
  ]);
  t.like(failed, { reason: 'capacity', trigger: 'over_limit', rule: 'max_connections', suppressed: 0 });
  assertInbound(t, failed, { uid: failed.uid, conv: b.conv, peerPort: b.localPort, serverPort: address.port });
  t.not(failed.uid, b.id, 'the server names the attempt itself');
  t.is(server.connectionCount, 1);
  t.deepEqual(connections, []);
  t.true(server.stats().droppedOverLimit >= 1);
  b.close();
  await server.close();
  checkStream(t, log);
});

test.serial('packet_dropped: every trigger reachable on loopback, with its rule and the session uid', async (t) => {
  // No echo: the server never sends data, so its snd_nxt stays 0 (used by una_beyond_sent).
  const { server, address, log } = await loggedServer(t);
  const accepted = next(server, 'connection');
  const socket = await rawSocket(t);
  const peerPort = socket.address().port;
  const drop = async (data, predicate, what) => {
    await sendTo(socket, address.port, data);
    return log.waitFor((e) => e.name === 'kcp:packet_dropped' && predicate(e), 10_000, what);
  };

  // Without a session.
  const tooShort = await drop(Buffer.alloc(5), (e) => e.trigger === 'too_short', 'too_short');
  t.like(tooShort, { rule: 'too_short', datagram_bytes: 5, suppressed: 0, src_port: peerPort, dst_port: address.port });
  t.false('uid' in tooShort || 'conv' in tooShort, 'a datagram shorter than a header has neither uid nor conv');
  // An ACK cannot open a conversation. Right after the listener started it is most likely a
  // restarted server's returning player: `stale_session` (docs/detection.md).
  const ackFirst = await drop(segment({ conv: 77, cmd: CMD_ACK }), (e) => e.trigger === 'unknown_connection', 'stale_session');
  t.like(ackFirst, { rule: 'stale_session', conv: 77, datagram_bytes: 24, suppressed: 0, src_port: peerPort });
  t.false('uid' in ackFirst);

  // A session: a valid PUSH opens it.
  const conv = 0x5eed;
  await sendTo(socket, address.port, segment({ conv, sn: 0, payload: Buffer.from('open') }));
  const [conn] = await accepted;

  // Sessions are keyed by (address, conv), so a datagram whose first segment carries another conv
  // opens (or fails to open) another session; bad_conv is reached by a later segment of the
  // same datagram carrying another conv.
  const badConv = datagram({ conv, cmd: CMD_WASK }, { conv: conv + 1, cmd: CMD_WASK });
  const cases = [
    [badConv, { trigger: 'bad_conv', rule: 'bad_conv', datagram_bytes: 48 }],
    [segment({ conv, cmd: 99 }), { trigger: 'bad_cmd', rule: 'bad_cmd', datagram_bytes: 24 }],
    [
      segment({ conv, sn: 1, len: 100, payload: Buffer.alloc(10) }),
      { trigger: 'bad_length', rule: 'length_beyond_datagram', datagram_bytes: 34 },
    ],
    [segment({ conv, cmd: CMD_WASK, una: 5 }), { trigger: 'guard_violation', rule: 'una_beyond_sent', datagram_bytes: 24 }],
  ];
  for (const [data, fields] of cases) {
    const e = await drop(data, (r) => r.trigger === fields.trigger, fields.rule);
    t.like(e, { ...fields, uid: conn.id, conv, suppressed: 0, severity: 5, level_name: 'notice' });
    t.like(e, {
      src_ip: '127.0.0.1',
      src_port: peerPort,
      dst_ip: '127.0.0.1',
      dst_port: address.port,
      transport: 'udp',
      community_id: communityId('127.0.0.1', peerPort, '127.0.0.1', address.port),
    });
  }
  t.like(server.stats(), {
    droppedTooShort: 1,
    droppedUnknownConnection: 1,
    droppedBadConv: 1,
    droppedBadCmd: 1,
    droppedBadLength: 1,
    droppedGuardViolation: 1,
  });
  await server.close();
  t.deepEqual(flow(log, conn.id), [
    ...opened,
    'packet_dropped:bad_conv',
    'packet_dropped:bad_cmd',
    'packet_dropped:bad_length',
    'packet_dropped:guard_violation',
    'connection_state_updated:established>closing',
    'connection_state_updated:closing>closed',
    'connection_closed:shutdown',
  ]);
  const closed = log.records.find(isClosed(conn.id));
  t.is(closed.guard_drops, 4);
  t.regex(closed.history, /^D.*G/, 'the refused datagrams are in the history as G (originator)');
  checkStream(t, log);
});

test.serial('packet_dropped on a client: a stranger’s datagram is unknown_connection (no_session)', async (t) => {
  const { address } = await loggedServer(t, {}, echo);
  const log = eventLog();
  const c = client(t, address.port, { log: { ...quiet, onEvent: log.push } });
  c.send('x');
  await next(c, 'message');
  const stranger = await rawSocket(t);
  await new Promise((resolve, reject) =>
    stranger.send(segment({ conv: c.conv, payload: Buffer.from('hi') }), c.localPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
  );
  const dropped = await log.waitFor((e) => e.name === 'kcp:packet_dropped');
  t.like(dropped, {
    trigger: 'unknown_connection',
    rule: 'no_session',
    conv: c.conv,
    src_port: stranger.address().port,
    dst_port: c.localPort,
    datagram_bytes: 26,
  });
  t.false('uid' in dropped, 'the client has no session with the stranger');
  const closed = next(c, 'close');
  c.close();
  await closed;
  // The client's endpoint stops with its connection and delivers its last records on the way.
  await log.waitFor((e) => e.name === 'kcp:listener_stopped');
  t.deepEqual(flow(log, c.id), [
    ...opened,
    'connection_state_updated:established>closing',
    'connection_state_updated:closing>closed',
    'connection_closed:local_closed',
  ]);
  t.like(log.records.find(isClosed(c.id)), { direction: 'outbound', src_port: c.localPort, dst_port: address.port });
  t.like(log.records[0], { name: 'kcp:listener_started', role: 'client' });
  checkStream(t, log, 'client records');
});

test.serial('protocol violations: refused sends are logged with the connection and the limit', async (t) => {
  let conn;
  const { server, address, log } = await loggedServer(t, { maxMessageSize: 1000, maxSendQueueBytes: 2000 }, (c) => (conn = c));
  // A raw peer that never acknowledges, so what the server sends stays queued.
  const peer = await rawSocket(t);
  const accepted = next(server, 'connection');
  await sendTo(peer, address.port, segment({ conv: 9, payload: Buffer.from('hello') }));
  await accepted;
  const violation = (name) =>
    log.waitFor((e) => e.name === 'kcp:protocol_violation' && e.violation === name, 10_000, name);
  const identity = { uid: conn.id, conv: 9, peerPort: peer.address().port, serverPort: address.port };

  t.throws(() => conn.send(Buffer.alloc(1001)), { instanceOf: kcpwatch.KcpMessageTooLargeError });
  const oversized = await violation('oversized_message');
  t.like(oversized, { error_type: 'application', error_code: 'KCP_ERR_MESSAGE_TOO_LARGE', size: 1001, limit: 1000, severity: 4 });
  assertInbound(t, oversized, identity);

  // An empty message is a message (a PUSH of length 0, as ikcp sends it), not a violation.
  t.true(conn.send(Buffer.alloc(0)));

  // The default highWaterMark is half of maxSendQueueBytes: each send is accepted, and says to wait.
  t.false(conn.send(Buffer.alloc(1000, 1)));
  t.false(conn.send(Buffer.alloc(1000, 2)));
  t.throws(() => conn.send(Buffer.alloc(1000, 3)), { instanceOf: kcpwatch.KcpQueueFullError });
  const full = await violation('send_queue_full');
  t.like(full, { error_code: 'KCP_ERR_QUEUE_FULL', size: 1000, limit: 2000 });
  assertInbound(t, full, identity);

  // Closing with unacknowledged data lingers (closing), and the session still exists.
  conn.close();
  t.throws(() => conn.send('late'), { instanceOf: kcpwatch.KcpClosedError });
  const late = await violation('message_on_closed_connection');
  t.like(late, { error_code: 'KCP_ERR_CLOSED', size: 4 });
  assertInbound(t, late, identity);

  t.like(server.stats(), {
    violationsOversizedMessage: 1,
    violationsEmptyMessage: 0,
    violationsSendQueueFull: 1,
    violationsMessageOnClosedConnection: 1,
  });
  await server.close();
  t.deepEqual(flow(log, conn.id), [
    ...opened,
    'protocol_violation:oversized_message',
    'protocol_violation:send_queue_full',
    'connection_state_updated:established>closing',
    'protocol_violation:message_on_closed_connection',
    'connection_state_updated:closing>closed',
    // The application closed it before the server shut down: its own close is the reason.
    'connection_closed:local_closed',
  ]);
  checkStream(t, log);
});

// Sending to a player who has just left is the common case: the endpoint remembers who last
// lived in the connection's slot, so the record still names the connection.
test.serial('message_on_closed_connection after the close still names the connection', async (t) => {
  const { server, address, log } = await loggedServer(t, {}, echo);
  const accepted = next(server, 'connection');
  const c = client(t, address.port);
  c.send('x');
  const [[conn]] = await Promise.all([accepted, next(c, 'message')]);
  const closed = next(conn, 'close');
  conn.close();
  await closed;
  t.throws(() => conn.send('after'), { instanceOf: kcpwatch.KcpClosedError });
  const late = await log.waitFor((e) => e.violation === 'message_on_closed_connection');
  t.like(late, { size: 5, error_code: 'KCP_ERR_CLOSED' });
  t.is(late.uid, conn.id);
});

test.serial('kcp:error EADDRINUSE is written to the destination before listen() rejects', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'events.ndjson');
  const holder = kcpwatch.createServer({ log: false });
  t.teardown(() => holder.close());
  const { port } = await holder.listen(0, '127.0.0.1');
  const second = kcpwatch.createServer({ log: { destination: { file } } });
  const err = await t.throwsAsync(second.listen(port, '127.0.0.1'), { instanceOf: kcpwatch.KcpAddressInUseError });
  t.true(err instanceof kcpwatch.KcpError);
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  t.is(lines.length, 1);
  const record = JSON.parse(lines[0]);
  t.true(validate(record), ajv.errorsText(validate.errors));
  t.like(record, {
    name: 'kcp:error',
    seq: 0,
    severity: 3,
    error_type: 'network',
    error_code: 'EADDRINUSE',
    local_ip: '127.0.0.1',
    local_port: port,
  });
  t.false('uid' in record);
});

// No listener thread exists when the bind fails: the record comes back with the error and the
// server hands it to its event consumers before rejecting.
test.serial('kcp:error EADDRINUSE also reaches event listeners and onEvent', async (t) => {
  const holder = kcpwatch.createServer({ log: false });
  t.teardown(() => holder.close());
  const { port } = await holder.listen(0, '127.0.0.1');
  const viaOption = eventLog();
  const viaListener = eventLog();
  const second = kcpwatch.createServer({ log: { ...quiet, onEvent: viaOption.push } });
  second.on('event', viaListener.push);
  await t.throwsAsync(second.listen(port, '127.0.0.1'), { instanceOf: kcpwatch.KcpAddressInUseError });
  const isBindError = (e) => e.name === 'kcp:error' && e.error_code === 'EADDRINUSE';
  const [a, b] = await Promise.all([viaOption.waitFor(isBindError, 1000), viaListener.waitFor(isBindError, 1000)]);
  t.like(a, { local_port: port });
  t.like(b, { local_port: port });
});

test.serial('kcp:error ECONNREFUSED on a client whose server port is closed', async (t) => {
  const port = await closedPort();
  const log = eventLog();
  const c = client(t, port, { linger: 0, log: { ...quiet, onEvent: log.push } });
  c.send('anyone?');
  const error = await log.waitFor((e) => e.name === 'kcp:error', 10_000, 'the ICMP error');
  t.like(error, {
    error_type: 'network',
    error_code: 'ECONNREFUSED',
    uid: c.id,
    conv: c.conv,
    direction: 'outbound',
    src_ip: '127.0.0.1',
    src_port: c.localPort,
    dst_ip: '127.0.0.1',
    dst_port: port,
    community_id: communityId('127.0.0.1', c.localPort, '127.0.0.1', port),
  });
  const closed = next(c, 'close');
  c.close();
  await closed;
  await log.waitFor((e) => e.name === 'kcp:listener_stopped');
  const labels = flow(log, c.id);
  const refused = labels.filter((l) => l === 'error:ECONNREFUSED').length;
  t.true(refused >= 1);
  // linger 0: the close does not wait for the unacknowledged message.
  t.deepEqual(labels, [
    ...opened,
    ...times(refused, 'error:ECONNREFUSED'),
    'connection_state_updated:established>closing',
    'connection_state_updated:closing>closed',
    'connection_closed:local_closed',
  ]);
  checkStream(t, log, 'client records');
});

test.serial('kcp:error for a send the kernel refuses (broadcast without SO_BROADCAST)', async (t) => {
  const log = eventLog();
  const c = kcpwatch.connect({ host: '255.255.255.255', port: 9, mode: 'raw', linger: 0, log: { ...quiet, onEvent: log.push } });
  t.teardown(() => c.close());
  c.send('to everyone');
  const error = await log.waitFor((e) => e.name === 'kcp:error', 10_000, 'the send failure');
  // Linux refuses a send to the limited broadcast address on a socket without SO_BROADCAST with
  // EACCES (udp_sendmsg, after a route to it was found: this host has a default route; a host
  // with no route at all would say ENETUNREACH first).
  t.like(error, {
    error_type: 'network',
    error_code: 'EACCES',
    uid: c.id,
    direction: 'outbound',
    dst_ip: '255.255.255.255',
    dst_port: 9,
    // The client could not learn a routed source address (connect() to the broadcast address is
    // refused the same way), so it is bound to the wildcard and reports that.
    src_ip: c.localAddress,
    src_port: c.localPort,
    community_id: communityId(c.localAddress, c.localPort, '255.255.255.255', 9),
  });
  // The address is in the fields, where the privacy mode applies; never in the free text.
  t.is(error.error_message, 'send failed: Permission denied (os error 13)');
  const closed = next(c, 'close');
  c.close();
  await closed;
  await log.waitFor((e) => e.name === 'kcp:listener_stopped');
  checkStream(t, log, 'client records');
});

test.serial('sampling: a burst is logged one by one up to sampleBurst, then one aggregate', async (t) => {
  const { server, address, log } = await loggedServer(t, { log: { sampleBurst: 3, sampleWindow: 300 } });
  const socket = await rawSocket(t);
  const sent = Date.now();
  await Promise.all(Array.from({ length: 10 }, (_, i) => sendTo(socket, address.port, Buffer.alloc(1 + (i % 5)))));
  t.true(Date.now() - sent < 300, 'the burst fits inside one window');
  const drops = await log.waitForCount((e) => e.name === 'kcp:packet_dropped', 4, 10_000, '3 samples and the aggregate');
  t.deepEqual(
    drops.map((e) => e.suppressed),
    [0, 0, 0, 7],
  );
  for (const e of drops) t.like(e, { trigger: 'too_short', rule: 'too_short', src_port: socket.address().port });
  // The aggregate waits for the end of the window (300 ms), and carries the last suppressed
  // datagram. A record's time is its I/O loop iteration's start, and under load a timer can
  // fire a few milliseconds into its iteration: hence the margin (the burst itself took < 300
  // ms, so an aggregate written at once would be far below it).
  t.true(drops[3].time - drops[0].time >= 250, `aggregate ${drops[3].time - drops[0].time} ms after the first`);
  t.is(drops[3].datagram_bytes, 5);
  const total = drops.reduce((n, e) => n + (e.suppressed === 0 ? 1 : e.suppressed), 0);
  t.is(total, 10);
  t.is(server.stats().droppedTooShort, total);
  await server.close();
  t.is(log.records.filter((e) => e.name === 'kcp:packet_dropped').length, 4);
  checkStream(t, log);
});

test.serial('log.level notice: no info records are produced, notice ones are', async (t) => {
  const { server, address, log } = await loggedServer(t, { log: { level: 'notice' } }, echo);
  const c = client(t, address.port);
  c.send('quietly');
  await next(c, 'message');
  const socket = await rawSocket(t);
  await sendTo(socket, address.port, Buffer.alloc(3));
  await log.waitFor((e) => e.name === 'kcp:packet_dropped');
  t.is(server.stats().eventsProduced, 1);
  await server.close();
  // Nothing else: not listener_started/stopped, attempted, established, state updates, or the
  // (info) shutdown close. Filtered records are never produced, so seq has no gap.
  t.deepEqual(
    log.records.map((e) => [e.name, e.seq, e.level_name]),
    [['kcp:packet_dropped', 0, 'notice']],
  );
  checkStream(t, log);
});

test.serial('kcp:stats reports the listener counters periodically', async (t) => {
  const { address, log } = await loggedServer(t, { log: { statsInterval: 100 } }, echo);
  const c = client(t, address.port);
  c.send('counted');
  await next(c, 'message');
  const socket = await rawSocket(t);
  await sendTo(socket, address.port, Buffer.alloc(3));
  // The first record after both happened must count them.
  const stats = await log.waitFor((e) => e.name === 'kcp:stats' && e.datagrams_dropped >= 1 && e.connections === 1, 5_000);
  t.like(stats, { local_ip: '127.0.0.1', local_port: address.port, passive_opens: 1, connections_failed: 0 });
  t.true(stats.datagrams_received >= 2);
  t.true(stats.interval_ms >= 50);
  checkStream(t, log);
});

test.serial('removing the last event listener stops delivery; a later listener gets only later records', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'events.ndjson');
  // The file receives every record regardless of listeners: it tells when the log thread has
  // handled a record that JavaScript must not see.
  const server = kcpwatch.createServer({ mode: 'raw', log: { ...quiet, destination: { file } } });
  t.teardown(() => server.close());
  const first = eventLog();
  server.on('event', first.push);
  const { port } = await server.listen(0, '127.0.0.1');
  const socket = await rawSocket(t);
  const bytes = (n) => (e) => e.name === 'kcp:packet_dropped' && e.datagram_bytes === n;
  const inFile = (n) => (text) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).some(bytes(n));

  await sendTo(socket, port, Buffer.alloc(1));
  await first.waitFor(bytes(1));
  // Everything handed over from native from here on.
  const delivered = [];
  const events = server.events.bind(server);
  server.events = (batch) => {
    delivered.push(...batch);
    events(batch);
  };
  server.off('event', first.push);
  for (const n of [2, 3, 4]) await sendTo(socket, port, Buffer.alloc(n));
  await untilFile(file, inFile(4));
  // Delivery is off: even the records written after the listener went are not handed over. A
  // later record written to the file means the log thread is done with the earlier ones.
  await sendTo(socket, port, Buffer.alloc(6));
  await untilFile(file, inFile(6));
  t.deepEqual(delivered, [], 'nothing crosses into JavaScript without a listener');
  t.is(server.stats().eventsLostJs, 0, 'records not wanted are not counted as lost');
  t.deepEqual(first.records.map((e) => e.seq), [0, 1]);

  const second = eventLog();
  server.on('event', second.push);
  await sendTo(socket, port, Buffer.alloc(5));
  await second.waitFor(bytes(5));
  await server.close();
  const fileRecords = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  for (const e of fileRecords) t.true(validate(e), `${e.name} seq ${e.seq}: ${ajv.errorsText(validate.errors)}`);
  t.deepEqual(fileRecords.map((e) => e.seq), fileRecords.map((_, i) => i), 'the file has every record');
  const beforeSecond = fileRecords.find(bytes(4)).seq;
  const seqs = second.records.map((e) => e.seq);
  t.true(seqs.every((s) => s > beforeSecond), `the second listener got only later records: ${seqs}`);
  t.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  t.deepEqual(
    second.records.map((e) => e.datagram_bytes ?? e.name).filter((x) => x !== 6),
    [5, 'kcp:listener_stopped'],
  );
  t.deepEqual(second.problems, []);
  t.deepEqual(first.problems, []);
});

test.serial('onEvent keeps delivery on when the event listeners come and go', async (t) => {
  const log = eventLog();
  const server = kcpwatch.createServer({ mode: 'raw', log: { ...quiet, onEvent: log.push } });
  t.teardown(() => server.close());
  const noop = () => {};
  server.on('event', noop);
  const { port } = await server.listen(0, '127.0.0.1');
  server.off('event', noop);
  const socket = await rawSocket(t);
  await sendTo(socket, port, Buffer.alloc(7));
  await log.waitFor((e) => e.datagram_bytes === 7);
  await server.close();
  t.deepEqual(log.records.map(label), ['listener_started', 'packet_dropped:too_short', 'listener_stopped']);
  checkStream(t, log);
});

test.serial('log: false produces no records at all', async (t) => {
  const log = eventLog();
  const server = kcpwatch.createServer({ mode: 'raw', log: false }, echo);
  t.teardown(() => server.close());
  server.on('event', log.push);
  const { port } = await server.listen(0, '127.0.0.1');
  const c = client(t, port);
  c.send('unlogged');
  await next(c, 'message');
  const socket = await rawSocket(t);
  await sendTo(socket, port, Buffer.alloc(2));
  await server.close();
  t.deepEqual(log.records, []);
});

test('invalid log options are rejected with KcpInvalidOptionError', (t) => {
  const bad = [
    'stdout',
    { level: 'verbose' },
    { level: 'INFO' },
    { destination: 'syslog' },
    { destination: { file: '' } },
    { destination: { path: '/tmp/x' } },
    { onEvent: 'callback' },
    { sampleWindow: 0 },
    { sampleBurst: -1 },
    { ringCapacity: 1 },
    { statsInterval: 1.5 },
    { communityIdSeed: 65536 },
    { eventBufferBytes: 10 },
    { service: 42 },
  ];
  for (const log of bad) {
    t.throws(() => kcpwatch.createServer({ log }), { instanceOf: kcpwatch.KcpInvalidOptionError, code: 'KCP_ERR_INVALID_OPTION' }, JSON.stringify(log));
  }
  t.throws(() => kcpwatch.connect({ port: 9, log: { level: 'loud' } }), { instanceOf: kcpwatch.KcpInvalidOptionError });
  for (const level of ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug']) {
    t.notThrows(() => kcpwatch.createServer({ log: { level, destination: 'none' } }), level);
  }
  t.notThrows(() => kcpwatch.createServer({ log: { destination: 'stderr' } }));
});

test.serial('several outputs at once, each in its format and from its level up; files rotate whole records', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-outputs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = {
    json: join(dir, 'all.ndjson'),
    ecs: join(dir, 'ecs.ndjson'),
    syslog: join(dir, 'notice.log'),
    otlp: join(dir, 'otlp.ndjson'),
  };
  const log = eventLog();
  const server = kcpwatch.createServer(
    {
      mode: 'raw',
      log: {
        statsInterval: 0,
        outputs: [
          { destination: { file: files.json, maxBytes: 1500, keep: 50 } },
          { destination: { file: files.ecs }, format: 'ecs' },
          { destination: { file: files.syslog }, format: 'rfc5424', level: 'notice' },
          { destination: { file: files.otlp }, format: 'otlp' },
        ],
      },
    },
    echo,
  );
  server.on('event', log.push);
  t.teardown(() => server.close());
  const address = await server.listen(0, '127.0.0.1');
  const c = client(t, address.port);
  c.send('formats');
  await next(c, 'message');
  const socket = await rawSocket(t);
  await sendTo(socket, address.port, Buffer.alloc(3));
  await log.waitFor((e) => e.name === 'kcp:packet_dropped');
  await server.close();
  const read = async (f) => (await readFile(f, 'utf8')).split('\n').filter(Boolean);
  const produced = log.records;
  // Canonical, rotated by size: every file whole lines, together every record once, in order.
  const { readdir } = await import('node:fs/promises');
  const rotated = (await readdir(dir)).filter((f) => f.startsWith('all.ndjson')).sort((a, b) => {
    const n = (f) => (f === 'all.ndjson' ? 0 : Number(f.split('.').pop()));
    return n(b) - n(a);
  });
  t.true(rotated.length > 1, `rotated into ${rotated.length} files`);
  const canonical = [];
  for (const f of rotated) canonical.push(...(await read(join(dir, f))).map((l) => JSON.parse(l)));
  t.deepEqual(
    canonical.map((r) => r.seq),
    produced.map((r) => r.seq),
  );
  // ECS: one document per record, nested, with the ECS names analysts search for.
  const ecs = (await read(files.ecs)).map((l) => JSON.parse(l));
  t.is(ecs.length, produced.length);
  const established = ecs.find((d) => d.event.action === 'connection_established');
  t.is(established.source.ip, '127.0.0.1');
  t.is(established.source.port, c.localPort);
  t.is(established.destination.port, address.port);
  t.is(established.network.transport, 'udp');
  t.is(established.network.community_id, produced.find((e) => e.name === 'kcp:connection_established').community_id);
  // RFC 5424 from notice up: only the drop (the rest of this run is info).
  const syslog = await read(files.syslog);
  t.is(syslog.length, 1);
  t.regex(syslog[0], /^<133>1 \S+ \S+ kcpwatch \S+ kcp:packet_dropped \[kcp@32473 /);
  // OTLP: one ExportLogsServiceRequest per record, nanosecond timestamps as strings.
  const otlp = (await read(files.otlp)).map((l) => JSON.parse(l));
  t.is(otlp.length, produced.length);
  const rec = otlp[0].resourceLogs[0].scopeLogs[0].logRecords[0];
  t.regex(rec.timeUnixNano, /^\d{19}$/);
});

/** A syslog receiver over TCP with octet-counting framing (RFC 6587), as the tests need it. */
async function syslogReceiver(t) {
  const { createServer } = await import('node:net');
  const messages = [];
  const waiters = [];
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const space = buf.indexOf(32);
        if (space < 0) break;
        const len = Number(buf.subarray(0, space).toString());
        if (buf.length < space + 1 + len) break;
        messages.push(buf.subarray(space + 1, space + 1 + len).toString('utf8'));
        buf = buf.subarray(space + 1 + len);
        for (const w of [...waiters]) if (w.test()) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return {
    port: server.address().port,
    messages,
    until: (test, ms = 10_000) =>
      new Promise((resolve, reject) => {
        if (test()) return resolve();
        const timer = setTimeout(() => reject(new Error(`receiver got ${messages.length} messages`)), ms);
        waiters.push({ test, resolve: () => (clearTimeout(timer), resolve()) });
      }),
  };
}

test.serial('a syslog output over TCP delivers every record in RFC 5424, in order', async (t) => {
  const receiver = await syslogReceiver(t);
  const { server, address, log } = await loggedServer(
    t,
    { log: { outputs: [{ destination: { syslog: `tcp://127.0.0.1:${receiver.port}` }, format: 'rfc5424' }] } },
    echo,
  );
  const c = client(t, address.port);
  c.send('to the SIEM');
  await next(c, 'message');
  await server.close();
  await receiver.until(() => receiver.messages.some((m) => m.includes(' kcp:listener_stopped ')));
  const ids = receiver.messages.map((m) => / kcp:[a-z_]+ /.exec(m)[0].trim());
  t.deepEqual(
    ids,
    log.records.map((e) => e.name),
  );
  for (const m of receiver.messages) t.regex(m, /^<1\d\d>1 \d{4}-\d\d-\d\dT[\d:.]+Z /);
});

test.serial('a syslog output that cannot deliver reports what it lost as kcp:log_loss to the other outputs', async (t) => {
  // Nothing listens on this port and there is no spool: the sink's queue of 2 overflows.
  const port = await closedPort();
  const { server, address, log } = await loggedServer(
    t,
    {
      log: {
        outputs: [
          { destination: 'none' },
          { destination: { syslog: `tcp://127.0.0.1:${port}`, queueRecords: 2 }, format: 'rfc5424' },
        ],
      },
    },
    echo,
  );
  const c = client(t, address.port);
  c.send('nobody hears');
  await next(c, 'message');
  const loss = await log.waitFor((e) => e.name === 'kcp:log_loss' && e.lost_output > 0);
  t.is(loss.output, `syslog+tcp://127.0.0.1:${port}`);
  t.is(loss.lost_total, loss.lost_output);
  await server.close();
});

test.serial("a pino logger as the sink: every record at its severity's pino level, with msg", async (t) => {
  const { default: pino } = await import('pino');
  const { Writable } = await import('node:stream');
  const lines = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      done();
    },
  });
  const logger = pino({ level: 'debug', name: 'game-server', base: { app: 'game' } }, stream);
  const { server, address, log } = await loggedServer(t, { log: { pino: logger } }, echo);
  const c = client(t, address.port);
  c.send('to pino');
  await next(c, 'message');
  const socket = await rawSocket(t);
  await sendTo(socket, address.port, Buffer.alloc(3));
  await log.waitFor((e) => e.name === 'kcp:packet_dropped');
  await server.close();
  await log.waitFor((e) => e.name === 'kcp:listener_stopped');
  await new Promise((resolve) => setImmediate(resolve));
  t.is(lines.length, log.records.length);
  const established = lines.find((l) => l.event === 'kcp:connection_established');
  t.is(established.level, 30);
  t.is(established.app, 'game');
  t.is(established.name, 'game-server', "the logger's name is kept: the record's goes under event");
  t.is(established.uid, log.records.find((e) => e.name === 'kcp:connection_established').uid);
  t.regex(established.msg, /^connection established /);
  t.is(lines.find((l) => l.event === 'kcp:packet_dropped').level, 30, 'notice is pino info');
  t.deepEqual(
    lines.map((l) => l.seq),
    log.records.map((e) => e.seq),
  );
});

test.serial('an HTTP output posts gzip-compressed Splunk HEC batches with its token, every record in order', async (t) => {
  // The collector runs in its own process: server.close() blocks this thread while the output
  // delivers its last batch (bounded), as it would block a game's; a collector on this thread
  // could not answer meanwhile.
  const { spawn } = await import('node:child_process');
  const script = `
    const http = require('node:http'); const { gunzipSync } = require('node:zlib');
    const s = http.createServer((req, res) => { const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => { let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        process.stdout.write(JSON.stringify({ auth: req.headers.authorization, url: req.url,
          gzip: req.headers['content-encoding'] === 'gzip', body: body.toString('utf8') }) + '\\n');
        res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"text":"Success","code":0}'); }); });
    s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const requests = [];
  let text = '';
  let onLine = () => {};
  child.stdout.on('data', (d) => {
    text += d;
    const parts = text.split('\n');
    text = parts.pop();
    for (const p of parts) {
      const m = JSON.parse(p);
      if ('body' in m) requests.push(m);
      onLine(m);
    }
  });
  const port = await new Promise((resolve) => (onLine = (m) => m.port && resolve(m.port)));
  const url = `http://127.0.0.1:${port}/services/collector/event`;
  const { server, address, log } = await loggedServer(
    t,
    { log: { outputs: [{ destination: { http: url, kind: 'hec', token: 'secret-token', batchDelayMs: 20 } }] } },
    echo,
  );
  const c = client(t, address.port);
  c.send('to splunk');
  await next(c, 'message');
  await server.close();
  await log.waitFor((e) => e.name === 'kcp:listener_stopped');
  const events = () => requests.flatMap((r) => r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
  const deadline = Date.now() + 10_000;
  while (!events().some((e) => e.event.name === 'kcp:listener_stopped') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  for (const r of requests) t.like(r, { auth: 'Splunk secret-token', url: '/services/collector/event', gzip: true });
  // Each HEC event wraps the canonical record, in order; nothing was lost.
  t.deepEqual(
    events().map((e) => e.event.seq),
    log.records.map((e) => e.seq),
  );
  t.is(events()[0].sourcetype, 'kcpwatch:event');
  child.stdin.end();
});
