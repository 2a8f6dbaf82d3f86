// A client to a UDP port where nothing listens (issue #15): in secure mode the ICMP "port
// unreachable" reports for the first HELLO and its retransmission end the attempt as
// `KcpUnreachableError`, long before the handshake timeout; in raw mode (no handshake) the
// connection is open at once and ends as `dead_link` once the reports go on
// (docs/security.md, "ICMP during the handshake"). The sans-IO rules are in
// crates/kcpwatch-proto/tests/handshake_unreachable.rs.
import test from 'ava';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';

import { EventLog, closedPort, kcpwatch, next } from './helpers/util.mjs';

const quiet = { destination: 'none', sampleBurst: 1000 };

test('connect() in secure mode to a closed port rejects with KcpUnreachableError, not the handshake timeout', async (t) => {
  const port = await closedPort();
  const log = new EventLog();
  const started = process.hrtime.bigint();
  // The default handshake timeout (10 s): the ICMP path must be what ends the attempt.
  const c = kcpwatch.connect({ host: '127.0.0.1', port, serverKey: kcpwatch.generateKeyPair().publicKey, log: { ...quiet, onEvent: log.push } });
  t.teardown(() => c.close());
  const onError = next(c, 'error');
  const error = await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpUnreachableError, code: 'KCP_ERR_UNREACHABLE' });
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  t.log(`KcpUnreachableError after ${elapsedMs.toFixed(0)} ms (handshake timeout: 10000 ms)`);
  t.false(error instanceof kcpwatch.KcpHandshakeTimeoutError);
  t.regex(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*unreachable`));
  const [emitted] = await onError;
  t.is(emitted.code, 'KCP_ERR_UNREACHABLE');
  t.is(c.state, 'closed');
  t.is(c.closeInfo.reason, 'connect_failed');
  const failed = await log.waitFor((e) => e.name === 'kcp:connection_failed', 5000, 'the connection_failed record');
  t.like(failed, { reason: 'unreachable', rule: 'icmp_unreachable', direction: 'outbound', dst_port: port });
  t.is(failed.trigger, undefined);
});

test('a KcpUnreachableError is a KcpError with a stable code in KcpErrorCode', (t) => {
  const e = new kcpwatch.KcpUnreachableError('x');
  t.true(e instanceof kcpwatch.KcpError);
  t.is(e.code, 'KCP_ERR_UNREACHABLE');
  t.is(kcpwatch.KcpUnreachableError.code, 'KCP_ERR_UNREACHABLE');
});

test('a raw client to a closed port opens at once and ends as dead_link while its data goes unacknowledged', async (t) => {
  const port = await closedPort();
  const log = new EventLog();
  const c = kcpwatch.connect({ host: '127.0.0.1', port, mode: 'raw', idleTimeout: 900, log: { ...quiet, onEvent: log.push } });
  t.teardown(() => c.close());
  await c.ready();
  const closed = next(c, 'close');
  // Retransmissions keep drawing ICMP reports: three of them over a third of the idle timeout.
  c.send('anyone?');
  const [reason] = await closed;
  t.is(reason, 'dead_link');
  const record = await log.waitFor((e) => e.name === 'kcp:connection_closed', 5000, 'the close record');
  t.is(record.reason, 'dead_link');
});

test('over IPv6 the error names the server as [address]:port', async (t) => {
  const socket = createSocket('udp6');
  socket.bind(0, '::1');
  await once(socket, 'listening');
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  const c = kcpwatch.connect({ host: '::1', port, serverKey: kcpwatch.generateKeyPair().publicKey, log: false });
  t.teardown(() => c.close());
  c.on('error', () => {});
  const error = await t.throwsAsync(c.ready(), { instanceOf: kcpwatch.KcpUnreachableError });
  t.true(error.message.startsWith(`[::1]:${port} is unreachable`), error.message);
});
