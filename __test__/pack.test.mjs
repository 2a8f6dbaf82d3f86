// The published shape: `npm pack` the main package and the per-platform package holding the
// locally built binary, install both tarballs into an empty project with npm 10 and npm 11 the
// way a user's install runs (install scripts allowed), and echo a message through the installed
// copy. The main tarball carries no binary and no install-time build, so this also proves the
// loader finds the platform package the way a user's install would, and that a missing platform
// package gets a message a user can act on.
import test from 'ava';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess } from './helpers/process.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const npmVersions = {
  10: join(root, 'node_modules', 'npm10', 'bin', 'npm-cli.js'),
  11: join(root, 'node_modules', 'npm11', 'bin', 'npm-cli.js'),
};
const INSTALL_TIME_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare'];

/** The environment of a user's shell: none of the `npm_*` settings of the `npm test` running us. */
const userEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

async function npm(t, version, args, cwd, cache) {
  // Its own cache and an empty user config: what this machine's ~/.npmrc holds is not a user's.
  const own = ['--cache', cache, '--userconfig', join(cache, '..', 'npmrc'), '--no-audit', '--no-fund', '--no-update-notifier'];
  const r = await runProcess(t, process.execPath, [npmVersions[version], ...args, ...own], { cwd, env: userEnv, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`npm ${version} ${args.join(' ')} failed (${r.code})\n${r.out}\n${r.err}`);
  return r;
}

/** Packs the checkout and the platform package of the local build, once for the file. */
let packedOnce;
const packed = (t) => {
    packedOnce ??= (async () => {
      const binary = readdirSync(root).find((f) => /^kcpwatch\..+\.node$/.test(f));
      if (!binary) throw new Error('the addon is not built: npm test builds it first (npm run build)');
      const platform = binary.slice('kcpwatch.'.length, -'.node'.length);
      const work = mkdtempSync(join(tmpdir(), 'kcpwatch-pack-'));
      const cache = join(work, 'npm-cache');
      writeFileSync(join(work, 'npmrc'), '');
      const pack = async (dir) => {
        const { out } = await npm(t, 11, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], dir, cache);
        const [info] = JSON.parse(out);
        return { file: join(work, info.filename), files: info.files.map((f) => f.path) };
      };
      const main = await pack(root);
      const platformDir = join(work, `platform-${platform}`);
      cpSync(join(root, 'npm', platform), platformDir, { recursive: true });
      cpSync(join(root, binary), join(platformDir, binary));
      const native = await pack(platformDir);
      return { binary, platform, main, native, work, cache };
    })();
    return packedOnce;
};

test.after.always(async () => {
  const result = await packedOnce?.catch(() => undefined);
  if (result) rmSync(result.work, { recursive: true, force: true });
});

test.serial('the main tarball ships no binary and no install-time build', async (t) => {
  const { main } = await packed(t);
  t.false(main.files.some((f) => f.endsWith('.node')), 'the main package ships no binary');
  for (const f of ['dist/index.js', 'native.js', 'bin/kcpwatch.js', 'schema/events.schema.json', 'README.md']) t.true(main.files.includes(f), f);
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const installTime = INSTALL_TIME_SCRIPTS.filter((s) => s in (manifest.scripts ?? {}));
  t.deepEqual(installTime, [], 'no script runs when the package is installed');
  t.false(main.files.includes('binding.gyp'), 'no binding.gyp: npm would run node-gyp on install');
});

