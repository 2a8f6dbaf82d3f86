// server.metrics() (src/metrics.ts): Prometheus text exposition 0.0.4, parsed here by a strict
// parser, with counters that equal the security records of the same run.
import test from 'ava';
import { EventLog, kcpwatch, next, udpSocket } from './helpers/util.mjs';
import { CMD_ACK, segment } from './helpers/kcpwire.mjs';

// Every drop and failure is its own record (no sampling aggregates to count around), and no
// periodic stats record.
const quiet = { destination: 'none', statsInterval: 0, sampleBurst: 1_000_000 };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'summary', 'histogram', 'untyped']);

/**
 * A strict parser of the text exposition format 0.0.4: HELP and TYPE at most once per family and
 * before its samples, a family's samples contiguous, names and labels well-formed, label values
 * with only the three escapes, no duplicate series, values that are numbers. Returns the families
 * and a `value(name, labels)` lookup; throws on the first problem.
 */
function parseExposition(text) {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map();
  const series = new Map();
  const closed = new Set();
  let current;
  const family = (name) => {
    if (current && current.name !== name) closed.add(current.name);
    if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
    if (!families.has(name)) families.set(name, { name, help: undefined, type: undefined, samples: [] });
    current = families.get(name);
    return current;
  };
  const familyOf = (sampleName) => {
    if (current) {
      const base = current.name;
      const suffixes = current.type === 'summary' ? ['', '_sum', '_count'] : current.type === 'histogram' ? ['_bucket', '_sum', '_count'] : [''];
      if (suffixes.some((s) => sampleName === base + s)) return current;
    }
    return family(sampleName);
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') throw new Error(`${where}: empty line`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const f = family(name);
      if (f.samples.length) throw new Error(`${where}: ${kind} after samples`);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest;
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample line`);
    const [, name, labelText = '', valueText] = m;
    const labels = {};
    let rest = labelText;
    while (rest.length) {
      const lm = /^([^=]+)="((?:[^"\\]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!lm) throw new Error(`${where}: bad labels at ${JSON.stringify(rest)}`);
      const [all, key, raw] = lm;
      if (!LABEL_NAME.test(key) || key.startsWith('__')) throw new Error(`${where}: bad label name ${key}`);
      if (key in labels) throw new Error(`${where}: label ${key} twice`);
      labels[key] = raw.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
      rest = rest.slice(all.length);
      if (all.endsWith(',') && !rest.length) throw new Error(`${where}: trailing comma`);
    }
    if (!/^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|NaN|[+-]Inf)$/.test(valueText)) {
      throw new Error(`${where}: bad value ${valueText}`);
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    const f = familyOf(name);
    if (f.type === undefined) throw new Error(`${where}: sample before its TYPE`);
    if (f.help === undefined) throw new Error(`${where}: sample before its HELP`);
    if (f.type === 'summary' && name === f.name && !('quantile' in labels)) throw new Error(`${where}: summary sample without quantile`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (series.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    series.set(key, value);
    f.samples.push({ name, labels, value });
  });
  /** The value of one sample: `labels` must match all of its labels except `listener`. */
  const value = (name, labels = {}) => {
    for (const f of families.values()) {
      for (const s of f.samples) {
        if (s.name !== name) continue;
        const { listener: _l, ...own } = s.labels;
        if (JSON.stringify(Object.entries(own).sort()) === JSON.stringify(Object.entries(labels).sort())) return s.value;
      }
    }
    throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
  };
  return { families, value };
}

const sum = (records, f) => records.reduce((n, r) => n + f(r), 0);
const weight = (r) => 1 + (r.suppressed ?? 0);

/**
 * What the records of a run say the counters must be; compared with the exposition as a whole so
 * a failure shows every difference at once.
 */
function expectedFromRecords(records) {
  const of = (name) => records.filter((r) => r.name === name);
  const closed = of('kcp:connection_closed');
  const dropped = of('kcp:packet_dropped');
  const failed = of('kcp:connection_failed');
  const triggers = ['too_short', 'bad_conv', 'bad_length', 'bad_cmd', 'guard_violation', 'unknown_connection', 'over_limit', 'bad_tag', 'replayed', 'rate_limited'];
  const reasons = ['handshake_timeout', 'invalid_cookie', 'expired_cookie', 'auth_rejected', 'rate_limited', 'capacity', 'version_mismatch', 'malformed'];
  const expected = {
    'kcpwatch_connections_opened_total{direction=passive}': of('kcp:connection_established').length,
    'kcpwatch_connections_closed_total': closed.length,
    'kcpwatch_alerts_total': of('kcp:alert').length,
    'kcpwatch_session_received_bytes_total': sum(closed, (r) => r.bytes_received),
    'kcpwatch_session_sent_bytes_total': sum(closed, (r) => r.bytes_sent),
    'kcpwatch_session_datagrams_received_total': sum(closed, (r) => r.datagrams_received),
    'kcpwatch_session_datagrams_sent_total': sum(closed, (r) => r.datagrams_sent),
    'kcpwatch_payload_received_bytes_total': sum(closed, (r) => r.payload_bytes_received),
    'kcpwatch_payload_sent_bytes_total': sum(closed, (r) => r.payload_bytes_sent),
    'kcpwatch_messages_received_total': sum(closed, (r) => r.messages_received),
    'kcpwatch_messages_sent_total': sum(closed, (r) => r.messages_sent),
    'kcpwatch_segments_received_total': sum(closed, (r) => r.segments_received),
    'kcpwatch_segments_sent_total': sum(closed, (r) => r.segments_sent),
    'kcpwatch_retransmitted_segments_total{kind=timeout}': sum(closed, (r) => r.segments_retransmitted),
    'kcpwatch_retransmitted_segments_total{kind=fast}': sum(closed, (r) => r.segments_fast_retransmitted),
    'kcpwatch_lost_segments_total': sum(closed, (r) => r.segments_lost),
    'kcpwatch_repeat_segments_total': sum(closed, (r) => r.segments_duplicate_received),
    'kcpwatch_acks_sent_total': sum(closed, (r) => r.acks_sent),
    'kcpwatch_acks_received_total': sum(closed, (r) => r.acks_received),
    'kcpwatch_session_guard_drops_total': sum(closed, (r) => r.guard_drops),
    // Connections with an ACK had RTT samples; their srtt at close is in the summary.
    'kcpwatch_srtt_seconds_count': closed.filter((r) => r.acks_received > 0).length,
    'kcpwatch_srtt_seconds_sum': sum(closed.filter((r) => r.acks_received > 0), (r) => r.srtt_ms) / 1000,
    'kcpwatch_srtt_max_seconds': Math.max(0, ...closed.filter((r) => r.acks_received > 0).map((r) => r.srtt_ms)) / 1000,
  };
  // A refused first datagram is counted as a drop too (its trigger is on kcp:connection_failed).
  for (const trigger of triggers) {
    expected[`kcpwatch_datagrams_dropped_total{trigger=${trigger}}`] =
      sum(dropped.filter((r) => r.trigger === trigger), weight) + sum(failed.filter((r) => r.trigger === trigger), weight);
  }
  for (const reason of reasons) {
    expected[`kcpwatch_connections_failed_total{reason=${reason}}`] = sum(failed.filter((r) => r.reason === reason), weight);
  }
  return expected;
}

function actual(parsed, expected) {
  const out = {};
  for (const key of Object.keys(expected)) {
    const m = /^([^{]+)(?:\{(\w+)=(\w+)\})?$/.exec(key);
    out[key] = parsed.value(m[1], m[2] ? { [m[2]]: m[3] } : {});
  }
  return out;
}

/**
 * Records reach JavaScript through the log thread, after the counters moved: re-reads the
 * exposition until the records caught up with it (bounded), then returns both.
 */
async function settled(server, log, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = server.metrics();
    const parsed = parseExposition(text);
    const expected = expectedFromRecords(log.records);
    const got = actual(parsed, expected);
    if (JSON.stringify(got) === JSON.stringify(expected) || Date.now() > deadline) return { text, parsed, expected, got };
    const count = log.records.length;
    await log.waitFor(() => log.records.length > count, Math.max(1, deadline - Date.now()), 'more records').catch(() => undefined);
  }
}

function sendTo(socket, port, datagram) {
  return new Promise((resolve, reject) => socket.send(datagram, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
}

test('the exposition parses strictly and its counters equal the records of a secure-mode run', async (t) => {
  const log = new EventLog();
  let authRequests = 0;
  const server = kcpwatch.createServer(
    {
      log: { ...quiet, onEvent: log.push },
      authenticate: (token) => {
        authRequests += 1;
        return token.toString() === 'ok';
      },
    },
    (conn) => conn.on('message', (m) => conn.send(m)),
  );
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const serverConns = [];
  server.on('connection', (c) => serverConns.push(c));

  // Three clients with valid tokens, all live at once, each echoing a few messages.
  const clients = [0, 1, 2].map(() => kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: 'ok', log: false }));
  await Promise.all(clients.map((c) => c.ready()));
  const perClient = 5;
  for (const [i, c] of clients.entries()) {
    for (let m = 0; m < perClient; m++) {
      c.send(Buffer.alloc(10 + i * 100 + m, m));
      await next(c, 'message');
    }
  }
  // One intruder with a wrong token: auth_rejected.
  const intruder = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, token: 'wrong', log: false });
  await t.throwsAsync(intruder.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError });

  // Per connection: the server side's counters so far match what the client sent.
  const conn = serverConns.find((c) => c.remotePort === clients[1].localPort);
  const live = conn.stats();
  t.is(live.messagesIn, perClient);
  t.is(live.messagesOut, perClient);
  t.is(live.payloadBytesIn, sum([0, 1, 2, 3, 4], (m) => 110 + m));
  t.true(live.inSegs >= perClient && live.outSegs >= perClient && live.acksReceived >= 1, JSON.stringify(live));
  const clientSide = clients[1].stats();
  t.is(clientSide.messagesOut, perClient);
  t.is(clientSide.messagesIn, perClient);

  // Crafted datagrams from one socket, each a different trigger.
  const socket = await udpSocket();
  t.teardown(() => socket.close());
  const liveConv = clients[0].conv;
  const convs = new Set(clients.map((c) => c.conv));
  let unknownConv = 0x1234_5678;
  while (convs.has(unknownConv)) unknownConv += 1;
  const dataFor = (conv) => {
    const d = Buffer.alloc(13 + 24 + 8);
    d[0] = 0x10; // DATA
    d.writeUInt32LE(conv, 1);
    d.writeBigUInt64LE(99n, 5);
    return d; // an all-zero tag: never valid
  };
  const crafted = [
    ...Array(2).fill(Buffer.alloc(0)), // too_short (empty)
    ...Array(3).fill(Buffer.from([0x7f, 1, 2, 3])), // bad_cmd (unknown type)
    Buffer.from([0x10, 1, 2, 3, 4]), // too_short (session datagram)
    ...Array(4).fill(dataFor(unknownConv)), // unknown_connection
    ...Array(3).fill(dataFor(liveConv)), // decrypt_failed (a live session's tag does not verify)
  ];
  for (const d of crafted) await sendTo(socket, address.port, d);
  const isCrafted = (r) => r.name === 'kcp:packet_dropped' && r.src_port === socket.address().port;
  await log.waitForCount(isCrafted, crafted.length, 10_000, 'a record per crafted datagram');

  // Close every client; the server sees each close.
  for (const c of clients) c.close();
  await log.waitForCount((r) => r.name === 'kcp:connection_closed', clients.length, 15_000, 'three closes');
  t.is(conn.stats(), null, 'a closed connection has no live counters');

  const { text, parsed, expected, got } = await settled(server, log);
  t.deepEqual(got, expected, text);
  // The crafted datagrams are where they should be.
  const crafted_ = log.records.filter(isCrafted);
  t.deepEqual(
    Object.fromEntries(['too_short', 'bad_cmd', 'unknown_connection', 'decrypt_failed'].map((k) => [k, crafted_.filter((r) => r.trigger === k).length])),
    { too_short: 3, bad_cmd: 3, unknown_connection: 4, decrypt_failed: 3 },
  );
  t.true(parsed.value('kcpwatch_datagrams_dropped_total', { trigger: 'decrypt_failed' }) >= 3);
  t.is(parsed.value('kcpwatch_connections_failed_total', { reason: 'auth_rejected' }), 1);
  t.is(parsed.value('kcpwatch_handshake_auth_requests_total'), authRequests);
  t.is(authRequests, 4);
  t.is(parsed.value('kcpwatch_connections'), 0);
  t.is(parsed.value('kcpwatch_connections_max'), 3);
  t.is(parsed.value('kcpwatch_pending_auth'), 0);
  t.is(parsed.value('kcpwatch_messages_received_total'), clients.length * perClient);
  t.is(parsed.value('kcpwatch_events_lost_total', { stage: 'log' }), 0);
  t.is(parsed.value('kcpwatch_events_lost_total', { stage: 'js' }), 0);
  t.true(parsed.value('kcpwatch_events_produced_total') >= log.records.length);
  t.is(parsed.value('kcpwatch_panics_total'), 0);
  // Quantiles are ordered and bounded by the max.
  const q = ['0.5', '0.9', '0.99'].map((quantile) => parsed.value('kcpwatch_srtt_seconds', { quantile }));
  t.true(q[0] <= q[1] && q[1] <= q[2] && q[2] <= parsed.value('kcpwatch_srtt_max_seconds'), JSON.stringify(q));
  // Every sample carries the listener label; counters end in _total.
  for (const f of parsed.families.values()) {
    t.true(f.name.startsWith('kcpwatch_'), f.name);
    if (f.type === 'counter') t.true(f.name.endsWith('_total'), f.name);
    for (const s of f.samples) t.is(s.labels.listener, `127.0.0.1:${address.port}`);
  }
  // stats() carries the kcp-go names with the same values.
  const s = server.stats();
  t.is(s.inSegs, parsed.value('kcpwatch_segments_received_total'));
  t.is(s.retransSegs, parsed.value('kcpwatch_retransmitted_segments_total', { kind: 'timeout' }));
  t.is(s.currEstab, 0);
  t.is(s.maxConn, 3);
  t.is(s.inCsumErrors, s.droppedBadTag + s.droppedDecryptFailed);
  t.true(s.inCsumErrors >= 3, 'the forged session datagrams count as checksum errors');
  t.is(s.inPkts, s.datagramsIn);
  t.is(s.bytesReceived, parsed.value('kcpwatch_payload_received_bytes_total'));
  t.is(log.problems.length, 0);
});

test('raw mode: a refused first datagram counts as a drop and a failure, guard triggers as KCPInErrors, live connections in the sums', async (t) => {
  const log = new EventLog();
  const serverConns = [];
  const server = kcpwatch.createServer({ mode: 'raw', log: { ...quiet, onEvent: log.push } }, (conn) => {
    serverConns.push(conn);
    conn.on('message', (m) => conn.send(m));
  });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw', conv: 42, log: false });
  t.teardown(() => client.close());
  client.send('ping');
  await next(client, 'message');

  const socket = await udpSocket();
  t.teardown(() => socket.close());
  const crafted = [
    ...Array(3).fill(Buffer.alloc(10)), // too_short: names no conversation
    ...Array(2).fill(segment({ conv: 7, cmd: 99 })), // bad_cmd: a malformed first datagram
    ...Array(2).fill(segment({ conv: 8, cmd: CMD_ACK })), // unknown_connection: an ACK opens nothing
  ];
  for (const d of crafted) await sendTo(socket, address.port, d);
  const fromSocket = (r) => (r.name === 'kcp:packet_dropped' || r.name === 'kcp:connection_failed') && r.src_port === socket.address().port;
  await log.waitForCount(fromSocket, crafted.length, 10_000, 'a record per crafted datagram');

  // The live connection is in the sums already (read at scrape time).
  const s = server.stats();
  t.is(s.kcpInErrors, 5);
  t.is(s.currEstab, 1);
  t.is(s.sessionsCounted, 1);
  t.is(s.messagesIn, 1);
  t.is(parseExposition(server.metrics()).value('kcpwatch_messages_received_total'), 1);

  // The server ends it (raw mode has no close on the wire), then every counter has a record.
  serverConns[0].close();
  await log.waitFor((r) => r.name === 'kcp:connection_closed');
  const { text, parsed, expected, got } = await settled(server, log);
  t.deepEqual(got, expected, text);
  t.is(parsed.value('kcpwatch_datagrams_dropped_total', { trigger: 'too_short' }), 3);
  t.is(parsed.value('kcpwatch_datagrams_dropped_total', { trigger: 'bad_cmd' }), 2);
  t.is(parsed.value('kcpwatch_datagrams_dropped_total', { trigger: 'unknown_connection' }), 2);
  // Too short to name a conversation: a plain drop; a bad command opening one: a failed attempt.
  t.is(parsed.value('kcpwatch_connections_failed_total', { reason: 'malformed' }), 2);
  t.is(parsed.value('kcpwatch_connections'), 0);
  t.is(parsed.value('kcpwatch_messages_received_total'), 1);
});

test('renderMetrics: HELP and TYPE per family, escaped label values, and nothing but finite numbers', (t) => {
  // Any stats object: every field 0 except a few.
  const stats = new Proxy({ datagramsIn: 7, droppedBadTag: 2, srttP50Ms: 12, srttCount: 1, srttSumMs: 12, srttMaxMs: 12 }, {
    get: (o, k) => (k in o ? o[k] : 0),
  });
  const text = kcpwatch.renderMetrics(stats, { listener: '[::1]:4000', shard: 'a"b\\c\nd' });
  const parsed = parseExposition(text);
  t.is(parsed.value('kcpwatch_datagrams_received_total', { shard: 'a"b\\c\nd' }), 7);
  t.is(parsed.value('kcpwatch_datagrams_dropped_total', { shard: 'a"b\\c\nd', trigger: 'bad_tag' }), 2);
  t.is(parsed.value('kcpwatch_srtt_seconds', { shard: 'a"b\\c\nd', quantile: '0.5' }), 0.012);
  t.regex(text, /^kcpwatch_datagrams_received_total\{listener="\[::1\]:4000",shard="a\\"b\\\\c\\nd"\} 7$/m);
  for (const f of parsed.families.values()) t.truthy(f.help && f.type, f.name);
  t.throws(() => kcpwatch.renderMetrics(stats, { 'bad-name': 'x' }), { instanceOf: TypeError });
  // The parser itself refuses what the format forbids.
  t.throws(() => parseExposition('x_total 1\n'), { message: /before its TYPE/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx{a="1",} 1\n'), { message: /trailing comma/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx{a="\\q"} 1\n'), { message: /bad labels/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx 1\nx 2\n'), { message: /duplicate/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a="b"} 1\n'), { message: /contiguous/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx one\n'), { message: /bad value/ });
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx 1'), { message: /newline/ });
});

test('metrics() before listen is a KcpClosedError; after close it is the totals the server ended with, like stats()', async (t) => {
  const server = kcpwatch.createServer({ mode: 'raw', log: false }, (conn) => conn.on('message', (m) => conn.send(m)));
  t.throws(() => server.metrics(), { instanceOf: kcpwatch.KcpClosedError });
  t.throws(() => server.stats(), { instanceOf: kcpwatch.KcpClosedError });
  const address = await server.listen(0, '127.0.0.1');
  t.regex(server.metrics(), /^# HELP kcpwatch_/);
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, mode: 'raw', log: false });
  t.teardown(() => client.close());
  client.send('x');
  await next(client, 'message');
  await server.close();
  const final = parseExposition(server.metrics());
  t.is(final.value('kcpwatch_connections'), 0);
  t.is(final.value('kcpwatch_connections_opened_total', { direction: 'passive' }), 1);
  t.is(final.value('kcpwatch_connections_closed_total'), 1);
  t.is(server.stats().closed, 1);
});
