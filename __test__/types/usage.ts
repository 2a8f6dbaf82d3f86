// Type tests of the public surface: compiled with `tsc --noEmit --strict` by types.test.mjs.
// Lines marked @ts-expect-error must fail to compile; everything else must compile.
import {
  connect,
  createClient,
  createServer,
  KcpConnectionLimitError,
  KcpError,
  KcpQueueFullError,
  presets,
  renderMetrics,
  type AlertEvent,
  type AlertRuleId,
  type CloseInfo,
  type Client,
  type ClientConnectOptions,
  type ClientOptions,
  type CloseReason,
  type Connection,
  type ConnectionStats,
  type Datagram,
  type DatagramOptions,
  type KcpEvent,
  type KcpEventMap,
  type MitreTechnique,
  type ServerOptions,
  type ServerStats,
} from '../../index';

const options: ServerOptions = { preset: 'game', idleTimeout: 10_000, stream: false, mode: 'raw' };
const server = createServer(options, (conn: Connection) => {
  conn.on('message', (data: Buffer) => {
    const ok: boolean = conn.send(data);
    void ok;
  });
  conn.on('close', (reason: CloseReason, info: CloseInfo) => {
    const n: number = info.bytesIn + info.durationMs;
    void n;
    void reason;
  });
  conn.on('drain', () => undefined);
  // @ts-expect-error 'message' listeners receive a Buffer, not a string
  conn.on('message', (data: number) => data);
  // Unreliable datagrams (secure mode): a typed event and iterator, options checked.
  conn.on('datagram', (data: Buffer, channel: number) => {
    const sent: boolean = conn.sendDatagram(data, { channel, sequenced: true });
    void sent;
  });
  void (async () => {
    for await (const datagram of conn.datagrams()) {
      const d: Datagram = datagram;
      const bytes: Buffer = d.data;
      const channel: number = d.channel;
      void bytes, channel;
    }
  })();
  const opts: DatagramOptions = { channel: 3 };
  conn.sendDatagram('pos', opts);
  conn.sendDatagram(new Float32Array(3));
  const unreliable: number = info().unreliableSent + info().unreliableReceived + info().unreliableDropped;
  void unreliable;
  // @ts-expect-error a channel is a number
  conn.sendDatagram('x', { channel: '1' });
  // @ts-expect-error 'datagram' listeners receive a Buffer and a channel number
  conn.on('datagram', (data: string) => data);
});
declare function info(): CloseInfo;

async function main(): Promise<void> {
  const address = await server.listen(0, '127.0.0.1');
  const port: number = address.port;
  const client = connect({ host: '127.0.0.1', port, mode: 'raw', conv: 1, preset: 'fast3' });
  for await (const message of client) {
    const bytes: Buffer = message;
    void bytes;
  }
  try {
    client.send('x');
  } catch (err) {
    if (err instanceof KcpQueueFullError) {
      const code: string = err.code;
      void code;
    }
    if (err instanceof KcpError) void err.code;
  }
  const interval: number = presets.game.interval;
  void interval;
  // @ts-expect-error unknown preset names are rejected at compile time
  createServer({ preset: 'turbo' });
  // @ts-expect-error port is required
  connect({ host: '127.0.0.1' });
  // Metrics: Prometheus text, kcp-go-named counters, per-connection counters.
  const exposition: string = server.metrics();
  const stats: ServerStats = server.stats();
  const segs: number = stats.inSegs + stats.retransSegs + stats.currEstab + stats.srttP99Ms;
  const perConnection: ConnectionStats | null = client.stats();
  if (perConnection) {
    const inSegs: number = perConnection.inSegs + perConnection.messagesIn;
    void inSegs;
  }
  // @ts-expect-error stats() is null once the connection closed
  const notNull: ConnectionStats = client.stats();
  const rendered: string = renderMetrics(stats, { listener: '127.0.0.1:4000' });
  // @ts-expect-error label values are strings
  renderMetrics(stats, { listener: 4000 });
  void exposition, segs, notNull, rendered;
  await server.close();
}

