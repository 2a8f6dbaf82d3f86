// Shared helpers for the ava suite: bounded waits (never sleeps as synchronisation).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';

export const require = createRequire(import.meta.url);
export const kcpwatch = require('../../index.js');

/** Waits for an event, failing after `ms` instead of hanging. */
export async function next(emitter, event, ms = 10_000) {
  return once(emitter, event, { signal: AbortSignal.timeout(ms) });
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
  return { server, address };
}

/** Deterministic message `i` with a varied size up to `max`. */
export function message(i, max = 1000) {
  const size = 1 + ((i * 7919) % max);
  const buf = Buffer.alloc(size, i & 0xff);
  if (size >= 4) buf.writeUInt32LE(i, 0);
  return buf;
}

/**
 * Runs a program to completion; resolves with its exit code, signal and output, and kills it
 * (rejecting) if it outlives `timeoutMs`.
 */
export function runProcess(command, args, { cwd, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args[0]} hung\n${out}\n${err}`));
    }, timeoutMs);
    // 'close', not 'exit': only 'close' guarantees the output streams were read to the end.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}
