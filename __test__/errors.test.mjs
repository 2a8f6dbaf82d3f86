import test from 'ava';
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