// Security events: a discriminated union on `name`.
const logged = createServer({ log: { destination: { file: '/tmp/kcp.ndjson' }, level: 'notice', statsInterval: 0 } });
logged.on('event', (event: KcpEvent) => {
  const seq: number = event.seq;
  void seq;
  if (event.name === 'kcp:connection_closed') {
    const reason: 'idle_timeout' | 'dead_link' | 'peer_closed' | 'local_closed' | 'shutdown' | 'evicted' | 'protocol_violation' | 'internal_error' =
      event.reason;
    const bytes: number = event.bytes_received + event.bytes_sent;
    const history: string = event.history;
    void reason, bytes, history;
    // @ts-expect-error a close record has no trigger
    void event.trigger;
  }
  if (event.name === 'kcp:packet_dropped') {
    const trigger: string = event.trigger;
    void trigger;
  }
  if (event.name === 'kcp:peer_address_changed') {
    const ports: number = event.old_peer_port + event.old_local_port + event.src_port;
    const old: string | undefined = event.old_peer_ip ?? event.old_peer_ip_pseudonym;
    void ports, old;
  }
  if (event.name === 'kcp:connection_failed') {
    if (event.trigger !== undefined) {
      const trigger: 'too_short' | 'bad_conv' | 'bad_length' | 'bad_cmd' | 'guard_violation' | 'unknown_connection' | 'over_limit' | 'bad_tag' | 'replayed' | 'rate_limited' | 'decrypt_failed' =
        event.trigger;
      void trigger;
      // @ts-expect-error a refused datagram has a datagram rule, not a failure rule
      const rule: 'server_rejected' = event.rule;
      void rule;
    }
    if (event.rule === 'server_rejected') {
      // @ts-expect-error no trigger when no datagram was refused
      const trigger: string = event.trigger;
      void trigger;
      const direction: 'outbound' = event.direction;
      void direction;
    }
  }
  if (event.name === 'kcp:alert') {
    const id: AlertRuleId = event.rule_id;
    const counts: number = event.threshold + event.window_ms + event.observed;
    const seen: string = event.first_seen + event.last_seen;
    const update: boolean = event.update;
    void id, counts, seen, update;
    // @ts-expect-error an alert is not about a connection
    void event.uid.length;
    if (event.group === 'source') {
      const key: string | undefined = event.group_ip ?? event.group_ip_pseudonym;
      void key;
    }
    if (event.rule_id === 'KCPW-002') {
      const name: 'handshake_flood_global' = event.rule_name;
      const severity: 1 = event.severity;
      const technique: 'T1498.001' = event.mitre_technique;
      void name, severity, technique;
      // @ts-expect-error a listener-wide rule has no grouping address
      const key: string = event.group_ip;
      void key;
    }
    if (event.rule_id === 'KCPW-007') {
      // @ts-expect-error KCPW-007 has no MITRE technique
      const technique: MitreTechnique = event.mitre_technique;
      void technique;
    }
  }
});
const onMove = (e: KcpEventMap['kcp:peer_address_changed']): number => e.old_peer_port;
const onAlert = (e: KcpEventMap['kcp:alert']): AlertEvent => e;
void onAlert;
void onMove;
createServer({ log: false });
// @ts-expect-error log levels are syslog names
createServer({ log: { level: 'verbose' } });
// @ts-expect-error destinations are stdout, stderr, none or { file }
createServer({ log: { destination: 'syslog' } });
connect({ port: 1, log: { onEvent: (e: KcpEvent) => void e.name } });
void main;

// Many connections on one client endpoint (one socket, one I/O thread).
async function bots(port: number): Promise<void> {
  const options: ClientOptions = { host: '127.0.0.1', port, mode: 'secure', preset: 'game', maxConnections: 1000, handshakeTimeout: 5000 };
  const client: Client = createClient(options);
  const per: ClientConnectOptions = { token: 'ticket' };
  const conn: Connection = client.connect(per);
  await conn.ready();
  const raw = createClient({ port, mode: 'raw' }).connect({ conv: 7 });
  const n: number = client.connectionCount + client.maxConnections + raw.conv;
  const local: number | undefined = client.address()?.port;
  const stats: ServerStats = client.stats();
  const mode: 'raw' | 'secure' = client.mode;
  client.on('close', () => undefined);
  try {
    client.connect();
  } catch (err) {
    if (err instanceof KcpConnectionLimitError) {
      const code: string = err.code;
      void code;
    }
  }
  const closed: Promise<void> = client.close();
  void n, local, stats, mode, closed;
  // @ts-expect-error port is required
  createClient({ host: '127.0.0.1' });
  // @ts-expect-error maxConnections is a number
  createClient({ port, maxConnections: '10' });
  // @ts-expect-error a token is a string or bytes
  client.connect({ token: 42 });
  // @ts-expect-error the server is the client's: a connection does not take another port
  client.connect({ port: 4000 });
  // @ts-expect-error connect() opens one connection: maxConnections is createClient's
  connect({ port, maxConnections: 10 });
  // @ts-expect-error a client emits no connection events
  client.on('connection', () => undefined);
}
void bots;

// `publicKey` by mode: a secure server (the default) always has one, so it is a `serverKey`
// as it is; a raw server's is null; a server of either mode (a `ServerOptions` value) either.
const secureKey: string = createServer({ authenticate: () => ({ userId: 'a' }) }).publicKey;
const handlerKey: string = createServer(() => undefined).publicKey;
const rawKey: null = createServer({ mode: 'raw' }).publicKey;
const eitherKey: string | null = createServer(options).publicKey;
connect({ port: 1, serverKey: createServer().publicKey });
void [secureKey, handlerKey, rawKey, eitherKey];
