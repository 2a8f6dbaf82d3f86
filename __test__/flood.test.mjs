// The flood test of the secure-mode issue: 200,000 spoofed-looking datagrams (random HELLOs with
// and without forged cookies, session datagrams for guessed convs with guessed tags, plain KCP
// segments, garbage) from 256 loopback addresses and ports, against a secure-mode server while
// 20 legitimate clients echo; then twice more, quietly, to see that memory stays flat. Bounded
// in count and time, loopback only.
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import test from 'ava';
import { kcpwatch, message } from './helpers/util.mjs';

const FLOOD = 200_000;
const SOURCES = 256;
const CLIENTS = 20;
const MESSAGES = 200;

function floodDatagram(i) {
  switch (i % 4) {
    case 0: {
      const hello = Buffer.alloc(64 + (i % 64));
      hello[0] = 0x01;
      hello[1] = 0x01;
      randomBytes(16).copy(hello, 4);
      if (i % 8 === 4) randomBytes(16).copy(hello, 20);
      return hello;
    }
    case 1: {
      const session = randomBytes(21 + (i % 120));
      session[0] = 0x10 + (i % 3);
      return session;
    }
    case 2: {
      // A plain KCP PUSH for a random conv.
      const kcp = randomBytes(24 + (i % 40));
      kcp[4] = 81;
      kcp.writeUInt32LE(kcp.length - 24, 20);
      return kcp;
    }
    default:
      return randomBytes(1 + (i % 200));
  }
}

/** The flood's sockets; `received` counts every byte the server sent back to any of them. */
async function bindSources() {
  const sockets = await Promise.all(
    Array.from({ length: SOURCES }, async (_, i) => {
      const socket = createSocket('udp4');
      socket.bind(0, `127.${100 + (i % 100)}.${(i * 37) % 256}.${1 + ((i * 11) % 250)}`);
      await once(socket, 'listening');
      return socket;
    }),
  );
  sockets.received = 0;
  for (const s of sockets) s.on('message', (m) => (sockets.received += m.length));
  return sockets;
}

