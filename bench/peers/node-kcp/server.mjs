// node-kcp echo server: the C ikcp library (npm node-kcp, a NAN addon) over one Node dgram
// socket on 127.0.0.1. Same contract as bench/echo-server.mjs: `--port P` (default 0), the
// port on the first stdout line, stop on stdin EOF with one JSON line (event-loop delay and
// counters). Without a working node-kcp it prints {"ok":false,"unavailable":...} (stdout and
// stderr) and exits 1.
//
// A session is keyed by remote address, port and conv (bytes 0..3 of a KCP segment, little
// endian), created by the first well-formed segment, driven by one timer at the moment
// ikcp_check asks for (kcp.mjs), flushed once per event-loop iteration after input, and
// dropped after --idle-ms (default 10000, as kcp-go's server) without a datagram.
import dgram from 'node:dgram';
import { emit, serve } from '../common.mjs';
import { configure, FlushQueue, kcpNow, loadNodeKcp, Timer } from './kcp.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));
const idleMs = Number(arg('idle-ms', '10000'));

const { KCP, unavailable } = loadNodeKcp();
if (unavailable) {
  emit({ ok: false, unavailable });
  process.stderr.write(`node-kcp server: unavailable: ${unavailable}\n`);
  process.exit(1);
}

const IKCP_OVERHEAD = 24;
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
const sessions = new Map();
const stats = { sessions_opened: 0, sessions_idle_closed: 0, datagrams_in: 0, datagrams_out: 0, messages: 0, bad_datagrams: 0 };

// node-kcp calls output(buffer, length, context) synchronously from ikcp_flush with a fresh
// copy of the datagram.
const output = (buf, len, ctx) => {
  stats.datagrams_out++;
  socket.send(buf, 0, len, ctx.port, ctx.address);
};

const close = (s) => {
  s.closed = true;
  sessions.delete(s.key);
  s.kcp.release();
};

const timer = new Timer((s, now) => {
  if (s.closed) return false;
  if (now - s.lastInput > idleMs) {
    stats.sessions_idle_closed++;
    close(s);
    return false;
  }
  return true;
});
const flushes = new FlushQueue();

socket.on('message', (msg, rinfo) => {
  stats.datagrams_in++;
  if (msg.length < IKCP_OVERHEAD) {
    stats.bad_datagrams++;
    return;
  }
  const conv = msg.readUInt32LE(0);
  const key = `${rinfo.address}:${rinfo.port}:${conv}`;
  let s = sessions.get(key);
  const now = kcpNow();
  if (s === undefined) {
    const cmd = msg[4];
    if (cmd < 81 || cmd > 84) {
      stats.bad_datagrams++;
      return;
    }
    const kcp = new KCP(conv, { address: rinfo.address, port: rinfo.port });
    configure(kcp);
    kcp.output(output);
    s = { key, kcp, lastInput: now, closed: false };
    sessions.set(key, s);
    stats.sessions_opened++;
    timer.add(s, now);
  }
  s.lastInput = now;
  if (s.kcp.input(msg) < 0) stats.bad_datagrams++;
  // Message mode: one recv() is one message. Echo each back.
  for (let m = s.kcp.recv(); m !== undefined; m = s.kcp.recv()) {
    stats.messages++;
    s.kcp.send(m);
  }
  flushes.mark(s);
});

socket.on('error', (err) => {
  process.stderr.write(`node-kcp server: ${err.stack}\n`);
  process.exit(1);
});

socket.bind(port, host, () => {
  serve(socket.address().port, () => {
    timer.stop();
    socket.close();
    const open = sessions.size;
    for (const s of [...sessions.values()]) close(s);
    return { sessions_open_at_stop: open, ...stats };
  });
});
