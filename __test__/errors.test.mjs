import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { kcpwatch } from './helpers/util.mjs';

const { errorFor, fromNative } = kcpwatch;

test('native errors map onto classes by their stable code', (t) => {
  const err = fromNative(new Error('[KCP_ERR_ADDR_IN_USE] cannot bind 127.0.0.1:1: in use (os error 98)'));
  t.true(err instanceof kcpwatch.KcpAddressInUseError);
  t.true(err instanceof kcpwatch.KcpError);
  t.is(err.code, 'KCP_ERR_ADDR_IN_USE');
  t.is(err.name, 'KcpAddressInUseError');
  t.regex(err.message, /os error 98/);
});

test('unknown codes keep their code; unstructured errors are internal', (t) => {
  t.is(fromNative(new Error('[KCP_ERR_SOMETHING_NEW] x')).code, 'KCP_ERR_SOMETHING_NEW');
  const internal = fromNative(new Error('plain'));
  t.true(internal instanceof kcpwatch.KcpInternalError);
  t.is(errorFor('KCP_ERR_QUEUE_FULL', 'm').name, 'KcpQueueFullError');
});

test('the shipped doc comments show the real way to refuse a client (rejectAuth), never a { reject } object', (t) => {
  const dist = new URL('../dist/', import.meta.url);
  const files = readdirSync(dist).filter((f) => f.endsWith('.d.ts'));
  t.true(files.includes('errors.d.ts'));
  for (const file of files) {
    const text = readFileSync(new URL(file, dist), 'utf8');
    t.false(/\{ ?reject: /.test(text), `${file} documents { reject: code }`);
  }
  const errors = readFileSync(new URL('errors.d.ts', dist), 'utf8');
  const doc = errors.slice(0, errors.indexOf('class KcpAuthRejectedError'));
  t.regex(doc.slice(doc.lastIndexOf('/**')), /rejectAuth\(/);
});

test('a refusal code from authenticate reaches the client as appCode; a { reject } object accepts (it is an identity)', async (t) => {
  const server = kcpwatch.createServer({
    log: false,
    authenticate: (token) => (token.toString() === 'refuse' ? kcpwatch.rejectAuth(4005) : { reject: 4005 }),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const refused = kcpwatch.connect({ log: false, host: '127.0.0.1', port, serverKey: server.publicKey, token: 'refuse' });
  t.teardown(() => refused.close());
  const e = await t.throwsAsync(refused.ready(), { instanceOf: kcpwatch.KcpAuthRejectedError });
  t.is(e.appCode, 4005);
  const accepted = kcpwatch.connect({ log: false, host: '127.0.0.1', port, serverKey: server.publicKey, token: 'x' });
  t.teardown(() => accepted.close());
  await t.notThrowsAsync(accepted.ready());
});
