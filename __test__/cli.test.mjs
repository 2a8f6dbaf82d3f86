import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { requireKcpgo, runKcpgo } from './helpers/kcpgo.mjs';
import { runProcess, startProcess } from './helpers/process.mjs';
import { kcpwatch, next } from './helpers/util.mjs';

const bin = fileURLToPath(new URL('../bin/kcpwatch.js', import.meta.url));

/**
 * Starts `kcpwatch serve`, ended by the test's teardown whatever happens; `line()` waits for a
 * line on its stderr (the listening line, close lines).
 */
function serve(t, args, env) {
  const { child, exited } = startProcess(t, process.execPath, [bin, 'serve', ...args], env ? { env: { ...process.env, ...env } } : {});
  const records = [];
  const recordWaiters = [];
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    stdout += d;
    const parts = stdout.split('\n');
    stdout = parts.pop();
    for (const line of parts) {
      const record = JSON.parse(line);
      records.push(record);
      for (const w of [...recordWaiters]) if (w.match(record)) {
        recordWaiters.splice(recordWaiters.indexOf(w), 1);
        w.resolve(record);
      }
    }
  });
  /** Resolves with the first security record on stdout that matches. */
  const record = (match, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const found = records.find(match);
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`no matching record; got:\n${records.map((r) => r.name).join('\n')}`)), ms);
      recordWaiters.push({ match, resolve: (r) => (clearTimeout(timer), resolve(r)) });
    });
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
  /** The exit, with what the server said on stderr when it was not a clean 0. */
  const stopped = async () => {
    const result = await exited;
    return { ...result, stderr: result.code === 0 ? '' : [...lines, stderr].join('\n') };
  };
  /** The current public key a secure server printed after its listening line (clients pin it). */
  const publicKey = async () => /^public-key (\S+) id [0-9a-f]{8}/.exec(await line(/^public-key /))[1];
  return { child, line, lines, record, records, exited, stopped, publicKey };
}

test('serve echoes, reports idle_timeout after the idle timeout, and stops on SIGTERM', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--mode', 'raw', '--preset', 'game', '--idle-timeout', '400']);
  const listening = await s.line(/^listening /);
  const [, host, port] = /^listening ([\d.]+):(\d+)$/.exec(listening);
  t.is(host, '127.0.0.1');
  const client = kcpwatch.connect({ host, port: Number(port), mode: 'raw' });
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
  if (!requireKcpgo(t)) return;
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--mode', 'raw']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const r = await runKcpgo(t, ['client', '--addr', `127.0.0.1:${port}`, '--count', '200', '--max-size', '1000']);
  t.is(r.code, 0, r.out + r.err);
  t.true(JSON.parse(r.out.trim()).ok);
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
});

