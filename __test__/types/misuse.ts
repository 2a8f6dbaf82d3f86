// Misuse of the public surface that must not compile (and correct use next to it that must):
// compiled with `tsc --noEmit --strict` by types.test.mjs, against the emitted .d.ts. Each
// `@ts-expect-error` fails the compilation if its line compiles.
import * as kcpwatch from '../../index';
import {
  connect,
  createServer,
  KcpAuthRejectedError,
  KcpError,
  KcpInvalidOptionError,
  type Connection,
  type KcpErrorCode,
  type ServerOptions,
  type ServerStats,
} from '../../index';

// Error classes are real classes: usable with instanceof and as types.
function describeRefusal(e: KcpAuthRejectedError): 'KCP_ERR_AUTH_REJECTED' {
  return e.code;
}
async function join(): Promise<void> {
  const conn = connect({ port: 4000, token: 'ticket' });
  try {
    await conn.ready();
  } catch (e) {
    if (e instanceof KcpAuthRejectedError) {
      const code: 'KCP_ERR_AUTH_REJECTED' = e.code;
      void describeRefusal(e), code;
      // @ts-expect-error each class's code is its own literal
      const other: 'KCP_ERR_CLOSED' = e.code;
      void other;
    }
    if (e instanceof KcpError) {
      const code: KcpErrorCode = e.code;
      void code;
      // @ts-expect-error a KcpError's code is one of the stable codes, not any string
      const narrowed: 'KCP_ERR_AUTH_REJECTED' = e.code;
      void narrowed;
    }
  }
  const fromClass: 'KCP_ERR_INVALID_OPTION' = KcpInvalidOptionError.code;
  void fromClass;
}
// @ts-expect-error codes are a closed union of literals
const typo: KcpErrorCode = 'KCP_ERR_INVALID_OPTIONS';
void typo, join;
// The union is the generated list of the Rust `ErrorCode`: the base class's code, codes only
// Rust raises and codes only TypeScript raises are all in it.
const listed: KcpErrorCode[] = ['KCP_ERR_GENERIC', 'KCP_ERR_ADDR_NOT_AVAILABLE', 'KCP_ERR_ALREADY_LISTENING'];
void listed;
// @ts-expect-error an engine code of a `kcp:error` record is not an API error code
const engine: KcpErrorCode = 'KCP_ENGINE_PANIC';
void engine;

// Identity from authenticate, typed through the server.
const server = createServer({
  authenticate: async (token: Buffer) => (token.length > 0 ? { userId: token.toString(), level: 3 } : false),
});
server.on('connection', (conn) => {
  const userId: string = conn.auth.userId;
  // @ts-expect-error the identity has the type authenticate returned
  const nope: number = conn.auth.userId;
  void userId, nope;
});
const boolAuth = createServer({ authenticate: () => true });
boolAuth.on('connection', (conn) => {
  const accepted: true = conn.auth;
  void accepted;
});

// Lookup and broadcast.
const found: Connection<{ userId: string; level: number }> | undefined = server.connection('K0354MyjEV7QvD3e1AbCl8m');
for (const [id, conn] of server.connections) void id.length, conn.auth.level;
const sent: number = server.broadcast('tick', (c) => c.auth.level > 2);
server.broadcast(new Uint8Array(4), server.connections.values());
// @ts-expect-error the connections map is read-only
server.connections.delete('K0354MyjEV7QvD3e1AbCl8m');
// @ts-expect-error a broadcast filter takes a connection
server.broadcast('tick', (id: number) => id > 0);
void found, sent;

// stats() has an exported type.
const stats: ServerStats = server.stats();
void stats;

// Internal methods are not part of the typings.
// @ts-expect-error server.message is internal
server.message(1, Buffer.alloc(1));
// @ts-expect-error server.error is internal
server.error(1, 'KCP_ERR_CLOSED', 'x');
// @ts-expect-error server.authRequest is a transport callback, internal
server.authRequest({});
// @ts-expect-error a connection is made by the library, never with new Connection(init)
new kcpwatch.Connection({ handle: 1, id: 'x', remoteAddress: '127.0.0.1' });
// @ts-expect-error fromNative is internal
kcpwatch.fromNative(new Error('x'));
// @ts-expect-error errorFor is internal
kcpwatch.errorFor('KCP_ERR_CLOSED', 'x');
// @ts-expect-error handshakeError is internal
kcpwatch.handshakeError('capacity', 'x');
// @ts-expect-error securityRecordOf is internal
kcpwatch.securityRecordOf(new KcpError('x'));

