// The kcp-go reference peer (interop/kcp-go), built on first use by its own script.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess } from './util.mjs';

const dir = fileURLToPath(new URL('../../interop/kcp-go/', import.meta.url));
export const kcpgoBinary = `${dir}bin/kcpgo${process.platform === 'win32' ? '.exe' : ''}`;

export function buildKcpgo() {
  // Always through `go build`: its cache makes an up-to-date binary cost about a second, and a
  // stale binary from an older checkout would test the wrong peer.
  execFileSync('bash', [`${dir}build.sh`], { stdio: 'inherit' });
  if (!existsSync(kcpgoBinary)) throw new Error(`${kcpgoBinary} was not built`);
  return kcpgoBinary;
}

/** Runs a kcp-go subcommand to completion; resolves with its exit code and output. */
export function runKcpgo(args, timeoutMs = 60_000) {
  return runProcess(kcpgoBinary, args, { timeoutMs });
}

/** Starts `kcpgo server`; resolves once it prints its listening line. */
export function startKcpgoServer(args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(kcpgoBinary, ['server', '--host', '127.0.0.1', '--port', '0', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let err = '';
    let out = '';
    let stopped;
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kcpgo server did not start\n${err}`));
    }, 20_000);
    child.stderr.on('data', (d) => {
      err += d;
      const match = /listening ([\d.]+):(\d+)/.exec(err);
      if (match) {
        clearTimeout(timer);
        resolve({
          host: match[1],
          port: Number(match[2]),
          output: () => out,
          // Closing stdin is the peer's signal to stop; it prints its session summaries first.
          stop: () => (stopped ??= new Promise((done) => {
            child.once('close', () => done(out));
            child.stdin.end();
          })),
        });
      }
    });
    child.on('error', reject);
  });
}
