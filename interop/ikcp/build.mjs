#!/usr/bin/env node
// Builds the reference-ikcp peer (client.c linked with skywind3000's ikcp.c) into bin/ikcp-client.
//
// ikcp.c is not committed: it comes from the PyPI source distribution `kcp==0.1.6`, which
// vendors ikcp.c/ikcp.h identical to upstream ikcp 1.7 apart from one comment line. The archive
// is resolved through the package index's simple API (what `pip download --no-binary :all:`
// resolves; pip itself would also build the package's metadata with its Cython/poetry backend,
// which the C client does not need), checked against the sha256 pinned below, and kept in
// vendor/ so later runs use no network. The only host contacted is the package index (and the
// file host it links to); PIP_INDEX_URL is honoured. Quiet on success; exits 1 with one message
// naming what is missing otherwise.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const SDIST = 'kcp-0.1.6.tar.gz';
const SDIST_SHA256 = '1e3632509119bd6a24599ee043e21ef6842675413a41720c526d14896357afc4';
const SOURCES = {
  'ikcp.c': 'c58e811a0ea2d05578076204b0888077c0711eb5647fdc0030ef0de4ff957b8b',
  'ikcp.h': 'b4a96bb467487f82d2cb3a538073a74c076c70b69cac2ec37b58fd98bee86fdc',
};
const vendor = join(dir, 'vendor');
const bin = join(dir, 'bin', 'ikcp-client');

function fail(message) {
  process.stderr.write(`interop/ikcp: ${message}\n`);
  process.exit(1);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const which = (name) =>
  (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name)).find((p) => existsSync(p));

function run(command, args) {
  const r = spawnSync(command, args, { cwd: dir, encoding: 'utf8' });
  if (r.error || r.status !== 0) fail(`${command} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

async function fetchSdist() {
  const index = (process.env.PIP_INDEX_URL ?? 'https://pypi.org/simple').replace(/\/+$/, '');
  const page = await fetch(`${index}/kcp/`, { signal: AbortSignal.timeout(60_000) });
  if (!page.ok) throw new Error(`${index}/kcp/ answered ${page.status}`);
  const html = await page.text();
  const href = [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]).find((h) => h.split('#')[0].endsWith(`/${SDIST}`));
  if (!href) throw new Error(`${index}/kcp/ does not list ${SDIST}`);
  const url = new URL(href.replaceAll('&amp;', '&'), `${index}/kcp/`);
  const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok) throw new Error(`${url.origin}${url.pathname} answered ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

async function sources() {
  const have = Object.entries(SOURCES).every(([f, sum]) => existsSync(join(vendor, f)) && sha256(readFileSync(join(vendor, f))) === sum);
  if (have) return;
  mkdirSync(vendor, { recursive: true });
  const archive = join(vendor, SDIST);
  if (!existsSync(archive) || sha256(readFileSync(archive)) !== SDIST_SHA256) {
    let bytes;
    try {
      bytes = await fetchSdist();
    } catch (e) {
      fail(`could not download ${SDIST} from the Python package index (${e.message}); put the file in ${vendor} by hand (pip download --no-deps --no-binary :all: kcp==0.1.6) and run again`);
    }
    const got = sha256(bytes);
    if (got !== SDIST_SHA256) fail(`${SDIST} has sha256 ${got}, not the pinned ${SDIST_SHA256}: refusing to build it`);
    writeFileSync(archive, bytes);
  }
  run('tar', ['-xzf', archive, '-C', vendor, '--strip-components=2', ...Object.keys(SOURCES).map((f) => `kcp-0.1.6/kcp/${f}`)]);
  for (const [f, sum] of Object.entries(SOURCES)) {
    const got = sha256(readFileSync(join(vendor, f)));
    if (got !== sum) fail(`${f} from ${SDIST} has sha256 ${got}, not the pinned ${sum}`);
  }
}

if (!which('gcc')) fail('gcc is missing: install a C compiler (Debian/Ubuntu: apt-get install gcc) and run again');
if (!which('tar')) fail('tar is missing: install it and run again');
await sources();
const inputs = [join(dir, 'client.c'), join(vendor, 'ikcp.c'), join(vendor, 'ikcp.h'), fileURLToPath(import.meta.url)];
const stale = !existsSync(bin) || inputs.some((f) => statSync(f).mtimeMs > statSync(bin).mtimeMs);
if (stale) {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  // ikcp.c is built as upstream ships it (its own unused-parameter warnings are not ours).
  run('gcc', ['-O2', '-w', '-c', join(vendor, 'ikcp.c'), '-o', join(vendor, 'ikcp.o')]);
  run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', `-I${vendor}`, join(dir, 'client.c'), join(vendor, 'ikcp.o'), '-o', bin]);
}