/** Sends `count` flood datagrams round-robin from `sources`; resolves with the bytes sent. */
async function sendFlood(sources, port, count) {
  let sent = 0;
  for (let i = 0; i < count; i++) {
    const datagram = floodDatagram(i);
    sent += datagram.length;
    sources[i % SOURCES].send(datagram, port, '127.0.0.1');
    // Let the sockets drain and the clients' timers run; bounded by count, not time.
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
  return { sent };
}

/** Asks the server process something over IPC and waits for its answer. */
function ask(child, question) {
  const answer = once(child, 'message');
  child.send(question);
  return answer.then(([reply]) => reply);
}

test('a 200,000-datagram flood opens nothing, is never amplified, keeps the server flat in memory, and 20 legitimate clients lose no message', async (t) => {
  t.timeout(120_000);
  const child = fork(fileURLToPath(new URL('./helpers/flood-server.mjs', import.meta.url)), [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  const [{ port, key }] = await once(child, 'message');

  const clients = Array.from({ length: CLIENTS }, () => kcpwatch.connect({ host: '127.0.0.1', port, serverKey: key, log: false }));
  await Promise.all(clients.map((c) => c.ready()));

  // The legitimate clients send for as long as the flood runs (at least MESSAGES each), and every
  // echo is checked in order.
  const sentCount = clients.map(() => 0);
  const receivedCount = clients.map(() => 0);
  let floodDone = false;
  let pacingDone;
  const paced = new Promise((resolve) => (pacingDone = resolve));
  const pacer = setInterval(() => {
    for (const [n, c] of clients.entries()) {
      for (let k = 0; k < 2; k++) c.send(message(n * 100_000 + sentCount[n]++, 1000));
    }
    if (floodDone && sentCount.every((s) => s >= MESSAGES)) {
      clearInterval(pacer);
      pacingDone();
    }
  }, 10);
  const echoes = clients.map(
    (c, n) =>
      new Promise((resolve, reject) => {
        c.on('message', (m) => {
          const i = receivedCount[n]++;
          if (!m.equals(message(n * 100_000 + i, 1000))) reject(new Error(`client ${n}: echo ${i} differs`));
          paced.then(() => receivedCount[n] === sentCount[n] && resolve());
        });
        c.on('close', () => reject(new Error(`client ${n} closed after ${receivedCount[n]} echoes`)));
      }),
  );

  const sources = await bindSources();
  const started = Date.now();
  const flood = await sendFlood(sources, port, FLOOD);
  const floodMs = Date.now() - started;
  floodDone = true;
  await paced;
  await Promise.all(echoes);
  // Memory: the clients' traffic is over; a second flood brings every buffer to its working
  // size whatever else the machine was doing, and "flat" means a third one adds nothing that
  // stays.
  const second = await sendFlood(sources, port, FLOOD);
  const before = await ask(child, 'stats');
  const third = await sendFlood(sources, port, FLOOD);
  const after = await ask(child, 'stats');
  const stats = after.stats;

  t.is(after.connections.length, CLIENTS, 'no session for any flooding source');
  t.true(after.connections.every((a) => a.startsWith('127.0.0.1:')), after.connections.join(' '));
  t.is(stats.connections, CLIENTS);
  t.is(stats.pendingAuth, 0);
  t.true(stats.bytesSentUnvalidated <= stats.bytesReceivedUnvalidated, `${stats.bytesSentUnvalidated} > ${stats.bytesReceivedUnvalidated}`);
  const sent = flood.sent + second.sent + third.sent;
  const received = sources.received;
  t.true(received <= sent, `${received} bytes to the sources > ${sent} from them`);
  const growthMiB = (after.rss - before.rss) / 2 ** 20;
  // Logs that cannot amplify: per-datagram records are sampled per trigger and reason (20 a
  // second each by default, then one aggregate per window) and alerts are one per episode, so
  // the record count is bounded by time, not by the flood's size.
  const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
  const recordBound = 21 * 18 * seconds + 200;
  t.true(after.records <= recordBound, `${after.records} records > ${recordBound} for ${seconds} s`);
  t.true(growthMiB < 4, `the server's RSS grew ${growthMiB.toFixed(1)} MiB: ${JSON.stringify([before.heap, after.heap, before.external, after.external])}`);
  const dropped =
    stats.droppedTooShort +
    stats.droppedBadCmd +
    stats.droppedBadLength +
    stats.droppedBadTag +
    stats.droppedUnknownConnection +
    stats.droppedRateLimited;
  const mib = (n) => (n / 2 ** 20).toFixed(1);
  t.log(
    `flood: ${FLOOD} datagrams from ${SOURCES} sources in ${floodMs} ms while the clients echoed, then twice ${FLOOD} more (${mib(sent)} MiB in all); ` +
      `the server received ${stats.datagramsIn} datagrams (flood and client traffic) and dropped ${dropped}; ` +
      `HELLOs ${stats.hellosReceived}, cookies sent ${stats.cookiesSent}, rate-limited ${stats.droppedRateLimited}, invalid cookies ${stats.failedInvalidCookie}; ` +
      `bytes the sources received ${received} vs sent ${sent}; sessions ${stats.connections}; ` +
      `server RSS before and after the third flood ${mib(before.rss)} -> ${mib(after.rss)} MiB (V8 heap ${mib(before.heap)} -> ${mib(after.heap)}, external ${mib(before.external)} -> ${mib(after.external)}); security records ${after.records} (bound ${recordBound}), alerts ${stats.alerts}; ` +
      `${CLIENTS} clients echoed ${sentCount.reduce((a, b) => a + b)} messages, all verified in order`,
  );
  for (const s of sources) s.close();
  for (const c of clients) c.close();
  child.send('close');
  await once(child, 'exit');
});
