// One 64-byte message to 1,000 connections: `server.broadcast()` next to a loop of
// `conn.send()` over the same connections. Both end in one native call per event-loop turn
// (the transport batches); the figure is what the event loop pays per turn, the batch's
// native call included, and the messages per second that makes.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const CONNECTIONS = 1000;
const SIZE = 64;

/** Resolves when `predicate()` holds, re-checked on each `event`, or rejects after `ms`. */
function until(emitter, event, predicate, ms) {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => {
      emitter.off(event, check);
      reject(new Error(`timed out waiting for ${event}`));
    }, ms);
    const check = () => {
      if (!predicate()) return;
      clearTimeout(timer);
      emitter.off(event, check);
      resolve();
    };
    emitter.on(event, check);
  });
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

export async function broadcast(ctx) {
  const kcpwatch = require('../../index.js');
  const limits = { maxConnectionsPerIp: 10_000, maxConnectionsPerPrefix: 10_000, handshakesPerSecondPerIp: 1_000_000, handshakeBurstPerIp: 1_000_000 };
  const server = kcpwatch.createServer({ mode: 'raw', log: false, limits });
  const { port } = await server.listen(0, '127.0.0.1');
  const client = kcpwatch.createClient({ host: '127.0.0.1', port, mode: 'raw', maxConnections: CONNECTIONS });
  const arrivals = new EventEmitter();
  let received = 0;
  try {
    const conns = Array.from({ length: CONNECTIONS }, () => client.connect());
    for (const c of conns) {
      c.on('message', () => {
        received += 1;
        arrivals.emit('message');
      });
      c.send('join');
    }
    await until(server, 'connection', () => server.connectionCount === CONNECTIONS, 30_000);
    const payload = Buffer.alloc(SIZE, 0x2a);
    const turns = ctx.quick ? 300 : 1000;
    const methods = {
      broadcast: () => server.broadcast(payload),
      'send loop': () => {
        for (const conn of server.connections.values()) conn.send(payload);
      },
    };
    const results = {};
    // Alternating, best of several rounds: neither method gets the JIT's warm-up alone.
    const rounds = Math.max(3, ctx.rounds * 2);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? Object.entries(methods) : Object.entries(methods).reverse();
      for (const [name, run] of order) {
        const times = [];
        const expected = received + turns * CONNECTIONS;
        for (let i = 0; i < turns; i++) {
          const start = process.hrtime.bigint();
          run();
          // The transport flushes in a microtask queued by the first send: awaiting one resolved
          // promise resumes after it, so the native call is inside the measurement.
          await Promise.resolve();
          times.push(Number(process.hrtime.bigint() - start));
          await turn();
        }
        // Every message arrived before the next method runs (and none is counted twice).
        await until(arrivals, 'message', () => received >= expected, 60_000);
        times.sort((a, b) => a - b);
        const median = times[times.length >> 1];
        const best = results[name];
        if (!best || median < best.median_ns_per_turn) {
          results[name] = { median_ns_per_turn: median, p99_ns_per_turn: times[Math.floor(times.length * 0.99)], messages_per_second: Math.round((CONNECTIONS * 1e9) / median) };
        }
      }
    }
    ctx.progress(`broadcast ${JSON.stringify(results)}`);
    const row = (name) => `${(results[name].messages_per_second / 1e6).toFixed(2)} M msg/s (${(results[name].median_ns_per_turn / 1000).toFixed(0)} µs per turn for ${CONNECTIONS} connections)`;
    return {
      json: { connections: CONNECTIONS, size: SIZE, turns, ...results },
      table: [
        [`broadcast ${SIZE} B to ${CONNECTIONS} connections, server.broadcast()`, row('broadcast')],
        [`broadcast ${SIZE} B to ${CONNECTIONS} connections, loop of conn.send()`, row('send loop')],
      ],
      chart: Object.entries(results).map(([name, r]) => ({
        panel: `Broadcast of ${SIZE} B to ${CONNECTIONS} connections (event-loop cost)`,
        unit: 'msg/s',
        group: `${CONNECTIONS} conns x ${SIZE} B`,
        peer: name === 'broadcast' ? 'server.broadcast()' : 'loop of conn.send()',
        value: r.messages_per_second,
      })),
    };
  } finally {
    await client.close();
    await server.close({ force: true });
  }
}
