// Child processes of the benchmark: servers that print their port and stop on stdin EOF, load
// drivers that print one JSON line, and what the kernel says a process costs (RSS, CPU time).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux; /proc/PID/stat counts CPU time in these.

/**
 * Starts a server process that announces its port (first stdout line `PORT`, or `listening
 * HOST:PORT` on stderr); closing its stdin stops it. `stop()` resolves with its whole stdout,
 * whose last line may be a JSON report.
 */
export function startServer(command, args, { portFrom = 'stdout', env, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : undefined });
    let out = '';
    let err = '';
    let announced = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not announce a port: ${out}${err}`.slice(0, 2000)));
    }, timeoutMs);
    const check = () => {
      if (announced) return;
      const m = portFrom === 'stdout' ? /^(\d+)\n/.exec(out) : /listening \[?[\d.:a-f]+\]?:(\d+)/.exec(err);
      if (!m) return;
      announced = true;
      clearTimeout(timer);
      const closed = new Promise((done) => child.once('close', () => done(out)));
      resolve({
        port: Number(m[1]),
        pid: child.pid,
        stderr: () => err,
        stop: () => {
          child.stdin.end();
          return closed;
        },
        kill: () => (child.kill('SIGKILL'), closed),
      });
    };
    child.stdout.on('data', (d) => ((out += d), check()));
    child.stderr.on('data', (d) => ((err += d), check()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (!announced) {
        clearTimeout(timer);
        reject(new Error(`${command} exited (${code}) before announcing a port: ${err.slice(-2000)}`));
      }
    });
  });
}

/**
 * Runs a load driver to completion and returns the JSON object on its last stdout line.
 * `onStderr(line)` sees its progress lines (`LOAD n`, `HOLDING n`); with `keepStdin` its stdin
 * stays open until `release()` (on the returned promise) closes it, which ends a hold.
 */
export function runDriver(command, args, { timeoutMs = 120_000, onStderr, keepStdin = false } = {}) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  if (!keepStdin) child.stdin.end();
  let out = '';
  let err = '';
  let partial = '';
  const result = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} ran over ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      if (!onStderr) return;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) onStderr(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        const parsed = JSON.parse(last);
        resolve(parsed);
      } catch {
        reject(new Error(`${command} ${args.slice(0, 12).join(' ')} exited ${code} without a JSON result: ${(out + err).slice(-1500)}`));
      }
    });
  });
  result.release = () => child.stdin.end();
  result.pid = child.pid;
  return result;
}

/** Resident memory and CPU time (user + system) of a live process, from /proc. */
export function processCost(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields after the command name, which may contain spaces: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssKiB, cpuMs, threads };
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
