// A game lobby on kcpwatch, in strict TypeScript against the package's public types:
// identity from `authenticate`, a fixed-rate game loop that broadcasts the room state over
// `server.connections`, chat relayed with `for await`, a map download that respects
// backpressure (`send()` false -> wait for `drain`), and a kick with a close code.
//
//   npx tsc -p examples/lobby/tsconfig.node16.json && node examples/lobby/build/node16/lobby.js 50
//
// (tsconfig.bundler.json and tsconfig.cjs.json build the same file for bundlers and CommonJS.)
//
// Runs for the given number of ticks (default 50), then closes everything and exits 0 if every
// check held.
import { once } from 'node:events';
import { connect, createServer, KcpAuthRejectedError, KcpError, type CloseInfo, type Connection } from 'kcpwatch';

/** Who a ticket belongs to: what `authenticate` returns and `conn.auth` holds. */
interface Player {
  name: string;
  room: 'lobby' | 'spectators';
}

const tickets = new Map<string, Player>([
  ['ticket-alice', { name: 'alice', room: 'lobby' }],
  ['ticket-bob', { name: 'bob', room: 'lobby' }],
  ['ticket-carol', { name: 'carol', room: 'spectators' }],
  ['ticket-mallory', { name: 'mallory', room: 'lobby' }],
]);

const TICK_MS = 20;
/** Close code for a kick (WebSocket's application range, 3000..4999). */
const KICKED = 4001;
/** The "map" a player downloads on joining: big enough to pass the high-water mark. */
const MAP = Buffer.alloc(1024 * 1024, 0x6d);
const CHUNK = 32 * 1024;

/** Sends a large payload in chunks, waiting for `drain` whenever `send()` says the queue is full. */
async function download(conn: Connection<Player>, data: Buffer): Promise<number> {
  let waits = 0;
  for (let at = 0; at < data.length; at += CHUNK) {
    const chunk = data.subarray(at, at + CHUNK);
    const header = Buffer.from([0x4d]); // 'M': a map chunk
    if (!conn.send(Buffer.concat([header, chunk]))) {
      waits += 1;
      const [event] = await Promise.race([once(conn, 'drain').then(() => ['drain']), once(conn, 'close').then(() => ['close'])]);
      if (event === 'close') break;
    }
  }
  return waits;
}

interface BotResult {
  name: string;
  ticks: number;
  chats: number;
  mapBytes: number;
  closedBy?: string;
}

/** A player's client: reads everything with `for await` until its connection ends. */
async function bot(port: number, serverKey: string, name: string): Promise<{ conn: Connection; done: Promise<BotResult> }> {
  const conn = connect({ host: '127.0.0.1', port, serverKey, token: `ticket-${name}` });
  await conn.ready();
  const result: BotResult = { name, ticks: 0, chats: 0, mapBytes: 0 };
  conn.once('close', (reason) => (result.closedBy = reason));
  const done = (async () => {
    for await (const message of conn) {
      const kind = message[0];
      if (kind === 0x54) result.ticks += 1; // 'T': a tick's state
      else if (kind === 0x43) result.chats += 1; // 'C': chat
      else if (kind === 0x4d) result.mapBytes += message.length - 1;
      else if (kind === 0x45) break; // 'E': the game ended; everything before it has arrived
    }
    conn.close();
    return result;
  })();
  return { conn, done };
}

async function main(): Promise<number> {
  const ticks = Number(process.argv[2] ?? 50);
  if (!Number.isInteger(ticks) || ticks < 4 || ticks > 100_000) throw new Error('ticks must be an integer in 4..100000');

  const server = createServer({
    log: false,
    authenticate: async (token) => tickets.get(token.toString()) ?? false,
  });
  const kicks: { name: string; info: CloseInfo }[] = [];
  let drainWaits = 0;
  const downloads: Promise<void>[] = [];
  server.on('connection', (conn) => {
    // conn.auth is a Player here: the type follows authenticate's return type.
    const player: Player = conn.auth;
    conn.on('close', (_reason, info) => {
      if (info.code === KICKED) kicks.push({ name: player.name, info });
    });
    if (player.room === 'lobby') downloads.push(download(conn, MAP).then((waits) => void (drainWaits += waits)));
    // Chat: each message goes to everyone in the sender's room.
    void (async () => {
      for await (const message of conn) {
        const line = Buffer.concat([Buffer.from('C'), Buffer.from(`${player.name}: `), message]);
        server.broadcast(line, (other) => other.auth.room === player.room);
      }
    })();
  });
  const { port } = await server.listen(0, '127.0.0.1');
  // The key clients pin to know they talk to this server (a real game ships it in the client).
  const serverKey = server.publicKey!;

  // An intruder without a valid ticket never gets a session.
  const intruder = connect({ host: '127.0.0.1', port, serverKey, token: 'forged' });
  const refused = await intruder.ready().then(
    () => false,
    (err: unknown) => err instanceof KcpAuthRejectedError && err.code === 'KCP_ERR_AUTH_REJECTED',
  );

  const bots = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map((name) => bot(port, serverKey, name)));
  // Every player is in: the server has accepted all four before the first chat and tick.
  while (server.connections.size < bots.length) await once(server, 'connection');
  bots[0]!.conn.send('hello lobby');

  // The game loop: one state broadcast per tick to every lobby player.
  for (let tick = 1; tick <= ticks; tick++) {
    const state = Buffer.from(`T${tick}`);
    server.broadcast(state, (conn) => conn.auth.room === 'lobby');
    if (tick === Math.floor(ticks / 2)) {
      for (const conn of server.connections.values()) {
        if (conn.auth.name === 'mallory') conn.close(KICKED, 'kicked: afk');
      }
    }
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }

  // The end of the game follows every tick and every map chunk on each connection (KCP delivers
  // in order): each bot stops reading and closes when it sees it.
  await Promise.all(downloads);
  server.broadcast('E');
  const results = await Promise.all(bots.map((b) => b.done));
  await server.close();

  const by = (name: string): BotResult => results.find((r) => r.name === name)!;
  const checks: [string, boolean][] = [
    ['the forged ticket was refused', refused],
    ['alice and bob saw every tick', by('alice').ticks === ticks && by('bob').ticks === ticks],
    ['carol (a spectator) saw no lobby tick', by('carol').ticks === 0],
    ['mallory was kicked with the code, half-way', kicks.length === 1 && kicks[0]!.name === 'mallory' && kicks[0]!.info.description === 'kicked: afk' && by('mallory').ticks < ticks],
    ['mallory saw the server close her connection', by('mallory').closedBy === 'peer_closed'],
    ['alice and bob downloaded the whole map', by('alice').mapBytes === MAP.length && by('bob').mapBytes === MAP.length],
    ['the download waited for drain', drainWaits > 0],
    ['the lobby got alice\'s chat', by('bob').chats === 1 && by('carol').chats === 0],
  ];
  for (const [what, ok] of checks) console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  console.log(`lobby: ${ticks} ticks, ${results.map((r) => `${r.name} ${r.ticks} ticks ${r.mapBytes} map bytes`).join(', ')}; ${drainWaits} drain waits`);
  return checks.every(([, ok]) => ok) ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof KcpError ? `${err.code}: ${err.message}` : err);
    process.exitCode = 1;
  },
);
