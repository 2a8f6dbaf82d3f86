import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { kcpwatch, require } from './helpers/util.mjs';

const { errorFor, fromNative } = kcpwatch;

const { errorCodes } = require('../../dist/generated/error-codes.js');
const native = require('../../native.js');

/** An error as the addon throws it: the stable code is its `code` property. */
const nativeError = (code, message) => Object.assign(new Error(message), { code });

test('native errors map onto classes by their code property', (t) => {
  const err = fromNative(nativeError('KCP_ERR_ADDR_IN_USE', 'cannot bind 127.0.0.1:1: in use (os error 98)'));
  t.true(err instanceof kcpwatch.KcpAddressInUseError);
  t.true(err instanceof kcpwatch.KcpError);
  t.is(err.code, 'KCP_ERR_ADDR_IN_USE');
  t.is(err.name, 'KcpAddressInUseError');
  t.is(err.message, 'cannot bind 127.0.0.1:1: in use (os error 98)');
});

test('unknown codes keep their code; napi failures and unstructured errors are internal', (t) => {
  t.is(fromNative(nativeError('KCP_ERR_SOMETHING_NEW', 'x')).code, 'KCP_ERR_SOMETHING_NEW');
  for (const thrown of [new Error('plain'), nativeError('InvalidArg', 'plain'), nativeError('constructor', 'plain')]) {
    const internal = fromNative(thrown);
    t.true(internal instanceof kcpwatch.KcpInternalError);
    t.is(internal.message, 'plain');
  }
  // The message is never parsed: a bracketed prefix is just text now.
  t.true(fromNative(new Error('[KCP_ERR_CLOSED] x')) instanceof kcpwatch.KcpInternalError);
  t.is(errorFor('KCP_ERR_QUEUE_FULL', 'm').name, 'KcpQueueFullError');
});

test('every code of the Rust ErrorCode list has its exported class, and every class a listed code', (t) => {
  const codes = Object.keys(errorCodes);
  t.true(codes.length >= 28, codes.join());
  for (const code of codes) {
    t.regex(errorCodes[code], /\S/, `${code} has its doc line`);
    const err = errorFor(code, 'm');
    t.is(err.code, code);
    t.true(err instanceof kcpwatch.KcpError);
    if (code === 'KCP_ERR_GENERIC') {
      t.is(err.constructor, kcpwatch.KcpError);
      continue;
    }
    t.is(kcpwatch[err.name], err.constructor, `${code}: ${err.name} is exported`);
    t.is(err.constructor.code, code);
  }
  const classes = Object.values(kcpwatch).filter((v) => typeof v === 'function' && v.prototype instanceof kcpwatch.KcpError);
  t.is(classes.length, codes.length - 1);
  for (const cls of classes) t.true(Object.hasOwn(errorCodes, cls.code), cls.name);
});

// Through the real addon: the code is a property of what it throws, the message is the text.
test('a port bound twice: KcpAddressInUseError whose native cause carries the code, not a prefix', async (t) => {
  const holder = kcpwatch.createServer({ log: false });
  t.teardown(() => holder.close());
  const { port } = await holder.listen(0, '127.0.0.1');
  const second = kcpwatch.createServer({ log: false });
  t.teardown(() => second.close());
  const err = await t.throwsAsync(second.listen(port, '127.0.0.1'), { instanceOf: kcpwatch.KcpAddressInUseError });
  t.is(err.code, 'KCP_ERR_ADDR_IN_USE');
  t.is(err.cause.code, 'KCP_ERR_ADDR_IN_USE');
  t.regex(err.message, new RegExp(`^cannot bind 127\\.0\\.0\\.1:${port}: [^\\n]+ \\(os error \\d+\\)$`));
  t.is(err.message.match(/os error/g).length, 1, 'the OS error number once');
  t.is(err.cause.message, err.message);
  t.is(err.cause.securityRecord, undefined, 'no record without logging');
});

test('a bind failure with logging on carries its kcp:error record as a property, out of the message', async (t) => {
  const holder = kcpwatch.createServer({ log: false });
  t.teardown(() => holder.close());
  const { port } = await holder.listen(0, '127.0.0.1');
  const second = kcpwatch.createServer({ log: { destination: { file: '/dev/null' } } });
  t.teardown(() => second.close());
  const err = await t.throwsAsync(second.listen(port, '127.0.0.1'), { instanceOf: kcpwatch.KcpAddressInUseError });
  t.false(err.message.includes('\n'), err.message);
  t.like(JSON.parse(err.cause.securityRecord), { name: 'kcp:error', error_code: 'EADDRINUSE', local_port: port });
});

test('an address of no interface here: KcpAddressNotAvailableError', async (t) => {
  // TEST-NET-1 (RFC 5737): on no interface of a test machine; bind fails before any packet.
  const server = kcpwatch.createServer({ log: false });
  t.teardown(() => server.close());
  const err = await t.throwsAsync(server.listen(0, '192.0.2.1'), { instanceOf: kcpwatch.KcpAddressNotAvailableError });
  t.is(err.cause.code, 'KCP_ERR_ADDR_NOT_AVAILABLE');
  t.regex(err.message, /^cannot bind 192\.0\.2\.1:0: /);
});

test('the addon refuses an option with code KCP_ERR_INVALID_OPTION, mapped to KcpInvalidOptionError', (t) => {
  const thrown = t.throws(() => native.keyPairFromPrivate(Buffer.alloc(3)));
  t.is(thrown.code, 'KCP_ERR_INVALID_OPTION');
  t.is(thrown.message, 'a server private key is 32 bytes, got 3');
  const err = fromNative(thrown);
  t.true(err instanceof kcpwatch.KcpInvalidOptionError);
  t.is(err.message, thrown.message);
});

test('a closed native endpoint refuses with code KCP_ERR_CLOSED, mapped to KcpClosedError', async (t) => {
  const server = kcpwatch.createServer({ log: false });
  await server.listen(0, '127.0.0.1');
  const endpoint = server.transport.native;
  await server.close();
  const thrown = t.throws(() => endpoint.connectionStats(0));
  t.is(thrown.code, 'KCP_ERR_CLOSED');
  t.is(thrown.message, 'the endpoint is closed');
  t.true(fromNative(thrown) instanceof kcpwatch.KcpClosedError);
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