test('serve writes the security records of a kcp-go client to stdout: real addresses, and byte counts that match the client', async (t) => {
  if (!requireKcpgo(t)) return;
  // Bound to the wildcard address: dst_ip must still be the address the client used.
  const s = serve(t, ['--port', '0', '--host', '0.0.0.0', '--mode', 'raw', '--idle-timeout', '1000', '--stats-interval', '0']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const started = await s.record((r) => r.name === 'kcp:listener_started');
  t.is(started.local_ip, '0.0.0.0');
  const r = await runKcpgo(t, ['client', '--addr', `127.0.0.1:${port}`, '--count', '100', '--max-size', '800', '--seed', '5', '--linger-ms', '300']);
  t.is(r.code, 0, r.out + r.err);
  const client = JSON.parse(r.out.trim().split('\n').at(-1));
  const [, clientPort] = /:(\d+)$/.exec(client.local);
  const established = await s.record((e) => e.name === 'kcp:connection_established' && e.conv === client.conv);
  t.is(established.src_ip, '127.0.0.1');
  t.is(established.src_port, Number(clientPort));
  t.is(established.dst_ip, '127.0.0.1');
  t.is(established.dst_port, Number(port));
  const closed = await s.record((e) => e.name === 'kcp:connection_closed' && e.uid === established.uid);
  t.is(closed.reason, 'idle_timeout');
  t.is(closed.initiator, 'local');
  // What the client's application sent is what the server received, and the other way round.
  t.is(closed.payload_bytes_received, client.bytes_sent);
  t.is(closed.payload_bytes_sent, client.bytes_received);
  // On the wire too (kcp-go counts every UDP byte of its only session; --linger-ms lets its
  // last ACKs leave before it closes its socket, or the server would retransmit into the void).
  t.is(closed.bytes_received, client.wire_bytes_sent);
  t.is(closed.bytes_sent, client.wire_bytes_received);
  t.is(closed.messages_received, 100);
  t.regex(closed.community_id, /^1:/);
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
  const stopped = s.records.at(-1);
  t.is(stopped.name, 'kcp:listener_stopped');
  // One per-listener sequence, no gaps: nothing was lost.
  t.deepEqual(
    s.records.map((e) => e.seq),
    s.records.map((_, i) => i),
  );
});

test('serve --log-format ecs --ip-privacy truncate writes ECS documents with truncated addresses', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--log-format', 'ecs', '--ip-privacy', 'truncate', '--stats-interval', '0']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: Number(port), serverKey: await s.publicKey(), log: false });
  t.teardown(() => client.close());
  client.send('ecs');
  await next(client, 'message');
  const doc = await s.record((d) => d.event?.action === 'connection_established');
  t.is(doc.source.ip, '127.0.0.0');
  t.is(doc.source.port, client.localPort);
  t.is(doc.destination.ip, '127.0.0.0');
  t.is(doc.kcp.ip_privacy, 'truncate');
  t.deepEqual(doc.event.category, ['network']);
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
});

