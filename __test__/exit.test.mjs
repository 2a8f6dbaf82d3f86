// The process must exit cleanly with servers and connections still open: an environment
// cleanup hook stops and joins every I/O thread (a producer thread alive at teardown aborts
// Node). Each case runs in a child process and checks its exit status and signal.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runProcess } from './helpers/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(t, script) {
  return runProcess(t, process.execPath, ['-e', script], { cwd: root, timeoutMs: 20_000 });
}

const openEverything = `
const k = require('./index.js');
(async () => {
  const server = k.createServer({}, (c) => c.on('message', (m) => c.send(m)));
  const { port } = await server.listen(0, '127.0.0.1');
  const clients = [];
  for (let i = 0; i < 5; i++) {
    const c = k.connect({ host: '127.0.0.1', port, serverKey: server.publicKey });
    for (let j = 0; j < 100; j++) c.send(Buffer.alloc(500, j));
    clients.push(c);
  }
  await new Promise((r) => clients[4].once('message', r));
  console.log('busy');
  EXIT
})();
`;

test('process.exit() with an open server and busy connections exits cleanly', async (t) => {
  const r = await run(t, openEverything.replace('EXIT', 'process.exit(0);'));
  t.is(r.signal, null, r.err);
  t.is(r.code, 0, r.err);
  t.true(r.out.includes('busy'));
});

test('an uncaught exception with open endpoints exits with its own code, not an abort', async (t) => {
  const r = await run(t, openEverything.replace('EXIT', "setImmediate(() => { throw new Error('boom'); });"));
  t.is(r.signal, null, r.err);
  t.is(r.code, 1);
  t.true(r.err.includes('boom'));
});

test('a worker thread that exits with open endpoints does not take the process down', async (t) => {
  const script = `
const { Worker } = require('node:worker_threads');
const w = new Worker(${JSON.stringify(openEverything.replace('EXIT', "require('node:worker_threads').parentPort.postMessage('ready');"))}, { eval: true });
w.on('message', async () => { await w.terminate(); console.log('worker gone'); });
w.on('exit', () => setTimeout(() => console.log('parent alive'), 50));
`;
  const r = await run(t, script);
  t.is(r.signal, null, r.err);
  t.is(r.code, 0, r.err);
  t.true(r.out.includes('worker gone'));
  t.true(r.out.includes('parent alive'));
});

test('an unref()ed server lets the process exit by itself', async (t) => {
  const r = await run(t, `
const k = require('./index.js');
const server = k.createServer();
server.listen(0, '127.0.0.1').then(() => { server.unref(); console.log('unrefed'); });
`);
  t.is(r.code, 0, r.err);
  t.true(r.out.includes('unrefed'));
});
