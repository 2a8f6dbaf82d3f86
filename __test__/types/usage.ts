// Type tests of the public surface: compiled with `tsc --noEmit --strict` by types.test.mjs.
// Lines marked @ts-expect-error must fail to compile; everything else must compile.
import {
  connect,
  createServer,
  KcpError,
  KcpQueueFullError,
  presets,
  type CloseInfo,
  type CloseReason,
  type Connection,
  type ServerOptions,
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
});

async function main(): Promise<void> {
  const address = await server.listen(0, '127.0.0.1');
  const port: number = address.port;
  const client = connect({ host: '127.0.0.1', port, conv: 1, preset: 'fast3' });
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
  await server.close();
}
void main;
