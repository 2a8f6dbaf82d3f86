// Messages KCP acknowledged are the application's, even when the connection closes while the
// receiving application is behind (delivery paused past maxReceiveQueueBytes): the final
// drain hands them over before `close`, and held messages stay readable after it.
// Serial: each test pushes a few MB over loopback and the machine is shared.
import test from 'ava';
import { kcpwatch } from './helpers/util.mjs';

const SIZE = 32_000;

/** Resolves once `predicate()` holds, checking every few ms; rejects after `ms`. */
async function waitFor(predicate, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function tagged(i) {
  const m = Buffer.alloc(SIZE, i & 0xff);
  m.writeUInt32LE(i, 0);
  return m;
}

/** A secure server and a client that reads nothing yet; resolves with both ends. */
async function pair(t, clientOptions = {}) {
  const server = kcpwatch.createServer({ log: { destination: 'none' } });
  const address = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close({ force: true }));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = kcpwatch.connect({ host: '127.0.0.1', port: address.port, serverKey: server.publicKey, ...clientOptions });
  t.teardown(() => client.close());
  await client.ready();
  return { server, client, sconn: await accepted };
}

/** Sends up to `count` tagged messages, waiting for `drain` when told to; stops at close (bounded). */
async function sendAll(conn, count, progress = { sent: 0 }) {
  const deadline = Date.now() + 10_000;
  let i = 0;
  while (i < count && conn.state === 'established' && Date.now() < deadline) {
    progress.sent = i + 1;
    if (conn.send(tagged(i++))) continue;
    await new Promise((resolve) => {
      // Re-checks the loop's bounds now and then while the peer pushes back.
      const timer = setTimeout(done, 100);
      function done() {
        clearTimeout(timer);
        conn.off('drain', done);
        conn.off('close', done);
        resolve();
      }
      conn.once('drain', done);
      conn.once('close', done);
    });
  }
  return i;
}

/** Waits for `close`, then reads with a `for await` started after it (bounded by the close). */
async function readAfterClose(client) {
  const [reason, info] = await new Promise((resolve) => client.once('close', (r, i) => resolve([r, i])));
  const got = [];
  for await (const m of client) got.push(m.readUInt32LE(0));
  return { reason, info, got };
}

test.serial('a peer close after everything was acknowledged delivers every message to a late reader', async (t) => {
  const { client, sconn } = await pair(t, { maxReceiveQueueBytes: 65_536 });
  const count = 9;
  t.is(await sendAll(sconn, count), count);
  await waitFor(() => sconn.queuedBytes === 0, 'the client to acknowledge everything');
  const closed = readAfterClose(client);
  sconn.close(4000, 'bye');
  const { reason, info, got } = await closed;
  t.is(reason, 'peer_closed');
  t.is(info.code, 4000);
  t.deepEqual(got, Array.from({ length: count }, (_, i) => i));
  t.is(info.messagesIn, count);
});

test.serial('server.close() with the client behind delivers every acknowledged message', async (t) => {
  const { server, client, sconn } = await pair(t, { maxReceiveQueueBytes: 65_536 });
  const count = 9;
  t.is(await sendAll(sconn, count), count);
  await waitFor(() => sconn.queuedBytes === 0, 'the client to acknowledge everything');
  const closed = readAfterClose(client);
  await server.close();
  const { reason, info, got } = await closed;
  t.is(reason, 'peer_closed');
  t.is(info.peerReason, 'shutdown');
  t.deepEqual(got, Array.from({ length: count }, (_, i) => i));
});

test.serial('with the defaults and no reader, everything the server saw acknowledged arrives after close', async (t) => {
  const { client, sconn } = await pair(t);
  // Past the default maxReceiveQueueBytes (4 MiB) plus the receive window.
  const count = 180;
  const progress = { sent: 0 };
  const sending = sendAll(sconn, count, progress);
  // Acknowledged messages beyond what JavaScript holds sit in the engine.
  const ackedBytes = () => progress.sent * SIZE - sconn.queuedBytes;
  await waitFor(
    () => ackedBytes() - client._heldBytes() >= 3 * SIZE && client._heldBytes() >= 4 * 1024 * 1024,
    'the client engine to hold acknowledged messages',
  );
  const acked = Math.floor(ackedBytes() / SIZE);
  const closed = readAfterClose(client);
  sconn.close(4000, 'kick');
  const { info, got } = await closed;
  t.true((await sending) > acked, 'the server was pushed back');
  t.true(got.length >= acked, `received ${got.length}, the server saw ${acked} acknowledged`);
  t.deepEqual(got, Array.from({ length: got.length }, (_, i) => i));
  t.is(info.messagesIn, got.length);
});

test.serial('a local close while behind still hands over what was acknowledged, before close', async (t) => {
  const { client, sconn } = await pair(t, { maxReceiveQueueBytes: 65_536 });
  const count = 9;
  t.is(await sendAll(sconn, count), count);
  await waitFor(() => sconn.queuedBytes === 0, 'the client to acknowledge everything');
  const closed = readAfterClose(client);
  client.close();
  const { reason, got } = await closed;
  t.is(reason, 'local_closed');
  t.deepEqual(got, Array.from({ length: count }, (_, i) => i));
});
