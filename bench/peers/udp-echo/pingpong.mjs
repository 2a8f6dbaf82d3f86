// The Node side of the round-trip floor (`npm run bench -- --only floor`): one message in flight
// over one connection, the loop of `udp-echo client --conns 1 --window 1`, on Node's dgram or on
// kcpwatch's own client (raw mode, `game` preset, as bench/node-load.mjs), so the two Node rows
// differ only in the stack under the same loop.
//
//   node pingpong.mjs --stack dgram|kcpwatch --addr HOST:PORT [--size 64] [--count 20000]
//        [--warmup 1000] [--duration-ms 20000] [--timeout-ms 1000]
//
// `--warmup` round trips unmeasured, then `--count` measured, cut short at `--duration-ms`
// (the time bound); an echo missing for `--timeout-ms` fails the run. Each message carries its
// sequence number (bytes 0..8, big endian) and a byte pattern, and every echo is checked byte
// for byte. The round trip runs from send() to the echo's 'message'. Prints the drivers' JSON
// line ({"ok":true,"messages":..,"elapsed_ms":..,"msgs_per_sec":..,"p50_us":..,"p99_us":..,
// "max_us":..}), or {"ok":false,"error":..} and exit 1; a bad command line exits 2.
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { connectSocket, fillPayload, Latencies, nowMs, usageError } from '../common.mjs';

const program = 'pingpong';
let values;
try {
  ({ values } = parseArgs({
    options: {
      stack: { type: 'string' },
      addr: { type: 'string' },
      size: { type: 'string', default: '64' },
      count: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '1000' },
      'duration-ms': { type: 'string', default: '20000' },
      'timeout-ms': { type: 'string', default: '1000' },
    },
  }));
} catch (err) {
  usageError(program, err.message);
}
const int = (name, min, max) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min || v > max) usageError(program, `--${name} must be an integer in ${min}..${max}, got ${values[name]}`);
  return v;
};
const stack = values.stack;
if (stack !== 'dgram' && stack !== 'kcpwatch') usageError(program, `--stack must be dgram or kcpwatch, got ${stack}`);
const addr = /^(.*):(\d+)$/.exec(values.addr ?? '');
if (!addr) usageError(program, `--addr must be HOST:PORT, got ${values.addr}`);
const host = addr[1].replace(/^\[(.*)\]$/, '$1');
const port = Number(addr[2]);
if (port < 1 || port > 65535) usageError(program, `--addr port out of range: ${port}`);
const size = int('size', 8, 65507);
const count = int('count', 1, 10_000_000);
const warmup = int('warmup', 0, 1_000_000);
const durationMs = int('duration-ms', 1, 600_000);
const timeoutMs = int('timeout-ms', 1, 600_000);

let finished = false;
let close = async () => {};
function finish(result, code) {
  if (finished) return;
  finished = true;
  clearInterval(watchdog);
  close().finally(() => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code)));
}
const fail = (error) => finish({ ok: false, error }, 1);

// One payload, rewritten only after its echo came back (so never while still queued).
const payload = fillPayload(Buffer.alloc(size), 0, 0);
const latencies = new Latencies();
const deadline = nowMs() + durationMs;
let seq = 0;
let sentAt = 0;
let start = 0;
let last = 0;
let progress = nowMs();
let send;

function next() {
  const now = nowMs();
  if (seq === warmup) start = last = now;
  if (seq >= warmup + count || now >= deadline) {
    if (latencies.count === 0) return fail(`no measured round trip within ${durationMs} ms (${seq} warm-up round trips)`);
    return finish(latencies.summary(last - start), 0);
  }
  payload.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
  payload.writeUInt32BE(seq >>> 0, 4);
  sentAt = nowMs();
  send(payload);
}

function onEcho(msg) {
  const now = nowMs();
  if (finished) return;
  if (!msg.equals(payload)) return fail(`message ${seq}: the echo differs (${msg.length} bytes back, ${size} sent)`);
  if (seq >= warmup) {
    latencies.push((now - sentAt) * 1000);
    last = now;
  }
  progress = now;
  seq++;
  next();
}

// A lost datagram or a dead server must end the run, not hang it.
const watchdog = setInterval(() => {
  if (nowMs() - progress > timeoutMs) fail(`no echo of message ${seq} within ${timeoutMs} ms`);
}, Math.min(100, timeoutMs));

try {
  if (stack === 'dgram') {
    const socket = dgram.createSocket('udp4');
    socket.on('message', onEcho);
    socket.on('error', (err) => fail(`socket: ${err.message}`));
    await connectSocket(socket, host, port);
    close = () => new Promise((done) => socket.close(done));
    send = (m) => socket.send(m);
  } else {
    const { createClient } = createRequire(import.meta.url)('../../../index.js');
    const client = createClient({ host, port, mode: 'raw', preset: 'game', maxConnections: 1, log: false });
    const conn = client.connect();
    const onClose = (reason) => fail(`closed (${reason}) during the run`);
    conn.on('message', onEcho);
    conn.on('close', onClose);
    conn.on('error', (err) => fail(`${err.code ?? ''} ${err.message}`));
    close = () => (conn.off('close', onClose), client.close());
    send = (m) => conn.send(m);
  }
  progress = nowMs();
  next();
} catch (err) {
  fail(`connect ${values.addr}: ${err.message}`);
}
