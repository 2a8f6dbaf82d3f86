// The reference C ikcp peer (interop/ikcp). `npm test`'s set-up (scripts/test-setup.mjs) builds
// it before any test runs: ikcp.c from the checksum-pinned kcp==0.1.6 sdist, compiled with gcc.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess } from './process.mjs';

export const ikcpBinary = fileURLToPath(new URL('../../interop/ikcp/bin/ikcp-client', import.meta.url));

/** Fails the test with the way out when the set-up has not built the peer (a lone `npx ava`). */
export function requireIkcp(t) {
  if (!existsSync(ikcpBinary)) {
    t.fail(`${ikcpBinary} is missing: run the tests with npm test (its set-up builds it), or node interop/ikcp/build.mjs`);
    return false;
  }
  return true;
}

/** Runs the ikcp client against 127.0.0.1:port; resolves with its exit code and JSON line. */
export async function runIkcp(t, port, args = [], timeoutMs = 30_000) {
  const r = await runProcess(t, ikcpBinary, ['--host', '127.0.0.1', '--port', String(port), ...args], { timeoutMs });
  const line = r.out.trim().split('\n').at(-1) || '{}';
  return { ...r, result: JSON.parse(line), why: r.out + r.err };
}
