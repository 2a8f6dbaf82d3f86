// Plain UDP load driver with Node's dgram: N connected sockets, one message per datagram, no
// reliability layer.
//
//   node load.mjs --addr HOST:PORT --conns N --size B --duration-ms T --window W
//                 [--rate R] [--drain-ms D] [--loss-ms L]
//
// The same loop as the node-kcp driver (closed loop with W datagrams in flight per socket, or
// R datagrams/s per socket with W in flight at most), the same payload (sequence number and the
// connection's byte pattern, checked byte for byte) and latency from send to echo. Datagrams
// can be lost: one without an echo after L ms (default 1000) is counted lost and its window
// slot is reused; after the run, those still without an echo after D ms (default 5000) are
// lost too. An echo that comes after its datagram was counted lost is counted `late` (and stays
// lost); echoes may come in any order.
//
// Prints one JSON line, the fields of `kcpgo bench-client` plus `lost` and `late`:
//   {"ok":true,"messages":..,"elapsed_ms":..,"msgs_per_sec":..,"p50_us":..,"p99_us":..,"max_us":..,"lost":..,"late":..}
// A corrupt echo gives {"ok":false,"error":...} and exit 1.
import dgram from 'node:dgram';
import { checkPayload, emit, fillPayload, Latencies, connectSocket, nowMs, pace, parseLoadArgs, payloadTemplate } from '../common.mjs';

const opts = parseLoadArgs('udp load', process.argv.slice(2), { extra: { 'loss-ms': 1000 } });
const { host, port, conns: nConns, size, window, rate, durationMs, drainMs } = opts;
const lossMs = opts['loss-ms'];
if (!(lossMs > 0)) {
  process.stderr.write('udp load: --loss-ms must be positive\n');
  process.exit(2);
}

const latencies = new Latencies();
const conns = [];
let startAt = 0;
let stopAt = Infinity;
let running = false;
let remaining = nConns;
let finished = false;
let lost = 0;
let late = 0;

function finish(result, code) {
  if (finished) return;
  finished = true;
  for (const c of conns) {
    c.closed = true;
    if (c.paceHandle) clearTimeout(c.paceHandle);
    c.sock.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

const fail = (error) => finish({ ok: false, error }, 1);

function sendOne(c, now) {
  const seq = c.nextSeq++;
  const buf = fillPayload(Buffer.allocUnsafe(size), c.id, seq); // dgram holds it until sent
  c.pending.set(seq, now);
  c.sock.send(buf);
}

function maybeDone(c, now) {
  if (!c.done && c.pending.size === 0 && now >= stopAt) {
    c.done = true;
    if (--remaining === 0) finish({ ...latencies.summary(now - startAt), lost, late }, 0);
  }
}

// A freed window slot (an echo, or a datagram given up as lost): send the next one, in the
// closed loop at once, with --rate only if a tick found the window full.
function refill(c, now) {
  if (now >= stopAt) return;
  if (!rate) sendOne(c, now);
  else if (c.backlog > 0) c.backlog--, sendOne(c, now);
}

function onEcho(c, msg) {
  const now = nowMs();
  const seq = checkPayload(msg, c.template);
  if (typeof seq !== 'number') return fail(`conn ${c.id}: corrupt echo: ${seq}`);
  const sentAt = c.pending.get(seq);
  if (sentAt === undefined) {
    if (seq < c.nextSeq && c.lostSeqs.delete(seq)) late++;
    else return fail(`conn ${c.id}: echo of message ${seq}, which was never sent or came back twice`);
    return;
  }
  c.pending.delete(seq);
  latencies.push((now - sentAt) * 1000);
  refill(c, now);
  maybeDone(c, now);
}

// Every 50 ms: datagrams without an echo for lossMs are lost (pending is in send order).
function sweep() {
  if (finished) return;
  const now = nowMs();
  for (const c of conns) {
    if (c.done) continue;
    for (const [seq, sentAt] of c.pending) {
      if (now - sentAt < lossMs) break;
      c.pending.delete(seq);
      c.lostSeqs.add(seq);
      lost++;
      refill(c, now);
    }
    maybeDone(c, now);
  }
  setTimeout(sweep, 50);
}

async function open(id) {
  const sock = dgram.createSocket('udp4');
  const c = { id, sock, template: payloadTemplate(id, size), pending: new Map(), lostSeqs: new Set(), nextSeq: 0, backlog: 0, closed: false, done: false, paceHandle: undefined, nextAt: 0 };
  sock.on('message', (msg) => {
    if (running && !c.closed) onEcho(c, msg);
  });
  sock.on('error', (err) => fail(`conn ${id}: socket: ${err.message}`));
  await connectSocket(sock, host, port);
  conns.push(c);
}

try {
  for (let i = 0; i < nConns; i++) await open(i);
} catch (err) {
  emit({ ok: false, error: `connect ${opts.addr} (socket ${conns.length}): ${err.message}` });
  process.exit(1);
}

running = true;
startAt = nowMs();
stopAt = startAt + durationMs;
if (rate) for (const c of conns) pace(c, { rate, window, startAt, stopAt, conns: nConns, inFlight: (c) => c.pending.size, sendOne, onStop: maybeDone });
else for (const c of conns) for (let w = 0; w < window; w++) sendOne(c, startAt);
setTimeout(sweep, 50);
setTimeout(() => {
  const now = Math.max(nowMs(), stopAt);
  for (const c of conns) maybeDone(c, now);
}, durationMs + 1);
// After the drain, whatever is still outstanding is lost.
setTimeout(() => {
  for (const c of conns) {
    lost += c.pending.size;
    c.pending.clear();
  }
  const now = nowMs();
  for (const c of conns) maybeDone(c, now);
}, durationMs + drainMs);
