import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runProcess } from './helpers/process.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the public .d.ts accepts correct use and rejects misuse under strict mode', async (t) => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const r = await runProcess(
    t,
    process.execPath,
    [tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'commonjs', '--types', 'node', '__test__/types/usage.ts', '__test__/types/misuse.ts'],
    { cwd: root, timeoutMs: 60_000 },
  );
  t.is(r.code, 0, r.out + r.err);
});
