// Options that reach the addon as structured values (issue #17): TypeScript splits a syslog URL
// into transport, address and port, an allow-list entry into address and prefix, and names
// formats, levels, privacy modes and rules by the addon's enums. What the native side used to
// refuse at listen() (a URL or network it could not parse) is refused by createServer(), with
// the same error code; what is good still reaches the right place.

import test from 'ava';
import { createSocket } from 'node:dgram';

import { kcpwatch, next } from './helpers/util.mjs';

const invalid = { instanceOf: kcpwatch.KcpInvalidOptionError, code: 'KCP_ERR_INVALID_OPTION' };

test('a syslog URL the native side cannot take is refused by createServer, naming the option', (t) => {
  const bad = [
    'udp//127.0.0.1:514',
    'http://127.0.0.1:514',
    'udp://localhost:514',
    'udp://127.0.0.1',
    'udp://127.0.0.1:0',
    'udp://127.0.0.1:65536',
    // Brackets are for IPv6 only; isIP takes the address inside, the native parser did not.
    'tcp://[127.0.0.1]:514',
    // A zone index: isIP takes it, the native parser did not.
    'tcp://[fe80::1%eth0]:514',
  ];
  for (const syslog of bad) {
    const e = t.throws(() => kcpwatch.createServer({ log: { destination: { syslog } } }), invalid, syslog);
    t.is(e.message, `log.destination.syslog must be udp://IP:PORT, tcp://IP:PORT or tls://IP:PORT, got ${syslog}`);
    t.throws(() => kcpwatch.createServer({ log: { outputs: [{ destination: { syslog } }] } }), { ...invalid, message: /^log\.outputs\[0\]\.syslog must be/ }, syslog);
  }
  for (const syslog of ['udp://127.0.0.1:514', 'tcp://[::1]:6514', 'udp://[2001:db8::1]:1']) {
    t.notThrows(() => kcpwatch.createServer({ log: { destination: { syslog } } }), syslog);
  }
});

test('a syslog output with certFile and no keyFile is refused by createServer, as an http output is', (t) => {
  for (const pair of [{ certFile: '/nonexistent/cert.pem' }, { keyFile: '/nonexistent/key.pem' }]) {
    t.throws(
      () => kcpwatch.createServer({ log: { destination: { syslog: 'tls://127.0.0.1:6514', caFile: '/nonexistent/ca.pem', ...pair } } }),
      { ...invalid, message: 'log.destination: certFile and keyFile go together' },
    );
  }
});

test('an allow-list entry the native side cannot take is refused by createServer', (t) => {
  for (const net of ['10.0.0.0/8/9', 'fe80::1%eth0', '10.0.0.0/33', '::/129', '10.0.0.0/', 'nothost/8']) {
    const e = t.throws(() => kcpwatch.createServer({ detection: { allowList: [net] } }), invalid, net);
    t.is(e.message, `detection.allowList entry ${JSON.stringify(net)} is not ADDRESS/PREFIX`);
  }
  t.notThrows(() => kcpwatch.createServer({ detection: { allowList: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] } }));
});

test('a udp:// syslog output in parts reaches the receiver: transport, address and port as given', async (t) => {
  const receiver = createSocket('udp4');
  t.teardown(() => receiver.close());
  await new Promise((resolve, reject) => {
    receiver.once('error', reject);
    receiver.bind(0, '127.0.0.1', resolve);
  });
  const { port } = receiver.address();
  const server = kcpwatch.createServer({ mode: 'raw', log: { outputs: [{ destination: { syslog: `udp://127.0.0.1:${port}` }, format: 'rfc5424', level: 'info' }] } });
  t.teardown(() => server.close());
  const datagram = next(receiver, 'message');
  await server.listen(0, '127.0.0.1');
  const [message] = await datagram;
  // The first record is the listener's start, at info (6): PRI 134 is facility 16 (local0) * 8 + 6.
  t.regex(message.toString('utf8'), /^<134>1 \S+ \S+ kcpwatch \S+ kcp:listener_started /);
});
