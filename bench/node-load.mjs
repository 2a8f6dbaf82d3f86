// A load driver in Node.js on kcpwatch's own client: the counterpart of the kcp-go driver
// (`interop/kcp-go/bin/kcpgo bench-client`, interop/kcp-go/bench.go), with the same arguments
// and the same JSON line, so one server can be measured under either in the same sitting.
//
//   node bench/node-load.mjs --addr HOST:PORT --conns N --size B --duration-ms T --window W
//        [--rate R] [--mode raw|secure] [--server-key KEY] [--token X] [--drain-ms D] [--clients K]
//        [--fec D,P]
//
// N connections spread round-robin over K client endpoints (`createClient`, default 1: one UDP
// socket and one native I/O thread each). Every connection keeps up to W messages of B bytes
// outstanding: a closed loop by default (each echo sends the next), or paced at R messages per
// second per connection (still at most W outstanding). Each message carries its sequence
// number (big endian, first 8 bytes) and a per-connection pattern, and is checked byte for
// byte on its echo; the latency is from send() to the echo's 'message'. Sending stops after T
// ms; the outstanding echoes then have D ms (default 5000) to arrive. Prints one JSON line,
//   {"ok":true,"messages":..,"elapsed_ms":..,"msgs_per_sec":..,"p50_us":..,"p99_us":..,"max_us":..}
// or {"ok":false,"error":"..."} with exit code 1; a bad command line exits 2. `--mode` defaults
// to raw (what the kcp-go driver speaks); in secure mode every handshake completes before the
// clock starts, as the kcp-go driver dials every session first. Secure mode needs
// `--server-key`: the server's public key (base64 or hex, as `server.publicKey` or
// `kcpwatch keygen` prints it), which every connection pins. `--fec D,P` turns on Reed-Solomon
// FEC with D data and P parity shards (docs/fec.md: kcp-go's in raw mode, FEC_PARITY in secure).
//
// The hot path allocates nothing of its own: per connection, W preallocated payloads (a slot is
// rewritten only after its echo came back, so a message still queued is never changed) and
// W send times; the 'message' listener is one bound function per connection.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { createClient } = require('../index.js');

// --- command line ---------------------------------------------------------------------------

function usage(message) {
  process.stderr.write(`node-load: ${message}\n`);
  process.exit(2);
}

const known = new Set(['addr', 'conns', 'size', 'duration-ms', 'window', 'rate', 'mode', 'server-key', 'token', 'drain-ms', 'clients', 'fec']);
const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const flag = process.argv[i];
  const name = flag.replace(/^--?/, '');
  if (!flag.startsWith('-') || !known.has(name)) usage(`unknown argument ${flag}`);
  if (i + 1 >= process.argv.length) usage(`${flag} needs a value`);
  args[name] = process.argv[i + 1];
}

function int(name, fallback, min, max) {
  const text = args[name];
  if (text === undefined) {
    if (fallback === undefined) usage(`--${name} is required`);
    return fallback;
  }
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) usage(`--${name} must be an integer in ${min}..${max}, got ${text}`);
  return value;
}

const addr = args.addr ?? usage('--addr HOST:PORT is required');
const colon = addr.lastIndexOf(':');
if (colon < 0) usage(`--addr must be HOST:PORT, got ${addr}`);
const host = addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
const port = Number(addr.slice(colon + 1));
if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`bad port in --addr ${addr}`);
const conns = int('conns', 100, 1, 100_000);
const size = int('size', 64, 8, 65536);
const durationMs = int('duration-ms', 5000, 1, 600_000);
const window = int('window', 1, 1, 65536);
const drainMs = int('drain-ms', 5000, 1, 600_000);
const clientCount = int('clients', 1, 1, 1000);
const rate = args.rate === undefined ? 0 : Number(args.rate);
if (!(rate >= 0 && rate <= 1_000_000)) usage(`--rate must be a number of messages per second per connection, got ${args.rate}`);
const mode = args.mode ?? 'raw';
if (mode !== 'raw' && mode !== 'secure') usage(`--mode must be raw or secure, got ${mode}`);
const token = args.token;
if (token !== undefined && mode !== 'secure') usage('--token needs --mode secure');
const serverKey = args['server-key'];
if (serverKey !== undefined && mode !== 'secure') usage('--server-key needs --mode secure');
if (serverKey === undefined && mode === 'secure') usage('--mode secure needs --server-key: the server\'s public key');
if (clientCount > conns) usage('--clients must not exceed --conns');
let fec;
if (args.fec !== undefined) {
  const [dataShards, parityShards] = args.fec.split(',').map(Number);
  if (!Number.isInteger(dataShards) || !Number.isInteger(parityShards)) usage(`--fec must be D,P (data and parity shards), got ${args.fec}`);
  fec = { dataShards, parityShards };
}

