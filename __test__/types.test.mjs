import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
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

// The event types are generated from the Rust catalogue (`npm run codegen`); the records the
// canonical writer makes in tests are what they must describe, field for field.
test('every record the canonical writer makes in tests is a KcpEvent, and a wrong one is not', (t) => {
  const fixtures = join(root, 'crates/kcpwatch-log/tests/fixtures');
  const records = readdirSync(fixtures)
    .filter((f) => f.endsWith('.ndjson'))
    .flatMap((f) => readFileSync(join(fixtures, f), 'utf8').split('\n').filter(Boolean));
  t.true(records.length > 50);
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-types-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const types = join(root, 'src/event-types').replaceAll('\\', '/');
  let files = 0;
  const check = (body) => {
    const file = join(dir, `records-${(files += 1)}.ts`);
    writeFileSync(file, `import type { KcpEvent } from '${types}';\n${body}\n`);
    const program = ts.createProgram([file], { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, types: [] });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  };
  const good = records.map((r, i) => `export const r${i}: KcpEvent = ${r};`).join('\n');
  t.deepEqual(check(good), []);
  const first = (name) => JSON.parse(records.find((r) => JSON.parse(r).name === name));
  const renamed = first('kcp:packet_dropped');
  renamed.datagram_size = renamed.datagram_bytes;
  delete renamed.datagram_bytes;
  const wrongSeverity = { ...first('kcp:connection_closed'), severity: 3 };
  const uidWithoutConv = { ...first('kcp:packet_dropped'), uid: 'K0000000000000000000000' };
  delete uidWithoutConv.conv;
  for (const bad of [renamed, wrongSeverity, uidWithoutConv]) {
    t.not(check(`export const r: KcpEvent = ${JSON.stringify(bad)};`).length, 0, JSON.stringify(bad));
  }
});

// The README's complete examples (a ```js or ```ts block that imports 'kcpwatch') are what a
// hurried reader pastes into a strict TypeScript project: each must compile as written.
test('every complete example in README.md compiles under strict TypeScript as written', (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/^```(?:js|ts|mjs)\n([\s\S]*?)^```/gm)]
    .map((m) => m[1])
    .filter((code) => /from 'kcpwatch'/.test(code));
  t.true(blocks.length >= 1, 'the README has its "Use" example');
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  const files = blocks.map((code, i) => {
    const file = join(dir, `readme-${i + 1}.ts`);
    writeFileSync(file, code);
    return file;
  });
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    typeRoots: [join(root, 'node_modules/@types')],
    paths: { kcpwatch: [join(root, 'index.d.ts')] },
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const code = where && d.file ? d.file.text.split('\n')[where.line].trim() : '';
    return `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}${code ? ` at: ${code}` : ''}`;
  });
  t.deepEqual(diagnostics, []);
});
