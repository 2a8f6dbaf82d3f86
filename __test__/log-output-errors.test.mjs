// A log output the native runtime cannot open when listen() starts it (a log file, or a CA file
// of a syslog+tls output, that passed createServer's checks) is a typed error naming the output,
// the path and the OS error: not KcpInternalError, which means a defect inside kcpwatch.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kcpwatch } from './helpers/util.mjs';

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'kcpwatch-output-error-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a log file path the runtime cannot open (a Unix socket) rejects listen() with KcpInvalidOptionError naming the output, the path and the OS error', async (t) => {
  const dir = tempDir(t);
  // open(2) of a socket fails (ENXIO); createServer's checks let it through as "not a regular file".
  const path = join(dir, 'events.sock');
  const unix = createNetServer();
  await new Promise((resolve) => unix.listen(path, resolve));
  t.teardown(() => new Promise((resolve) => unix.close(resolve)));
  const server = kcpwatch.createServer({ log: { destination: { file: path } } });
  t.teardown(() => server.close());
  const e = await t.throwsAsync(server.listen(0, '127.0.0.1'), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.is(e.code, 'KCP_ERR_INVALID_OPTION');
  t.true(e.message.includes(`file:${path}`), e.message);
  t.regex(e.message, /os error \d+/);
  t.notRegex(e.message, /runtime setup failed/);
  // Nothing was left bound or running: a good path listens.
  const good = kcpwatch.createServer({ log: { destination: { file: join(dir, 'events.ndjson') } } });
  t.teardown(() => good.close());
  await t.notThrowsAsync(good.listen(0, '127.0.0.1'));
});

test('a CA file removed between createServer and listen() rejects with KcpInvalidOptionError naming the output and the file', async (t) => {
  const dir = tempDir(t);
  const ca = join(dir, 'ca.pem');
  writeFileSync(ca, 'placeholder, checked to exist by createServer\n');
  const server = kcpwatch.createServer({ log: { destination: { syslog: 'tls://127.0.0.1:6514', caFile: ca } } });
  t.teardown(() => server.close());
  rmSync(ca);
  const e = await t.throwsAsync(server.listen(0, '127.0.0.1'), { instanceOf: kcpwatch.KcpInvalidOptionError });
  t.true(e.message.includes('syslog+tls://127.0.0.1:6514'), e.message);
  t.true(e.message.includes(ca), e.message);
  t.regex(e.message, /os error 2/);
});

test('a client whose log file cannot be opened fails with the same typed error', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'client.sock');
  const unix = createNetServer();
  await new Promise((resolve) => unix.listen(path, resolve));
  t.teardown(() => new Promise((resolve) => unix.close(resolve)));
  const failure = await (async () => {
    try {
      const client = kcpwatch.connect({ host: '127.0.0.1', port: 9, mode: 'raw', log: { destination: { file: path } } });
      t.teardown(() => client.close());
      client.on('error', () => undefined);
      await client.ready();
      return undefined;
    } catch (err) {
      return err;
    }
  })();
  t.true(failure instanceof kcpwatch.KcpInvalidOptionError, String(failure));
  t.true(String(failure?.message).includes(`file:${path}`), String(failure?.message));
});
