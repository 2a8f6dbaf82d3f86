/**
 * `kcpwatch demo`: a server and a few clients on loopback, talking through a user-space relay
 * that drops, delays, reorders and duplicates datagrams; one stray source sends garbage. It
 * shows what flows and what the library reports about it, then ends by itself.
 */

import { createSocket } from 'node:dgram';
import { once } from 'node:events';

import { connect } from './client';
import type { Connection } from './connection';
import { describeClose } from './cli';
import { createRelay } from './relay';
import { createServer } from './server';

export interface DemoOptions {
  clients: number;
  messages: number;
  loss: number;
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

export async function runDemo(options: DemoOptions): Promise<number> {
  const { out } = options;
  const idleTimeout = 1500;
  // The security records, as an analyst would get them (here one line each from their `msg`;
  // `kcpwatch serve` writes them whole, as NDJSON).
  const server = createServer({
    mode: 'raw',
    preset: 'game',
    idleTimeout,
    log: {
      destination: 'none',
      statsInterval: 0,
      onEvent: (e) => out(`[event #${e.seq}] ${e.name} ${e.msg}`),
    },
  });
  const serverClosed: Promise<void>[] = [];
  server.on('connection', (conn) => {
    out(`[server] connection_established id=${conn.id} src=${conn.remoteAddress}:${conn.remotePort} dst=${conn.localAddress}:${conn.localPort} conv=${conn.conv}`);
    conn.on('message', (data) => conn.send(data));
    serverClosed.push(once(conn, 'close').then(() => undefined));
    conn.on('close', (_reason, info) => out(`[server] connection_closed id=${conn.id} ${describeClose(info)}`));
  });
  const address = await server.listen(0, '127.0.0.1');
  out(`[demo] server listening ${address.address}:${address.port} (raw mode, preset game, idle timeout ${idleTimeout} ms)`);
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

  // A stray source sends a runt and a datagram with an unknown command: both are dropped whole.
  const stray = createSocket('udp4');
  const bad = Buffer.alloc(30);
  bad.writeUInt32LE(7, 0);
  bad[4] = 99;
  for (const datagram of [Buffer.from('hello?'), bad]) {
    await new Promise<void>((resolve) => stray.send(datagram, address.port, address.address, () => resolve()));
  }
  stray.close();

  const clients = Array.from({ length: options.clients }, () =>
    connect({ host: relay.host, port: relay.port, preset: 'game', idleTimeout: 10_000 }),
  );
  const results = await Promise.all(clients.map((conn, index) => runClient(conn, index + 1, options.messages, out)));
  for (const conn of clients) conn.close();
  await Promise.all(clients.map((conn) => (conn.state === 'closed' ? undefined : once(conn, 'close'))));
  out(`[demo] clients closed; raw KCP has no close on the wire, so the server sees each one go idle`);
  await Promise.all(serverClosed);
  const stats = server.stats();
  out(
    `[server] stats datagrams_in=${stats.datagramsIn} datagrams_out=${stats.datagramsOut} passive_opens=${stats.passiveOpens} ` +
      `closed=${stats.closed} dropped_too_short=${stats.droppedTooShort} dropped_bad_cmd=${stats.droppedBadCmd}`,
  );
  const rs = relay.stats();
  out(`[relay] forwarded=${rs.forwarded} dropped=${rs.dropped} duplicated=${rs.duplicated} reordered=${rs.reordered}`);
  await relay.close();
  await server.close();
  const ok = results.every(Boolean);
  out(ok ? '[demo] done: every message arrived exactly once, in order' : '[demo] FAILED');
  return ok ? 0 : 1;
}