// Mode-dependent options.
createServer({ mode: 'raw', idleTimeout: 10_000 });
// @ts-expect-error raw mode has no handshake: no authenticate
createServer({ mode: 'raw', authenticate: () => true });
connect({ port: 4000, mode: 'raw', conv: 7 });
// @ts-expect-error raw mode has no handshake: no token
connect({ port: 4000, mode: 'raw', token: 'ticket' });
// @ts-expect-error secure mode: the server assigns the conv
connect({ port: 4000, conv: 7 });
// @ts-expect-error raw mode has no keepalive a plain KCP peer understands
createServer({ mode: 'raw', keepalive: 5_000 });
// @ts-expect-error raw mode has no handshake: nothing waits for authenticate
createServer({ mode: 'raw', limits: { maxPendingAuth: 10 } });
createServer({ mode: 'raw', limits: { maxConnectionsPerIp: 8 } });
createServer({ keepalive: 5_000, limits: { maxPendingAuth: 10 } });
// @ts-expect-error raw mode has no handshake: no server key to pin
connect({ port: 4000, mode: 'raw', serverKey: 'AAAA' });
// @ts-expect-error raw mode has no handshake to time out
connect({ port: 4000, mode: 'raw', handshakeTimeout: 1_000 });
// @ts-expect-error raw mode has no keepalive
connect({ port: 4000, mode: 'raw', keepalive: 1_000 });

// An event-name typo is an error that names the event map.
// @ts-expect-error 'conection' is not a server event
server.on('conection', () => undefined);
connect({ port: 4000 }).on('message', (data) => void data.length);
// @ts-expect-error 'mesage' is not a connection event
connect({ port: 4000 }).on('mesage', () => undefined);

// Input the runtime refuses is refused by the compiler first where the types can say it.
// @ts-expect-error misspelt option keys are refused (idleTimeout)
createServer({ idleTimout: 10_000 });
// @ts-expect-error createServer(null) is not an options object
createServer(null);
createServer((conn) => void conn.id);
// @ts-expect-error listen(null) is neither a port nor options
void server.listen(null);
// @ts-expect-error the port is a number, not a string
connect({ port: '4000' });
// @ts-expect-error listen options are port and host
void server.listen({ prot: 4000 });
declare const someConnection: Connection;
someConnection.close(4001, 'kicked');
// @ts-expect-error a close code is a number
someConnection.close('kicked');

// The net/dgram habit: listen's callback gets the bound address.
void server.listen(0, '127.0.0.1', (address) => void address.port.toFixed());
void server.listen(0, (address) => void address.family);
void server.listen({ port: 0 }, (address) => void address.address.length);
// @ts-expect-error listen's callback is a function of the address
void server.listen(0, '127.0.0.1', 'done');
// @ts-expect-error the address is an AddressInfo, not a string
void server.listen(0, (address: string) => void address);

// Identity fields are read-only (at runtime too: getters without setters).
// @ts-expect-error a connection's id cannot be reassigned
someConnection.id = 'renamed';
// @ts-expect-error nor its address
someConnection.remoteAddress = '10.0.0.1';
// @ts-expect-error nor the ceilings its handshake agreed
someConnection.maxMessageSize = 1 << 20;
const ceilings: [number, number] = [someConnection.maxMessageSize, someConnection.maxDatagramSize];
void ceilings;
// A map of connections (server.connections) is a broadcast target.
server.broadcast('tick', server.connections);

// @ts-expect-error a raw server has no key to pin
connect({ port: 1, serverKey: createServer({ mode: 'raw' }).publicKey });
export function pinAnyMode(anyModeOptions: ServerOptions): void {
  // @ts-expect-error a server of either mode may have no key
  connect({ port: 1, serverKey: createServer(anyModeOptions).publicKey });
}
