// Mutual TLS of the HTTPS outputs from JavaScript and from the CLI: a client certificate given
// as `certFile` / `keyFile` (API) or `--log-cert` / `--log-key` (kcpwatch serve) is presented to
// a local HTTPS collector that requires one, signed by a CA made for the test with openssl.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { kcpwatch, runProcess, startProcess } from './helpers/util.mjs';

const bin = fileURLToPath(new URL('../bin/kcpwatch.js', import.meta.url));

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in a fresh directory. */
async function pki(t) {
  const dir = await mkdtemp(join(tmpdir(), 'kcpwatch-mtls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = (name) => join(dir, name);
  const openssl = async (...args) => {
    const r = await runProcess(t, 'openssl', args, { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.err}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'];
  await openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-subj', '/CN=kcpwatch test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const leaf = (name, cn, usage, san) =>
    openssl('req', '-x509', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-subj', `/CN=${cn}`,
      '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', `extendedKeyUsage=${usage}`, ...(san ? ['-addext', `subjectAltName=${san}`] : []));
  await leaf('server', '127.0.0.1', 'serverAuth', 'IP:127.0.0.1');
  await leaf('client', 'kcpwatch-test-client', 'clientAuth');
  return { dir, ca: file('ca.pem'), serverCert: file('server.pem'), serverKey: file('server.key'), cert: file('client.pem'), key: file('client.key') };
}

/**
 * An HTTPS HEC collector on 127.0.0.1 that requires a client certificate from the CA. Resolves
 * each request's records and the client's certificate subject; `refused` counts handshakes
 * without a valid one.
 */
async function collector(t, p) {
  const events = [];
  const subjects = [];
  let refused = 0;
  const waiters = [];
  const server = createHttpsServer(
    { key: await readFile(p.serverKey), cert: await readFile(p.serverCert), ca: await readFile(p.ca), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        subjects.push(req.socket.getPeerCertificate().subject?.CN);
        for (const line of body.toString('utf8').split('\n').filter(Boolean)) events.push(JSON.parse(line).event);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"text":"Success","code":0}');
        for (const w of [...waiters]) if (w.match()) waiters.splice(waiters.indexOf(w), 1) && w.resolve();
      });
    },
  );
  server.on('tlsClientError', () => refused++);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const until = (match, ms = 15_000) =>
    new Promise((resolve, reject) => {
      if (match()) return resolve();
      const timer = setTimeout(() => reject(new Error(`collector: not seen within ${ms} ms (${events.length} events, ${refused} refused)`)), ms);
      waiters.push({ match, resolve: () => (clearTimeout(timer), resolve()) });
    });
  return { port: server.address().port, events, subjects, refused: () => refused, until };
}

test('an https output presents certFile/keyFile to a collector that requires a client certificate', async (t) => {
  const p = await pki(t);
  const c = await collector(t, p);
  const server = kcpwatch.createServer({
    log: {
      outputs: [{
        destination: { http: `https://127.0.0.1:${c.port}/services/collector/event`, kind: 'hec', token: 't0k3n', caFile: p.ca, certFile: p.cert, keyFile: p.key, batchDelayMs: 20 },
      }],
    },
  });
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  await c.until(() => c.events.some((e) => e.name === 'kcp:listener_started'));
  t.true(c.subjects.every((s) => s === 'kcpwatch-test-client'), c.subjects.join());
  t.is(c.refused(), 0);
});

test('the options refuse a client certificate that cannot be used', (t) => {
  const make = (destination) => () => kcpwatch.createServer({ log: { outputs: [{ destination }] } });
  const https = { http: 'https://127.0.0.1:9/services/collector/event', kind: 'hec', token: 't', caFile: '/nonexistent/ca.pem' };
  t.throws(make({ ...https, certFile: '/x.pem' }), { code: 'KCP_ERR_INVALID_OPTION', message: /certFile and keyFile go together/ });
  t.throws(make({ ...https, http: 'http://127.0.0.1:9/x', caFile: undefined, certFile: '/x.pem', keyFile: '/x.key' }), {
    code: 'KCP_ERR_INVALID_OPTION',
    message: /certFile needs an https URL/,
  });
});

test('kcpwatch serve --log hec+https://... --log-cert --log-key does mutual TLS', async (t) => {
  const p = await pki(t);
  const c = await collector(t, p);
  const { child } = startProcess(t, process.execPath, [
    bin, 'serve', '--host', '127.0.0.1', '--log', `hec+https://127.0.0.1:${c.port}`, '--syslog-ca', p.ca, '--log-cert', p.cert, '--log-key', p.key,
  ], { env: { ...process.env, KCPWATCH_HEC_TOKEN: 't0k3n' } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await c.until(() => c.events.some((e) => e.name === 'kcp:listener_started')).catch((e) => {
    throw new Error(`${e.message}\nstderr: ${stderr}`);
  });
  t.true(c.subjects.length > 0 && c.subjects.every((s) => s === 'kcpwatch-test-client'), c.subjects.join());
});

test('kcpwatch serve refuses --log-cert without --log-key', async (t) => {
  const r = await runProcess(t, process.execPath, [bin, 'serve', '--log', 'stdout', '--log-cert', '/x.pem'], { timeoutMs: 30_000 });
  t.not(r.code, 0);
  t.regex(r.err, /--log-cert and --log-key go together/);
});