test('serve --log: several sinks, each with its format and level', async (t) => {
  const { mkdtemp, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cef = join(dir, 'events.cef');
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--stats-interval', '0', '--log', 'stdout', '--log', `file:${cef},format=cef,level=notice`]);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const { createSocket } = await import('node:dgram');
  const stray = createSocket('udp4');
  await new Promise((resolve) => stray.send(Buffer.from('runt'), Number(port), '127.0.0.1', resolve));
  stray.close();
  await s.record((r) => r.name === 'kcp:packet_dropped');
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
  // stdout: canonical, every record; the CEF file: only notice and up, i.e. the drop.
  t.true(s.records.some((r) => r.name === 'kcp:listener_started'));
  const lines = (await readFile(cef, 'utf8')).split('\n').filter(Boolean);
  t.is(lines.length, 1);
  t.regex(lines[0], /^CEF:0\|kcpwatch\|kcpwatch\|[^|]+\|kcp:packet_dropped\|/);
});

test('serve --ip-privacy hmac without its key in the environment refuses to start', async (t) => {
  const s = serve(t, ['--port', '0', '--ip-privacy', 'hmac']);
  const { code } = await s.exited;
  t.is(code, 1);
});

test('serve --log hec+http://… without KCPWATCH_HEC_TOKEN refuses to start, saying where the token goes', async (t) => {
  const s = serve(t, ['--port', '0', '--log', 'hec+http://127.0.0.1:8088']);
  const { code, stderr } = await s.stopped();
  t.is(code, 1);
  t.regex(stderr, /KCPWATCH_HEC_TOKEN/);
});

test('serve rejects a bad preset with a clear message', async (t) => {
  const s = serve(t, ['--port', '0', '--preset', 'turbo']);
  const { code } = await s.exited;
  t.is(code, 1);
});

test('serve --metrics-port 0 serves Prometheus text on loopback whose counters match the run, and closes it on SIGTERM', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--stats-interval', '0', '--metrics-port', '0']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const [, metricsPort] = /^metrics http:\/\/127\.0\.0\.1:(\d+)\/metrics$/.exec(await s.line(/^metrics /));
  t.not(Number(metricsPort), 0, 'the real port is printed');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: Number(port), serverKey: await s.publicKey(), log: false });
  t.teardown(() => client.close());
  for (const text of ['one', 'two', 'three']) {
    client.send(text);
    await next(client, 'message');
  }
  const url = `http://127.0.0.1:${metricsPort}/metrics`;
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const body = await res.text();
  const sample = (name, labels = '') => {
    const re = new RegExp(`^${name}\\{listener="127\\.0\\.0\\.1:${port}"${labels ? `,${labels}` : ''}\\} (\\S+)$`, 'm');
    const m = re.exec(body);
    if (!m) throw new Error(`no ${name} ${labels} in\n${body}`);
    return Number(m[1]);
  };
  t.is(sample('kcpwatch_connections'), 1);
  t.is(sample('kcpwatch_connections_opened_total', 'direction="passive"'), 1);
  t.is(sample('kcpwatch_messages_received_total'), 3);
  t.is(sample('kcpwatch_messages_sent_total'), 3);
  t.is(sample('kcpwatch_payload_received_bytes_total'), 'onetwothree'.length);
  const established = s.records.filter((r) => r.name === 'kcp:connection_established').length;
  t.is(established, 1);
  t.regex(body, /^# TYPE kcpwatch_datagrams_dropped_total counter$/m);
  t.is((await fetch(`http://127.0.0.1:${metricsPort}/other`, { signal: AbortSignal.timeout(10_000) })).status, 404);
  t.is((await fetch(url, { method: 'POST', signal: AbortSignal.timeout(10_000) })).status, 405);
  // Loopback only: the wildcard address of another interface does not answer. (Only checked
  // where the host has a non-loopback IPv4 address.)
  const { networkInterfaces } = await import('node:os');
  const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
  if (external) {
    await t.throwsAsync(fetch(`http://${external.address}:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5_000) }));
  }
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
  await t.throwsAsync(fetch(url, { signal: AbortSignal.timeout(5_000) }), undefined, 'the metrics server closed with the rest');
});

test('serve --metrics-port rejects a port out of range', async (t) => {
  const s = serve(t, ['--port', '0', '--metrics-port', '70000']);
  const { code, stderr } = await s.stopped();
  t.is(code, 1);
  t.regex(stderr, /--metrics-port/);
});

test('demo: secure clients echo through the lossy relay while a wrong token and a flood are refused; exit 0', async (t) => {
  const { code, out } = await runProcess(t, process.execPath, [bin, 'demo'], { timeoutMs: 60_000 });
  t.is(code, 0, out);
  t.regex(out, /\(secure mode, tokens checked/);
  t.regex(out, /connection_established/);
  t.regex(out, /\[intruder\] token "guest" refused: KCP_ERR_AUTH_REJECTED/);
  t.regex(out, /kcp:connection_failed .*auth_rejected \(authenticate\)/);
  // The security records as the analyst sees them: lifecycle, refusals of the flood.
  t.regex(out, /\[event #0\] kcp:listener_started .*secure mode/);
  t.regex(out, /kcp:connection_closed .*peer_closed by remote/);
  t.regex(out, /kcp:packet_dropped .*unknown_connection/);
  t.regex(out, /kcp:connection_failed .*invalid_cookie \(cookie_mac\)/);
  const [, sent, answered] = /\[flood\] sent \d+ datagrams \((\d+) bytes\); the server answered the flooding sources with (\d+) bytes/.exec(out);
  t.true(Number(answered) <= Number(sent), `${answered} > ${sent}`);
  // Every session came through the relay (a player whose handshake replies were all lost may
  // need a second one, so the count is not fixed); none is left open.
  t.regex(out, /\[server\] stats connections=0 passive_opens=\d+ /);
  t.notRegex(out, /\[server\] connection_established .* src=127\.(?!0\.0\.1:)/);
  // The attack phase raises the detectors' alerts: the scanner by its address, the flood overall.
  const [, scanner] = /one scanner \(([\d.]+)\)/.exec(out);
  t.regex(out, new RegExp(`kcp:alert alert KCPW-004 \\(conv_scan_source\\).* from ${scanner.replaceAll('.', '\\.')}`));
  t.regex(out, /kcp:alert alert KCPW-002 \(handshake_flood_global\)/);
  t.regex(out, /kcp:alert alert KCPW-005 \(invalid_datagram_burst\)/);
  t.regex(out, /every message arrived exactly once, in order; the intruder and the flood opened nothing/);
});

test('bench --help runs the checkout\'s benchmark script and lists its scenarios', async (t) => {
  const { code, out } = await runProcess(t, process.execPath, [bin, 'bench', '--help'], { timeoutMs: 20_000 });
  t.is(code, 0);
  const only = /usage: npm run bench -- \[--quick\] \[--only ([a-z,-]+)\]/.exec(out);
  t.truthy(only, out);
  const listed = only[1].split(',');
  for (const name of ['events', 'echo', 'latency', 'logging', 'scale', 'secure', 'handshake', 'fec']) t.true(listed.includes(name), name);
});

test('bench with an unknown scenario fails before measuring anything', async (t) => {
  const { code, err } = await runProcess(t, process.execPath, [bin, 'bench', '--only', 'warp'], { timeoutMs: 20_000 });
  t.not(code, 0);
  t.regex(err, /unknown scenario warp; known: events, echo/);
});

const cli = (t, args, timeoutMs = 20_000) => runProcess(t, process.execPath, [bin, ...args], { timeoutMs });

test('--help and -h work on every command, show the defaults, and --version/-v print the version', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  for (const flag of ['--version', '-v']) {
    const r = await cli(t, [flag]);
    t.is(r.code, 0, flag);
    t.is(r.out, `${version}\n`, flag);
  }
  for (const flag of ['--help', '-h']) {
    const top = await cli(t, [flag]);
    t.is(top.code, 0);
    t.regex(top.out, /usage: kcpwatch <command>/);
    const serveHelp = await cli(t, ['serve', flag]);
    t.is(serveHelp.code, 0, serveHelp.err);
    t.regex(serveHelp.out, /--idle-timeout MS +close a connection .*\(default 30000\)/);
    t.regex(serveHelp.out, /--log-level LEVEL .*\(default info\)/);
    for (const f of ['--stream', '--rcv-wnd', '--snd-wnd', '--mtu']) t.true(serveHelp.out.includes(f), f);
    const demoHelp = await cli(t, ['demo', flag]);
    t.is(demoHelp.code, 0, demoHelp.err);
    t.regex(demoHelp.out, /--loss P .*\(default 0\.1\)/);
    const benchHelp = await cli(t, ['bench', flag]);
    t.is(benchHelp.code, 0, benchHelp.err);
    t.regex(benchHelp.out, /usage: npm run bench/);
  }
});

test("the README's CLI synopsis lists every flag of every command", (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### CLI'), readme.indexOf('## How it is built'));
  const { synopsis } = createRequire(import.meta.url)('../dist/cli.js');
  const flags = [...synopsis().matchAll(/--[a-z-]+/g)].map((m) => m[0]);
  t.true(flags.length > 20);
  for (const flag of flags) t.true(section.includes(`[${flag}`), flag);
});

test('a bad flag value is refused naming the flag, not the API option behind it', async (t) => {
  const cases = [
    [['serve', '--log-level', 'verbose'], /--log-level must be one of .*got verbose/, /log\.level/],
    [['serve', '--idle-timeout', '10s'], /--idle-timeout must be an integer/, /idleTimeout/],
    [['serve', '--rcv-wnd', '0'], /--rcv-wnd must be an integer in 1\.\.65535/, /rcvWnd/],
    [['serve', '--mtu', '30'], /--mtu must be an integer in 50\.\.65507/, /kcpwatch: mtu/],
    [['serve', '--mode', 'tls'], /--mode must be one of secure, raw/, /^kcpwatch: mode/m],
    [['serve', '--port', '4000x'], /--port must be an integer/, /^kcpwatch: port/m],
    [['serve', '--log', 'stdout,level=loud'], /--log stdout,level=loud: level must be one of/, /log\.outputs/],
    [['serve', '--bogus'], /Unknown option '--bogus' \(see kcpwatch serve --help\)/, /TypeError/],
  ];
  for (const [args, says, not] of cases) {
    const r = await cli(t, args);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.err, says, args.join(' '));
    t.notRegex(r.err, not, args.join(' '));
  }
});

test('demo --loss 2, --clients 0 and friends are refused at once with a clear error, never a hang', async (t) => {
  for (const [args, says] of [
    [['--loss', '2'], /--loss must be a probability in 0\.\.0\.5/],
    [['--loss', '1'], /--loss must be a probability/],
    [['--loss', 'lots'], /--loss must be a probability/],
    [['--clients', '0'], /--clients must be an integer in 1\.\.100, got 0/],
    [['--messages=-5'], /--messages must be an integer/],
    [['--flood', '1.5'], /--flood must be an integer/],
  ]) {
    const started = Date.now();
    const r = await cli(t, ['demo', ...args], 10_000);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.err, says, args.join(' '));
    t.true(Date.now() - started < 10_000);
  }
});

test('a bind failure says its OS error once', async (t) => {
  const holderServer = kcpwatch.createServer({ log: false });
  t.teardown(() => holderServer.close());
  const holder = await holderServer.listen(0, '127.0.0.1');
  const s = serve(t, ['--port', String(holder.port), '--host', '127.0.0.1', '--log-format', 'none']);
  const { code, stderr } = await s.stopped();
  t.is(code, 1);
  t.regex(stderr, /Address already in use/);
  t.is(stderr.match(/\(os error \d+\)/g)?.length, 1, stderr);
});

test('serve --stream --rcv-wnd --snd-wnd --mtu: the engine runs with them (for interop tests) and echoes a 200 KB stream', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--mode', 'raw', '--stream', '--rcv-wnd', '64', '--snd-wnd', '48', '--mtu', '576', '--stats-interval', '0']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  const started = await s.record((r) => r.name === 'kcp:listener_started');
  t.like(started, { kcp_stream: true, kcp_rcv_wnd: 64, kcp_snd_wnd: 48, kcp_mtu: 576 });
  const client = kcpwatch.connect({ host: '127.0.0.1', port: Number(port), mode: 'raw', stream: true, rcvWnd: 64, sndWnd: 48, mtu: 576 });
  t.teardown(() => client.close());
  const sent = Buffer.alloc(200 * 1024);
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 31) & 0xff;
  client.send(sent);
  const chunks = [];
  let got = 0;
  for await (const chunk of client) {
    chunks.push(Buffer.from(chunk));
    got += chunk.length;
    if (got >= sent.length) break;
  }
  t.true(Buffer.concat(chunks).equals(sent));
  // Message mode with a small window: the echo server lowers its ceiling instead of refusing to start.
  const m = serve(t, ['--port', '0', '--host', '127.0.0.1', '--mode', 'raw', '--rcv-wnd', '8', '--log-format', 'none']);
  await m.line(/^listening /);
  m.child.kill('SIGTERM');
  t.is((await m.exited).code, 0);
  s.child.kill('SIGTERM');
  t.is((await s.exited).code, 0);
});

// --- Secure mode's server keys: keygen, --key-file, KCPWATCH_SERVER_KEY, rotation ----------

async function tempDir(t) {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return (name) => join(dir, name);
}

/** `kcpwatch keygen` output as { privateKey?, publicKey, publicKeyHex, keyId }. */
function parseKeygen(out) {
  const field = (name) => new RegExp(`^${name} (\\S+)$`, 'm').exec(out)?.[1];
  return { privateKey: field('private-key'), publicKey: field('public-key'), publicKeyHex: field('public-key-hex'), keyId: field('key-id') };
}

async function echoOnce(t, port, serverKey) {
  const client = kcpwatch.connect({ host: '127.0.0.1', port: Number(port), serverKey, log: false });
  t.teardown(() => client.close());
  client.send('pinned');
  const [m] = await next(client, 'message');
  return m.toString();
}

test('keygen --out FILE writes the private key 0600 and FILE.pub, prints the public key, and never overwrites', async (t) => {
  const { readFile, stat } = await import('node:fs/promises');
  const path = await tempDir(t);
  const file = path('server.key');
  const r = await cli(t, ['keygen', '--out', file]);
  t.is(r.code, 0, r.err);
  const printed = parseKeygen(r.out);
  t.is(printed.privateKey, undefined, 'the private key goes to the file only');
  t.regex(printed.publicKey, /^[A-Za-z0-9+/]{43}=$/);
  t.is(Buffer.from(printed.publicKeyHex, 'hex').toString('base64'), printed.publicKey);
  t.regex(printed.keyId, /^[0-9a-f]{8}$/);
  t.is((await stat(file)).mode & 0o777, 0o600);
  const privateKey = (await readFile(file, 'utf8')).trim();
  t.is((await readFile(`${file}.pub`, 'utf8')).trim(), printed.publicKey);
  t.false(r.out.includes(privateKey) || r.err.includes(privateKey), 'the private key is not printed');
  // The private key in the file is the public key's pair.
  const fromFile = kcpwatch.createServer({ log: false, keyFile: file });
  await fromFile.listen(0, '127.0.0.1');
  t.is(fromFile.publicKey, printed.publicKey);
  await fromFile.close();
  const again = await cli(t, ['keygen', '--out', file]);
  t.is(again.code, 1);
  t.regex(again.err, /exists; keygen never overwrites/);
  t.is((await readFile(file, 'utf8')).trim(), privateKey, 'the key is untouched');
  // Without --out, both keys are printed.
  const bare = parseKeygen((await cli(t, ['keygen'])).out);
  t.regex(bare.privateKey, /^[A-Za-z0-9+/]{43}=$/);
  t.not(bare.publicKey, printed.publicKey);
});

test('serve --key-file: the key keygen wrote; clients pinning its public key connect, and the private key is never printed', async (t) => {
  const path = await tempDir(t);
  const file = path('server.key');
  const { publicKey } = parseKeygen((await cli(t, ['keygen', '--out', file])).out);
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--stats-interval', '0', '--key-file', file]);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  t.is(await s.publicKey(), publicKey);
  t.false((await s.line(/^public-key /)).includes('ephemeral'));
  t.is(await echoOnce(t, port, publicKey), 'pinned');
  const established = await s.record((r) => r.name === 'kcp:connection_established');
  t.like(established, { protocol_version: 2, cipher_suite: 'Noise_NK_25519_ChaChaPoly_BLAKE2s' });
  t.regex(established.server_key_id, /^[0-9a-f]{8}$/);
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
  const { readFile } = await import('node:fs/promises');
  const privateKey = (await readFile(file, 'utf8')).trim();
  const everything = `${s.lines.join('\n')}\n${JSON.stringify(s.records)}`;
  t.false(everything.includes(privateKey));
  t.false(everything.includes(Buffer.from(privateKey, 'base64').toString('hex')));
});

test('serve holds two keys for a rotation (--key-file A --key-file B, or KCPWATCH_SERVER_KEY A,B): the first is current, clients of either connect', async (t) => {
  const path = await tempDir(t);
  const [current, previous] = [path('new.key'), path('old.key')];
  const newKey = parseKeygen((await cli(t, ['keygen', '--out', current])).out);
  const oldKey = parseKeygen((await cli(t, ['keygen', '--out', previous])).out);
  const { readFile } = await import('node:fs/promises');
  const privateOf = async (f) => (await readFile(f, 'utf8')).trim();
  const runs = [
    [['--key-file', current, '--key-file', previous], undefined],
    [[], { KCPWATCH_SERVER_KEY: `${await privateOf(current)},${Buffer.from(await privateOf(previous), 'base64').toString('hex')}` }],
  ];
  for (const [flags, env] of runs) {
    const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--stats-interval', '0', ...flags], env);
    const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
    t.is(await s.publicKey(), newKey.publicKey, 'the first key is the current one');
    t.regex(await s.line(new RegExp(`^public-key ${oldKey.publicKey.replace(/[+/]/g, '\\$&')} id ${oldKey.keyId} \\(previous`)), /still accepted/);
    t.is(await echoOnce(t, port, oldKey.publicKey), 'pinned');
    t.is(await echoOnce(t, port, newKey.publicKeyHex), 'pinned');
    const ids = () => s.records.filter((r) => r.name === 'kcp:connection_established').map((r) => r.server_key_id).sort();
    await s.record((r) => r.name === 'kcp:connection_established' && ids().length === 2);
    t.deepEqual(ids(), [newKey.keyId, oldKey.keyId].sort(), 'the records say which key each client used');
    s.child.kill('SIGTERM');
    t.like(await s.stopped(), { code: 0, signal: null, stderr: '' });
  }
});

test('serve without a key makes an ephemeral one and says so; key misuse is refused at once', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--stats-interval', '0']);
  const [, , port] = /^listening ([\d.]+):(\d+)$/.exec(await s.line(/^listening /));
  t.regex(await s.line(/^public-key /), /^public-key \S+ id [0-9a-f]{8} \(ephemeral/);
  t.is(await echoOnce(t, port, await s.publicKey()), 'pinned');
  s.child.kill('SIGTERM');
  t.like(await s.stopped(), { code: 0 });
  const path = await tempDir(t);
  const cases = [
    [['--key-file', path('missing.key')], undefined, /cannot read key file .*missing\.key: ENOENT/],
    [['--mode', 'raw', '--key-file', path('missing.key')], undefined, /secure mode/],
    [[], { KCPWATCH_SERVER_KEY: 'not-a-key' }, /KCPWATCH_SERVER_KEY key 1 must be a 32-byte key/],
    [['--key-file', path('a')], { KCPWATCH_SERVER_KEY: kcpwatch.generateKeyPair().privateKey.toString('base64') }, /not both/],
  ];
  for (const [flags, env, message] of cases) {
    const bad = serve(t, ['--port', '0', '--host', '127.0.0.1', ...flags], env);
    const { code, stderr } = await bad.stopped();
    t.is(code, 1, flags.join(' '));
    t.regex(stderr, message);
    t.false(stderr.includes('not-a-key'), 'a bad key is never echoed');
  }
});

test('negative numbers, a too-small secure --mtu, a repeated sink and a missing log directory are refused at once with the flag named', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const missing = join(dir, 'no', 'such', 'sec.log');
  for (const [args, says] of [
    [['serve', '--port', '-1'], /--port must be an integer in 0\.\.65535, got -1/],
    [['serve', '--rcv-wnd', '-5'], /--rcv-wnd must be an integer in 1\.\.65535, got -5/],
    [['demo', '--loss', '-0.1'], /--loss must be a probability in 0\.\.0\.5 .*got -0\.1/],
    [['demo', '--clients', '-3'], /--clients must be an integer in 1\.\.100, got -3/],
    [['serve', '--mtu', '54'], /--mtu must be at least 79 in secure mode .*got 54/],
    [['serve', '--log', 'stdout', '--log', 'stdout'], /--log: stdout is given twice/],
    [['serve', '--log', 'file:/tmp/a.log', '--log', 'file:/tmp/a.log,format=ecs'], /--log: file:\/tmp\/a\.log is given twice/],
    [['serve', '--port', '1', '--port', '2'], /--port is given twice/],
    [['serve', '--log-file', missing], new RegExp(`--log-file ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*does not exist`)],
    [['serve', '--log-file', dir], /--log-file .*: .*is a directory/],
  ]) {
    const r = await cli(t, args, 10_000);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.err, says, args.join(' '));
    t.notRegex(r.err, /ambiguous/, args.join(' '));
  }
});

test('keygen --out given twice is refused and writes nothing', async (t) => {
  const { mkdtemp, readdir, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const r = await cli(t, ['keygen', '--out', join(dir, 'a'), '--out', join(dir, 'b')]);
  t.is(r.code, 1);
  t.regex(r.err, /--out is given twice/);
  t.deepEqual(await readdir(dir), []);
});

test('serve --log, --log-file and the sink files: a bad value is refused naming the flag the user typed, never log.outputs', async (t) => {
  for (const [args, says] of [
    [['serve', '--log', 'file:'], /--log file: needs a path \(file:PATH\)/],
    [['serve', '--log', 'file:,format=ecs'], /--log file:,format=ecs needs a path \(file:PATH\)/],
    [['serve', '--log-file', ''], /--log-file needs a path/],
    [['serve', '--log', 'syslog+udp://nothost:514'], /--log syslog\+udp:\/\/nothost:514: .*IP:PORT/],
    [['serve', '--log', 'syslog+tls://127.0.0.1:6514'], /--log syslog\+tls:\/\/127\.0\.0\.1:6514: .*needs --syslog-ca/],
    [['serve', '--syslog-ca', '/nonexistent/ca.pem', '--log', 'syslog+tls://127.0.0.1:6514'], /--syslog-ca \/nonexistent\/ca\.pem: does not exist/],
    [['serve', '--log', 'elastic+http://'], /--log elastic\+http:\/\/: .*URL/],
    [['serve', '--log', 'otlp+https://127.0.0.1:4318'], /--log otlp\+https:\/\/127\.0\.0\.1:4318: .*needs --syslog-ca/],
    [['serve', '--log', 'stdout,format'], /--log stdout,format: format needs a value/],
  ]) {
    const r = await cli(t, args, 10_000);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.err, says, args.join(' '));
    t.notRegex(r.err, /log\.outputs|log\.destination|Invalid URL/, args.join(' '));
  }
});

test('serve echoes datagrams in secure mode, on the channel they came on', async (t) => {
  const s = serve(t, ['--port', '0', '--host', '127.0.0.1', '--log-format', 'none']);
  const [, port] = /^listening [\d.]+:(\d+)$/.exec(await s.line(/^listening /));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: Number(port), serverKey: await s.publicKey(), log: false });
  t.teardown(() => client.close());
  await client.ready();
  // Datagrams are unreliable: resend (a bounded number of times) until one echo is back.
  const echoed = new Promise((resolve) => client.once('datagram', (data, channel) => resolve([data.toString(), channel])));
  let sent = 0;
  client.sendDatagram('ping', { channel: 7 });
  const timer = setInterval(() => {
    if (++sent < 50) client.sendDatagram('ping', { channel: 7 });
  }, 100);
  t.teardown(() => clearInterval(timer));
  let timeout;
  const gaveUp = new Promise((resolve) => (timeout = setTimeout(resolve, 10_000, ['no echo within 10 s', -1])));
  const [data, channel] = await Promise.race([echoed, gaveUp]);
  clearTimeout(timeout);
  clearInterval(timer);
  t.is(data, 'ping');
  t.is(channel, 7);
  // Reliable messages still echo alongside.
  client.send('hello');
  const [m] = await next(client, 'message');
  t.is(m.toString(), 'hello');
});
