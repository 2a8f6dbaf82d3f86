// Every process a test starts goes through here, so that it is ended by that test's teardown
// whether the test passes, fails or throws half-way (a `kcpwatch serve` child left running keeps
// ava waiting for ever). The test runner (scripts/bounded.mjs) also fails the run if any
// process outlives the suite.
import { spawn } from 'node:child_process';

const STOP_GRACE_MS = 3_000;

/**
 * Starts `command` and registers its end with `t.teardown`: SIGTERM, then SIGKILL if it has not
 * exited within a grace period. Resolves nothing; returns the child and `exited`, a promise of
 * its `{ code, signal }` once its output streams closed.
 */
export function startProcess(t, command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const exited = new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    // 'close', not 'exit': only 'close' guarantees the output streams were read to the end.
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  t.teardown(() => stopProcess(child, exited));
  return { child, exited };
}

/** Ends a child (SIGTERM, then SIGKILL after a grace period) and waits until it is gone. */
export async function stopProcess(child, exited) {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  let timer;
  const graceOver = new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS, 'timeout')));
  const first = await Promise.race([exited, graceOver]);
  clearTimeout(timer);
  if (first === 'timeout') {
    child.kill('SIGKILL');
  }
  return exited;
}

/**
 * Runs a program to completion; resolves with its exit code, signal and output. It is killed
 * (and the promise rejects) if it outlives `timeoutMs`, and by the test's teardown if the test
 * ends first.
 */
export function runProcess(t, command, args, { cwd, env, timeoutMs = 60_000, input } = {}) {
  const { child, exited } = startProcess(t, command, args, { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  if (input !== undefined) child.stdin.end(input);
  let timer;
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} outlived ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
  });
  return Promise.race([exited.then(({ code, signal, error }) => {
    if (error) throw error;
    return { code, signal, out, err };
  }), hung]).finally(() => clearTimeout(timer));
}
