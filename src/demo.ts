/**
 * `kcpwatch demo`: a secure-mode server and a few clients on loopback, talking through a
 * user-space relay that drops, delays, reorders and duplicates datagrams. While they echo, a
 * bounded flood of spoofed-looking datagrams (random HELLOs, random convs, garbage, from many
 * loopback addresses and ports) hits the server, and one client presents a wrong token. It
 * shows what flows, what is refused, and what the library reports about it, then ends by itself.
 */

import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';

import { connect } from './client';
import type { Connection } from './connection';
import { describeClose } from './describe-close';
import { createRelay } from './relay';
import { keyIdOf } from './keys';
import { createServer } from './server';

export interface DemoOptions {
  clients: number;
  messages: number;
  loss: number;
  /** Datagrams in the flood phase (0: none). */
  flood: number;
  out: (line: string) => void;
}
function payload(client: number, i: number): Buffer {
  const size = 16 + ((i * 37 + client * 101) % 900);
  const buf = Buffer.alloc(size, (i + client) & 0xff);
  buf.writeUInt32LE(i, 0);
  buf.writeUInt32LE(client, 4);
  return buf;
}

async function runClient(conn: Connection, client: number, messages: number, out: DemoOptions['out']): Promise<boolean> {
  const started = Date.now();
  let received = 0;
  let ok = true;
  const done = new Promise<void>((resolve) => {
    conn.on('message', (data) => {
      if (!data.equals(payload(client, received))) ok = false;
      received += 1;
      if (received === messages) resolve();
    });
    conn.on('close', () => resolve());
  });
  for (let i = 0; i < messages; i++) conn.send(payload(client, i));
  await done;
  out(
    `[client ${client}] ${received}/${messages} echoes ${ok && received === messages ? 'verified' : 'MISMATCH'} in ${Date.now() - started} ms ` +
      `(conv ${conn.conv}, local ${conn.localAddress}:${conn.localPort})`,
  );
  return ok && received === messages;
}

/**
 * Sends `count` spoofed-looking datagrams: HELLOs and garbage from the `sources` sockets, and
 * session datagrams for guessed convs from the last one (a conv scanner). Resolves with the
 * bytes sent and received.
 */
async function flood(port: number, count: number, sources: Socket[], keyId: Buffer): Promise<{ sent: number; bytesSent: number; bytesReceived: number }> {
  let bytesReceived = 0;
  for (const s of sources) s.on('message', (m) => (bytesReceived += m.length));
  let bytesSent = 0;
  for (let i = 0; i < count; i++) {
    let datagram: Buffer;
    switch (i % 3) {
      case 0: {
        // A HELLO (docs/protocol.md) naming the server's key, with a random nonce and random
        // bytes for the Noise message; half of them with a forged cookie.
        datagram = randomBytes(88 + (i % 50));
        datagram[0] = 0x01;
        datagram[1] = 0x02;
        datagram[2] = 0x01;
        datagram[3] = 0;
        keyId.copy(datagram, 4);
        if (i % 2 === 0) datagram.fill(0, 24, 40);
        break;
      }
      case 1: {
        // A session datagram for a guessed conv with a guessed tag.
        datagram = randomBytes(21 + (i % 200));
        datagram[0] = 0x10;
        break;
      }
      default:
        datagram = randomBytes(1 + (i % 300));
    }
    bytesSent += datagram.length;
    // The scanner sends the guessed session datagrams and the forged cookies; the others flood
    // plain HELLOs and garbage.
    const fromScanner = i % 3 === 1 || (i % 3 === 0 && i % 2 === 1);
    const source = fromScanner ? sources[sources.length - 1]! : sources[i % (sources.length - 1)]!;
    await new Promise<void>((resolve) => source.send(datagram, port, '127.0.0.1', () => resolve()));
    // Yield now and then so the legitimate clients' timers keep running in this process.
    if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
  }
  return { sent: count, bytesSent, bytesReceived };
}

