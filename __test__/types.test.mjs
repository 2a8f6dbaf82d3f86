import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the public .d.ts accepts correct use and rejects misuse under strict mode', (t) => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const r = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'commonjs', '--types', 'node', '__test__/types/usage.ts'],
    { cwd: root, encoding: 'utf8' },
  );
  t.is(r.status, 0, r.stdout + r.stderr);
});
