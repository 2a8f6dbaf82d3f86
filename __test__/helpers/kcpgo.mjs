// The kcp-go reference peer (interop/kcp-go). `npm test`'s set-up (scripts/test-setup.mjs) builds
// it before any test runs, so no test blocks its event loop on a Go build or a module download.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess, startProcess } from './process.mjs';

const dir = fileURLToPath(new URL('../../interop/kcp-go/', import.meta.url));
export const kcpgoBinary = `${dir}bin/kcpgo${process.platform === 'win32' ? '.exe' : ''}`;

/** Fails the test with the way out when the set-up has not built the peer (a lone `npx ava`). */
export function requireKcpgo(t) {
  if (!existsSync(kcpgoBinary)) {
    t.fail(`${kcpgoBinary} is missing: run the tests with npm test (its set-up builds it), or bash interop/kcp-go/build.sh`);
    return false;
  }
  return true;
}

/** Runs a kcp-go subcommand to completion; resolves with its exit code and output. */
export function runKcpgo(t, args, timeoutMs = 60_000) {
  return runProcess(t, kcpgoBinary, args, { timeoutMs });
}

/** Starts `kcpgo server`, ended by the test's teardown; resolves once it prints its listening line. */
export function startKcpgoServer(t, args = []) {
  const { child, exited } = startProcess(t, kcpgoBinary, ['server', '--host', '127.0.0.1', '--port', '0', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let err = '';
    let out = '';
    let stopped;
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => reject(new Error(`kcpgo server did not start\n${err}`)), 20_000);
    exited.then(({ code, signal, error }) => {
      clearTimeout(timer);
      reject(new Error(`kcpgo server exited before listening (${error?.message ?? code ?? signal})\n${err}`));
    });
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
          stop: () => (stopped ??= (child.stdin.end(), exited.then(() => out))),
        });
      }
    });
  });
}
