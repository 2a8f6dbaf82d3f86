import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildKcpgo, runKcpgo } from './helpers/kcpgo.mjs';
import { kcpwatch, next } from './helpers/util.mjs';

const bin = fileURLToPath(new URL('../bin/kcpwatch.js', import.meta.url));

/** Starts `kcpwatch serve` and resolves with its address once it prints the listening line. */
function serve(args) {
  const child = spawn(process.execPath, [bin, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const lines = [];
  const waiters = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    const parts = stderr.split('\n');
    stderr = parts.pop();
    for (const line of parts) {
      lines.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const line = (re, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const found = lines.find((l) => re.test(l));
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`no line matching ${re}; got:\n${lines.join('\n')}`)), ms);
      waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, line, exited };
}

test('serve echoes, reports idle_timeout after the idle timeout, and stops on SIGTERM', async (t) => {
  const s = serve(['--port', '0', '--host', '127.0.0.1', '--mode', 'raw', '--preset', 'game', '--idle-timeout', '400']);
  const listening = await s.line(/^listening /);
  const [, host, port] = /^listening ([\d.]+):(\d+)$/.exec(listening);
  t.is(host, '127.0.0.1');
  const client = kcpwatch.connect({ host, port: Number(port) });
  client.send('ping');
  const [echo] = await next(client, 'message');
  t.is(echo.toString(), 'ping');
  client.close();
  const closeLine = await s.line(/^close /);
  t.regex(closeLine, /reason=idle_timeout/);
  t.regex(closeLine, /messages_in=1 messages_out=1/);
  s.child.kill('SIGTERM');
  const { code } = await s.exited;
  t.is(code, 0);
});

test('serve echoes to a plain KCP client (kcp-go)', async (t) => {
  buildKcpgo();
  const s = serve(['--port', '0', '--host', '127.0.0.1', '--mode', 'raw']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const r = await runKcpgo(['client', '--addr', `127.0.0.1:${port}`, '--count', '200', '--max-size', '1000']);
  t.is(r.code, 0, r.out + r.err);
  t.true(JSON.parse(r.out.trim()).ok);
  s.child.kill('SIGTERM');
  t.is((await s.exited).code, 0);
});

test('serve rejects a bad preset with a clear message', async (t) => {
  const s = serve(['--port', '0', '--preset', 'turbo']);
  const { code } = await s.exited;
  t.is(code, 1);
});

test('demo runs through the lossy relay and ends by itself with exit 0', async (t) => {
  const child = spawn(process.execPath, [bin, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  t.is(code, 0, out);
  t.regex(out, /connection_established/);
  t.regex(out, /reason=idle_timeout/);
  t.regex(out, /every message arrived exactly once, in order/);
});