// --- the run ----------------------------------------------------------------------------------

let clients = [];
let finished = false;

function fail(message) {
  if (finished) return;
  finished = true;
  process.stdout.write(`${JSON.stringify({ ok: false, error: message })}\n`);
  // The endpoints die with the process (the addon's cleanup hook joins their threads).
  process.exit(1);
}

// Round-trip times in µs, one per echo, kept whole so the percentiles are exact (as kcp-go's).
let latencies = new Float64Array(1 << 20);
let count = 0;

let start = 0;
let stopAt = Infinity;
let sending = false;
let outstanding = 0;

const interval = rate > 0 ? 1000 / rate : 0;

class Load {
  constructor(id, conn) {
    this.id = id;
    this.conn = conn;
    this.slots = [];
    for (let s = 0; s < window; s++) {
      const m = Buffer.allocUnsafe(size);
      for (let k = 0; k < size; k++) m[k] = (id + k) & 0xff;
      this.slots.push(m);
    }
    this.sentAt = new Float64Array(window);
    this.nextSeq = 0;
    this.nextEcho = 0;
    // Paced mode: when the next message is due, and the wheel slot it waits in (-1: none).
    this.due = 0;
    this.wheelAt = -1;
    this.onMessage = this.echo.bind(this);
    this.onClose = this.closed.bind(this);
    this.onError = this.error.bind(this);
  }

  send(now) {
    const seq = this.nextSeq++;
    const m = this.slots[seq % window];
    m.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
    m.writeUInt32BE(seq >>> 0, 4);
    this.sentAt[seq % window] = now;
    outstanding++;
    this.conn.send(m);
  }

  echo(data) {
    const now = performance.now();
    const seq = this.nextEcho;
    if (seq === this.nextSeq) return fail(`conn ${this.id}: an echo with nothing outstanding (${data.length} bytes)`);
    const slot = seq % window;
    if (!data.equals(this.slots[slot])) return fail(`conn ${this.id}: ${mismatch(data, this.slots[slot], seq)}`);
    this.nextEcho = seq + 1;
    outstanding--;
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[count++] = (now - this.sentAt[slot]) * 1000;
    if (sending) {
      if (now >= stopAt) sending = false;
      else if (interval === 0) this.send(now);
      else if (this.due <= now) this.pace(now);
    }
    if (!sending && outstanding === 0) finish();
  }

  /**
   * Paced mode: sends what is due, within the window. Then the connection waits either for
   * time (in the wheel) or, with its window full, for an echo (which calls this again).
   */
  pace(now) {
    while (this.due <= now && this.nextSeq - this.nextEcho < window) {
      this.send(now);
      this.due += interval;
    }
    // Far behind (a stalled loop): no burst to catch up.
    if (this.due < now - 1000) this.due = now;
    if (this.due > now) wait(this);
  }

  closed(reason) {
    fail(`conn ${this.id}: closed (${reason}) during the run`);
  }

  error(err) {
    fail(`conn ${this.id}: ${err.code ?? ''} ${err.message}`);
  }
}

function mismatch(got, want, seq) {
  if (got.length !== want.length) return `message ${seq}: echo of ${got.length} bytes, sent ${want.length}`;
  const gotSeq = got.readUInt32BE(0) * 0x1_0000_0000 + got.readUInt32BE(4);
  if (gotSeq !== seq) return `message ${seq}: echo carries sequence number ${gotSeq}`;
  for (let k = 8; k < got.length; k++) if (got[k] !== want[k]) return `message ${seq}: byte ${k} is ${got[k]}, sent ${want[k]}`;
  return `message ${seq}: differs`;
}

let loads = [];
let drainTimer;
let paceTimer;

