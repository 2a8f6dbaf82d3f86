// Shared helpers for the ava suite: bounded waits (never sleeps as synchronisation).
import { once } from 'node:events';
import { createRequire } from 'node:module';

export const require = createRequire(import.meta.url);
export const kcpwatch = require('../../index.js');

/** Waits for an event, failing after `ms` instead of hanging. */
export async function next(emitter, event, ms = 10_000) {
  return once(emitter, event, { signal: AbortSignal.timeout(ms) });
}

/**
 * Resolves once `predicate()` holds, checking every 5 ms; rejects after `ms` naming `what`.
 * For state no event announces (a counter, a map's size).
 */
export async function poll(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves when `predicate()` holds, re-checking on each emitted `event`. */
export function until(emitter, event, predicate, ms = 10_000) {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => {
      emitter.off(event, check);
      reject(new Error(`timed out waiting for ${event}`));
    }, ms);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        emitter.off(event, check);
        resolve();
      }
    };
    emitter.on(event, check);
  });
}

/** A server on 127.0.0.1 with an ephemeral port that echoes every message. */
export async function echoServer(options = {}, host = '127.0.0.1') {
  // The security pipeline runs (records are produced and formatted) but writes nowhere, so the
  // test output stays readable; tests of the records pass their own `log`.
  const server = kcpwatch.createServer({ log: { destination: 'none' }, ...options }, (conn) => {
    conn.on('message', (m) => conn.send(m));
  });
  const address = await server.listen(0, host);
  // `key` is what a secure client pins (`serverKey`); null for a raw server.
  return { server, address, key: server.publicKey };
}

/** A secure client of a server on 127.0.0.1 (`key`: its `server.publicKey`). */
export function secureConnect(port, key, options = {}) {
  return kcpwatch.connect({ host: '127.0.0.1', port, serverKey: key, ...options });
}

/** Deterministic message `i` with a varied size up to `max`. */
export function message(i, max = 1000) {
  const size = 1 + ((i * 7919) % max);
  const buf = Buffer.alloc(size, i & 0xff);
  if (size >= 4) buf.writeUInt32LE(i, 0);
  return buf;
}

export { runProcess, startProcess } from './process.mjs';

/**
 * Collects records (security events, or anything else) as they arrive, and waits for them with
 * a bounded wait: `push` is the listener to register (`server.on('event', log.push)` or
 * `log: { onEvent: log.push }`). `check(record)` may return an error text for a bad record; those
 * texts accumulate in `problems` for the test to assert on.
 */
export class EventLog {
  constructor(check = () => undefined) {
    this.records = [];
    this.problems = [];
    this.check = check;
    this.waiters = new Set();
    this.push = (record) => {
      const problem = this.check(record);
      if (problem) this.problems.push(problem);
      this.records.push(record);
      for (const waiter of [...this.waiters]) waiter(record);
    };
  }

  /** Resolves with the first record (already arrived or arriving) matching `predicate`. */
  waitFor(predicate, ms = 10_000, what = 'a matching record') {
    return this.waitForCount(predicate, 1, ms, what).then((found) => found[0]);
  }

  /** Resolves with the first `count` records matching `predicate`, once that many arrived. */
  waitForCount(predicate, count, ms = 10_000, what = `${count} matching records`) {
    const matching = () => this.records.filter(predicate);
    if (matching().length >= count) return Promise.resolve(matching().slice(0, count));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; got ${this.records.length} records`));
      }, ms);
      const waiter = () => {
        const found = matching();
        if (found.length >= count) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(found.slice(0, count));
        }
      };
      this.waiters.add(waiter);
    });
  }
}

/** A UDP socket bound to 127.0.0.1 on an ephemeral port. */
export async function udpSocket() {
  const { createSocket } = await import('node:dgram');
  const socket = createSocket('udp4');
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

/** A port on 127.0.0.1 that nothing listens on (bound once to pick it, then released). */
export async function closedPort() {
  const socket = await udpSocket();
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

/** Resolves when `predicate(text)` holds for the file's contents, re-reading it until `ms` pass. */
export async function untilFile(path, predicate, ms = 10_000) {
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}; it holds:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
