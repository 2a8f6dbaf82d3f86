// The published shape: `npm pack` the main package and the per-platform package holding the
// locally built binary, install both tarballs into an empty project, and echo a message
// through the installed copy. The main tarball carries no binary, so this also proves the
// loader finds the platform package the way a user's install would.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('the packed package installs and echoes a message', async (t) => {
  const binary = readdirSync(root).find((f) => /^kcpwatch\..+\.node$/.test(f));
  t.truthy(binary, 'build the addon first (npm run build)');
  const platform = binary.slice('kcpwatch.'.length, -'.node'.length);
  const work = mkdtempSync(join(tmpdir(), 'kcpwatch-pack-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  const pack = (dir) => {
    const out = execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: dir, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    return { file: join(work, info.filename), files: info.files.map((f) => f.path) };
  };
  const main = pack(root);
  t.false(main.files.some((f) => f.endsWith('.node')), 'the main package ships no binary');
  t.true(main.files.includes('dist/index.js'));
  t.true(main.files.includes('native.js'));
  t.true(main.files.includes('bin/kcpwatch.js'));

  const platformDir = join(work, `platform-${platform}`);
  cpSync(join(root, 'npm', platform), platformDir, { recursive: true });
  cpSync(join(root, binary), join(platformDir, binary));
  const native = pack(platformDir);
  t.deepEqual(native.files.filter((f) => f.endsWith('.node')), [binary]);

  const project = join(work, 'app');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', main.file, native.file], { cwd: project, stdio: 'ignore' });
  t.true(existsSync(join(project, 'node_modules', 'kcpwatch', 'dist', 'index.js')));
  t.false(existsSync(join(project, 'node_modules', 'kcpwatch', binary)));

  const script = `
    const k = require('kcpwatch');
    (async () => {
      const server = k.createServer({}, (c) => c.on('message', (m) => c.send(m)));
      const { port } = await server.listen(0, '127.0.0.1');
      const client = k.connect({ host: '127.0.0.1', port });
      client.send('through the tarball');
      client.on('message', async (m) => {
        console.log(m.toString());
        client.close();
        await server.close();
      });
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: project, encoding: 'utf8', timeout: 20_000 });
  const lines = out.trim().split('\n');
  t.true(lines.includes('through the tarball'));
  // By default the server writes its security records to stdout as NDJSON, from its log thread.
  const records = lines.filter((l) => l !== 'through the tarball').map((l) => JSON.parse(l));
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
  const cli = execFileSync(join(project, 'node_modules', '.bin', 'kcpwatch'), ['help'], { encoding: 'utf8' });
  t.regex(cli, /kcpwatch serve/);
});