async function finish() {
  if (finished) return;
  finished = true;
  const elapsed = performance.now() - start;
  clearTimeout(drainTimer);
  clearTimeout(paceTimer);
  for (const load of loads) {
    load.conn.off('close', load.onClose);
    load.conn.off('error', load.onError);
  }
  await Promise.all(clients.map((c) => c.close()));
  const sorted = latencies.subarray(0, count).sort();
  const at = (p) => (count === 0 ? 0 : Math.floor(sorted[Math.max(0, Math.ceil(p * count) - 1)]));
  const result = {
    ok: true,
    messages: count,
    elapsed_ms: Math.floor(elapsed),
    msgs_per_sec: Math.round((count / (elapsed / 1000)) * 10) / 10,
    p50_us: at(0.5),
    p99_us: at(0.99),
    max_us: count === 0 ? 0 : Math.floor(sorted[count - 1]),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

// Paced mode: a timing wheel of 1 ms slots, so a tick touches only the connections due in it
// (not all of them: 10,000 connections scanned every millisecond cost a sixth of a core). A
// connection waits at most one interval ahead (plus the event loop's lag), which the wheel
// spans; one that lands a whole turn ahead stays in its slot for the next turn.
const wheel = Array.from({ length: interval === 0 ? 0 : Math.ceil(interval) + 1024 }, () => []);
let wheelDone = 0; // every slot up to this time (ms) has been run

function wait(load) {
  // The first whole millisecond at or after the due time, in a slot not yet run. The latest
  // entry wins: an older one (left behind when an echo sent first) is skipped.
  const at = Math.max(Math.ceil(load.due), wheelDone + 1);
  load.wheelAt = at;
  wheel[at % wheel.length].push(load);
}

function paceAll() {
  if (!sending) return;
  const now = performance.now();
  if (now >= stopAt) {
    sending = false;
    if (outstanding === 0) finish();
    return;
  }
  const upTo = Math.floor(now);
  const size = wheel.length;
  for (let at = Math.max(wheelDone + 1, upTo - size + 1); at <= upTo; at++) {
    const slot = wheel[at % size];
    const keep = [];
    wheel[at % size] = keep;
    for (const load of slot) {
      const due = load.wheelAt;
      if (due < 0 || due % size !== at % size) continue; // superseded
      if (due > at) keep.push(load); // a later turn of the wheel
      else {
        load.wheelAt = -1;
        load.pace(now);
      }
    }
  }
  wheelDone = upTo;
  paceTimer = setTimeout(paceAll, 1);
}

try {
  const perClient = Math.ceil(conns / clientCount);
  clients = Array.from({ length: clientCount }, () =>
    createClient({ host, port, mode, ...(serverKey === undefined ? {} : { serverKey }), preset: 'game', maxConnections: perClient, log: false, ...(fec ? { fec } : {}) }),
  );
  loads = Array.from({ length: conns }, (_, i) => new Load(i, clients[i % clientCount].connect(token === undefined ? {} : { token })));
} catch (err) {
  fail(`connect: ${err.code ?? ''} ${err.message}`);
}
for (const load of loads) {
  load.conn.on('close', load.onClose);
  load.conn.on('error', load.onError);
}
if (mode === 'secure') {
  try {
    await Promise.all(loads.map((l) => l.conn.ready()));
  } catch (err) {
    fail(`handshake: ${err.code ?? ''} ${err.message}`);
  }
}
for (const load of loads) load.conn.on('message', load.onMessage);

// Same progress line as the Go driver: an orchestrator measures the load from here.
process.stderr.write(`LOAD ${conns}\n`);
start = performance.now();
stopAt = start + durationMs;
sending = true;
if (interval === 0) {
  for (const load of loads) for (let w = 0; w < window; w++) load.send(start);
} else {
  // Each connection starts at its own phase of the interval, so the sends are spread.
  wheelDone = Math.floor(start) - 1;
  loads.forEach((load, i) => {
    load.due = start + (interval * i) / conns;
    wait(load);
  });
  paceAll();
}
setTimeout(() => {
  sending = false;
  if (outstanding === 0) finish();
}, durationMs).unref();
drainTimer = setTimeout(() => {
  const late = loads.find((l) => l.nextEcho !== l.nextSeq);
  fail(late ? `conn ${late.id}: no echo for message ${late.nextEcho} within ${drainMs} ms after the run` : 'the run did not end');
}, durationMs + drainMs);