async function floodSources(n: number): Promise<Socket[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const s = createSocket('udp4');
      s.bind(0, `127.${10 + (i % 200)}.${(i * 7) % 256}.${1 + (i % 250)}`);
      await once(s, 'listening');
      return s;
    }),
  );
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const { out } = options;
  // Also the bound on how long a segment may go unacknowledged (dead link): at 1.5 s, a
  // machine busy enough to stall the process for a second closed a player mid-echo through the
  // lossy relay (1 run in 20 under load). The demo's sessions end by DISCONNECT, so a long idle
  // timeout costs it nothing.
  const idleTimeout = 10_000;
  // The security records, as an analyst would get them (here one line each from their `msg`;
  // `kcpwatch serve` writes them whole, as NDJSON). Per-datagram records are sampled (a few
  // per trigger per second, then one aggregate), so the flood cannot flood the log.
  const server = createServer({
    preset: 'game',
    idleTimeout,
    authenticate: (token) => token.toString().startsWith('player-'),
    log: {
      destination: 'none',
      statsInterval: 0,
      sampleBurst: 3,
      onEvent: (e) => out(`[event #${e.seq}] ${e.name} ${e.msg}`),
    },
  });
  const serverClosed: Promise<void>[] = [];
  const openedFrom = new Set<string>();
  server.on('connection', (conn) => {
    openedFrom.add(conn.remoteAddress);
    out(`[server] connection_established id=${conn.id} src=${conn.remoteAddress}:${conn.remotePort} dst=${conn.localAddress}:${conn.localPort} conv=${conn.conv}`);
    conn.on('message', (data) => conn.send(data));
    serverClosed.push(once(conn, 'close').then(() => undefined));
    conn.on('close', (_reason, info) => out(`[server] connection_closed id=${conn.id} ${describeClose(info)}`));
  });
  const address = await server.listen(0, '127.0.0.1');
  out(`[demo] server listening ${address.address}:${address.port} (secure mode, tokens checked, preset game, idle timeout ${idleTimeout} ms)`);
  // Clients pin this public key (here this run's ephemeral one; a real server keeps its key in
  // a file from `kcpwatch keygen`).
  const serverKey = server.publicKey!;
  out(`[demo] server public key ${serverKey} (clients pin it as serverKey)`);
  const relay = await createRelay({
    target: { host: address.address, port: address.port },
    loss: options.loss,
    delayMs: 15,
    jitterMs: 10,
    reorder: 0.05,
    duplicate: 0.01,
    seed: 2024,
  });
  out(`[demo] relay ${relay.host}:${relay.port} -> server: loss ${options.loss * 100}%, delay 15+0..10 ms, reorder 5%, duplicate 1% each way`);

  // A player with a wrong ticket is refused before any session exists.
  const intruder = connect({ host: relay.host, port: relay.port, serverKey, token: 'guest' });
  const refused = await intruder.ready().then(
    () => 'ACCEPTED (wrong)',
    (err: Error & { code?: string }) => `refused: ${err.code}`,
  );
  out(`[intruder] token "guest" ${refused}`);

  const clients = Array.from({ length: options.clients }, (_, i) =>
    connect({ host: relay.host, port: relay.port, serverKey, preset: 'game', idleTimeout: 10_000, token: `player-${i + 1}` }),
  );
  const sources = options.flood > 0 ? await floodSources(32) : [];
  const keyId = Buffer.from(keyIdOf(Buffer.from(serverKey, 'base64')), 'hex');
  const flooding = options.flood > 0 ? flood(address.port, options.flood, sources, keyId) : undefined;
  if (flooding) {
    out(
      `[flood] ${options.flood} spoofed-looking datagrams while the players echo: HELLOs and garbage from ${sources.length - 1} loopback addresses, ` +
        `guessed convs with forged AEAD tags and forged cookies from one scanner (${sources.at(-1)!.address().address})`,
    );
  }
  const results = await Promise.all(clients.map((conn, index) => runClient(conn, index + 1, options.messages, out)));
  if (flooding) {
    const f = await flooding;
    // Let the last replies (if any) reach the flood sockets before counting them.
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const s of sources) s.close();
    out(
      `[flood] sent ${f.sent} datagrams (${f.bytesSent} bytes); the server answered the flooding sources with ${f.bytesReceived} bytes ` +
        `(${((100 * f.bytesReceived) / Math.max(1, f.bytesSent)).toFixed(1)}%, never more than they sent)`,
    );
  }
  for (const conn of clients) conn.close();
  await Promise.all(clients.map((conn) => (conn.state === 'closed' ? undefined : once(conn, 'close'))));
  out(`[demo] clients closed; their DISCONNECT ends each session on the server at once (peer_closed)`);
  await Promise.all(serverClosed);
  const stats = server.stats();
  out(
    `[server] stats connections=${stats.connections} passive_opens=${stats.passiveOpens} closed=${stats.closed} ` +
      `hellos=${stats.hellosReceived} cookies_sent=${stats.cookiesSent} auth_rejected=${stats.failedAuthRejected} ` +
      `invalid_cookie=${stats.failedInvalidCookie} rate_limited=${stats.failedRateLimited} bad_tag=${stats.droppedBadTag} decrypt_failed=${stats.droppedDecryptFailed} ` +
      `unknown_connection=${stats.droppedUnknownConnection} bad_cmd=${stats.droppedBadCmd} too_short=${stats.droppedTooShort} ` +
      `bytes_sent_unvalidated=${stats.bytesSentUnvalidated} bytes_received_unvalidated=${stats.bytesReceivedUnvalidated} alerts=${stats.alerts}`,
  );
  const rs = relay.stats();
  out(`[relay] forwarded=${rs.forwarded} dropped=${rs.dropped} duplicated=${rs.duplicated} reordered=${rs.reordered}`);
  await relay.close();
  await server.close();
  // Every session the server ever had came through the relay: none from the intruder or the
  // flood. (Counting them would not do: a player whose ACCEPT and retries are all lost on the
  // lossy link gets a second session when the first idles out, which is correct.)
  const ok =
    results.every(Boolean) &&
    refused.startsWith('refused') &&
    openedFrom.size > 0 &&
    [...openedFrom].every((a) => a === relay.host) &&
    stats.connections === 0;
  out(ok ? '[demo] done: every message arrived exactly once, in order; the intruder and the flood opened nothing' : '[demo] FAILED');
  return ok ? 0 : 1;
}