for (const version of [10, 11]) {
  test.serial(`npm ${version} installs both tarballs with install scripts allowed, without warnings, and the copy echoes`, async (t) => {
    const { main, native, binary, work, cache } = await packed(t);
    const project = join(work, `app-npm${version}`);
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const install = await npm(t, version, ['install', '--ignore-scripts=false', main.file, native.file], project, cache);
    const warnings = `${install.out}\n${install.err}`.split('\n').filter((l) => /\bwarn/i.test(l));
    t.deepEqual(warnings, [], 'npm install printed no warning');
    t.true(existsSync(join(project, 'node_modules', 'kcpwatch', 'dist', 'index.js')));
    t.false(existsSync(join(project, 'node_modules', 'kcpwatch', binary)));

    const script = `
      const k = require('kcpwatch');
      (async () => {
        // The server closes once its side of the connection has seen the client leave, so the
        // records follow one order (a server closing first would linger the connection instead).
        const server = k.createServer({}, (c) => {
          c.on('message', (m) => c.send(m));
          c.on('close', () => server.close());
        });
        const { port } = await server.listen(0, '127.0.0.1');
        const client = k.connect({ host: '127.0.0.1', port, serverKey: server.publicKey });
        client.send('through the tarball');
        client.on('message', (m) => {
          console.log(m.toString());
          client.close();
        });
      })();`;
    const run = await runProcess(t, process.execPath, ['-e', script], { cwd: project, timeoutMs: 20_000 });
    t.is(run.code, 0, run.err);
    const lines = run.out.trim().split('\n');
    t.true(lines.includes('through the tarball'));
    // By default the server writes its security records to stdout as NDJSON, from its log thread.
    const all = lines.filter((l) => l !== 'through the tarball').map((l) => JSON.parse(l));
    // Another process on the shared loopback can send a stray datagram to the freshly bound
    // port (a retransmission meant for the port's last owner): the server rightly records it as
    // kcp:packet_dropped. Such records are about another peer, not this connection.
    const attempt = all.find((r) => r.name === 'kcp:connection_attempted');
    const stray = all.filter((r) => r.name === 'kcp:packet_dropped' && r.src_port !== attempt?.src_port);
    if (stray.length > 0) t.log(`ignored ${stray.length} record(s) of stray datagrams: ${JSON.stringify(stray)}`);
    const records = all.filter((r) => !stray.includes(r));
    t.deepEqual(
      records.map((r) => r.name),
      [
        'kcp:listener_started',
        'kcp:connection_attempted',
        'kcp:connection_state_updated',
        'kcp:connection_state_updated',
        'kcp:connection_established',
        'kcp:connection_state_updated',
        'kcp:connection_closed',
        'kcp:listener_stopped',
      ],
    );
    const cli = await runProcess(t, join(project, 'node_modules', '.bin', 'kcpwatch'), ['help'], { timeoutMs: 20_000 });
    t.regex(cli.out, /kcpwatch serve/);
  });
}

test.serial('without the platform package, require() says which package to install and which platforms are prebuilt', async (t) => {
  const { main, platform, work, cache } = await packed(t);
  const project = join(work, 'app-no-platform');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  await npm(t, 11, ['install', main.file], project, cache);
  const r = await runProcess(t, process.execPath, ['-e', "try { require('kcpwatch') } catch (e) { console.log(e.code); console.log(e.message); process.exit(3) }"], {
    cwd: project,
    timeoutMs: 20_000,
  });
  t.is(r.code, 3, r.out + r.err);
  const [code, message] = r.out.trim().split('\n');
  t.is(code, 'KCP_ERR_NATIVE_BINDING');
  t.true(message.includes(`npm install kcpwatch-${platform}`), message);
  t.regex(message, /--omit=optional/);
});

test.serial('the shipped docs and types name only files the package contains, or say the file is in the repository', async (t) => {
  const { main } = await packed(t);
  const shipped = new Set(main.files);
  const contains = (path) => shipped.has(path) || main.files.some((f) => f.startsWith(`${path.replace(/\/$/, '')}/`));
  const problems = [];
  const pathLike = /(?:`|\]\()((?:\.\.\/)*(?:src|bench|crates|interop|scripts|__test__|examples|\.ci|rules|schema|docs|npm|dist)\/[^`)\s#]*)/g;
  for (const file of main.files.filter((f) => f.endsWith('.md') || f.endsWith('.d.ts'))) {
    // A paragraph, list item or table (lines up to a blank line, or a comment block) may name a
    // file of the repository that the package leaves out, when it says that is where it is.
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    let blockStart = 0;
    lines.forEach((line, i) => {
      if (line.trim() === '' || /^\s*(\/\*\*|[-*] )/.test(line)) blockStart = i;
      for (const [, ref] of line.matchAll(pathLike)) {
        const target = ref.startsWith('../') ? normalize(join(dirname(file), ref)) : ref;
        if (contains(target.replace(/\/$/, ''))) continue;
        let blockEnd = i;
        while (blockEnd + 1 < lines.length && lines[blockEnd + 1].trim() !== '' && !/^\s*([-*] |\/\*\*)/.test(lines[blockEnd + 1])) blockEnd++;
        if (/\brepository\b/i.test(lines.slice(blockStart, blockEnd + 1).join(' '))) continue;
        problems.push(`${file}:${i + 1}: ${ref}`);
      }
    });
  }
  t.deepEqual(problems, [], 'each of these names a file the package does not contain');
});
