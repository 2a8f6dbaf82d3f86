// One measured row of a scenario: a server, a driver against it, and the server's exit report.

/** Stops a server, killing it if it has not stopped within `ms`; resolves with its exit report. */
export async function stopWithin(server, ms = 10_000) {
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => resolve(server.kill().then(() => undefined)), ms);
  });
  const out = await Promise.race([server.stop(), killed]).finally(() => clearTimeout(timer));
  try {
    return JSON.parse(out?.trim().split('\n').at(-1) ?? '');
  } catch {
    return undefined;
  }
}

/**
 * One server and one driver run; any failure (a server that does not start, a driver error or
 * timeout) becomes the row's `error` so the other rows still run. The server always stops.
 */
export async function run(start, drive) {
  let server;
  try {
    server = await start();
    const result = await drive(server.port);
    if (result.ok !== true) throw new Error(`driver: ${result.error ?? JSON.stringify(result).slice(0, 200)}`);
    // The Go driver ends raw-mode runs after its drain without an error: a frozen peer shows
    // only as messages sent and never echoed.
    if (result.sent > result.messages) throw new Error(`${result.sent - result.messages} of ${result.sent} messages without an echo after the drain`);
    const report = await stopWithin(server);
    server = undefined;
    return { result, report };
  } catch (err) {
    return { error: String(err.message ?? err).split('\n')[0].slice(0, 300) };
  } finally {
    if (server) await stopWithin(server);
  }
}
