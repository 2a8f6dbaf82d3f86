// node-kcp load driver: N KCP sessions (the C ikcp library through npm node-kcp), each with its
// own connected dgram socket and a random conv, as kcp-go's bench-client dials them: kcp-go's
// server keys a session by the remote address alone (kcpwatch's and server.mjs by address and
// conv), so sessions that shared one socket and differed only by conv would collide there; and
// a real game client has a socket of its own.
//
//   node load.mjs --addr HOST:PORT --conns N --size B --duration-ms T --window W
//                 [--rate R] [--drain-ms D]
//
// Closed loop: W messages in flight per session, the next sent when an echo comes back, until
// T ms have passed; then up to D ms (default 5000) for the outstanding echoes. With --rate R,
// each session sends R messages/s on a schedule (staggered across sessions) and W caps the
// messages in flight (a tick that finds the window full is sent as soon as an echo frees a
// slot). Each message carries its sequence number and the connection's byte pattern (the Go
// driver's payload); each echo must be the next one expected, byte for byte. Latency is from
// the application's send to its receipt of the echo.
//
// Prints one JSON line with the fields of `kcpgo bench-client`:
//   {"ok":true,"messages":..,"elapsed_ms":..,"msgs_per_sec":..,"p50_us":..,"p99_us":..,"max_us":..}
// A missing or wrong echo gives {"ok":false,"error":...} and exit 1 (as the Go driver); no
// working node-kcp gives {"ok":false,"unavailable":...} and exit 1.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { checkPayload, emit, fillPayload, Latencies, connectSocket, nowMs, pace, parseLoadArgs, payloadTemplate } from '../common.mjs';
import { configure, FlushQueue, kcpNow, loadNodeKcp, MSS, Timer } from './kcp.mjs';

const opts = parseLoadArgs('node-kcp load', process.argv.slice(2), { maxSize: MSS });
const { KCP, unavailable } = loadNodeKcp();
if (unavailable) {
  emit({ ok: false, unavailable });
  process.exit(1);
}

const { host, port, conns: nConns, size, window, rate, durationMs, drainMs } = opts;
const latencies = new Latencies();
const timer = new Timer((c) => !c.closed);
const flushes = new FlushQueue();
const conns = [];
let startAt = 0;
let stopAt = Infinity;
let running = false;
let remaining = nConns;
let finished = false;

function finish(result, code) {
  if (finished) return;
  finished = true;
  timer.stop();
  for (const c of conns) {
    c.closed = true;
    if (c.paceHandle) clearTimeout(c.paceHandle);
    c.kcp.release();
    c.sock.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

const fail = (error) => finish({ ok: false, error }, 1);

function sendOne(c, now) {
  const seq = c.nextSeq++;
  fillPayload(c.buf, c.id, seq); // ikcp_send copies it
  const r = c.kcp.send(c.buf);
  if (r < 0) return fail(`conn ${c.id}: ikcp_send returned ${r}`);
  c.sentAt[c.tail] = now;
  c.tail = (c.tail + 1) % c.sentAt.length;
  c.outstanding++;
  flushes.mark(c);
}

function maybeDone(c, now) {
  if (!c.done && c.outstanding === 0 && now >= stopAt) {
    c.done = true;
    if (--remaining === 0) finish(latencies.summary(now - startAt), 0);
  }
}

function onEcho(c, m) {
  const now = nowMs();
  const seq = checkPayload(m, c.template);
  if (typeof seq !== 'number' || seq !== c.expectSeq) {
    const what = typeof seq === 'number' ? `got message ${seq}` : seq;
    return fail(`conn ${c.id}: message ${c.expectSeq}: ${what}`);
  }
  c.expectSeq++;
  latencies.push((now - c.sentAt[c.head]) * 1000);
  c.head = (c.head + 1) % c.sentAt.length;
  c.outstanding--;
  if (now < stopAt) {
    if (!rate) sendOne(c, now);
    else if (c.backlog > 0) c.backlog--, sendOne(c, now);
  }
  maybeDone(c, now);
}

async function open(id) {
  const sock = dgram.createSocket('udp4');
  const conv = randomBytes(4).readUInt32LE(0) || 1;
  const c = { id, sock, kcp: new KCP(conv, { id }), template: payloadTemplate(id, size), buf: Buffer.alloc(size), sentAt: new Float64Array(window + 1), head: 0, tail: 0, nextSeq: 0, expectSeq: 0, outstanding: 0, backlog: 0, closed: false, done: false, paceHandle: undefined, nextAt: 0 };
  configure(c.kcp);
  c.kcp.output((buf, len) => {
    if (!c.closed) sock.send(buf, 0, len);
  });
  sock.on('message', (msg) => {
    if (c.closed) return;
    c.kcp.input(msg);
    // Message mode: one recv() is one message. (After a release() the addon would crash on
    // recv(), so `closed` is checked before each call.)
    while (running && !c.closed) {
      const m = c.kcp.recv();
      if (m === undefined) break;
      onEcho(c, m);
    }
    if (!c.closed) flushes.mark(c);
  });
  sock.on('error', (err) => fail(`conn ${id}: socket: ${err.message}`));
  await connectSocket(sock, host, port);
  conns.push(c);
  return c;
}

try {
  for (let i = 0; i < nConns; i++) await open(i);
} catch (err) {
  fail(`dial ${opts.addr} (session ${conns.length}): ${err.message}`);
}

if (!finished) {
  running = true;
  startAt = nowMs();
  stopAt = startAt + durationMs;
  const k = kcpNow();
  for (const c of conns) timer.add(c, k);
  if (rate) for (const c of conns) pace(c, { rate, window, startAt, stopAt, conns: nConns, inFlight: (c) => c.outstanding, sendOne, onStop: maybeDone });
  else for (const c of conns) for (let w = 0; w < window; w++) sendOne(c, startAt);
  // At the end of the run: sessions with nothing outstanding are done; the others get drainMs.
  setTimeout(() => {
    const now = Math.max(nowMs(), stopAt);
    for (const c of conns) maybeDone(c, now);
  }, durationMs + 1);
  setTimeout(() => {
    const c = conns.find((x) => !x.done);
    if (c) fail(`conn ${c.id}: no echo for message ${c.expectSeq} within ${drainMs} ms after the run`);
  }, durationMs + drainMs);
}
