// Plain UDP echo server with Node's dgram, no reliability layer: every datagram goes straight
// back to where it came from. The upper bound of what one Node process can echo. Same contract
// as bench/echo-server.mjs: `--port P` (default 0), the port on the first stdout line, stop on
// stdin EOF with one JSON line (event-loop delay and counters).
import dgram from 'node:dgram';
import { serve } from '../common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));

// The same socket buffers as kcp-go's server (4 MiB each; the kernel caps them at rmem_max and
// wmem_max).
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
let datagrams = 0;
socket.on('message', (msg, rinfo) => {
  datagrams++;
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  process.stderr.write(`udp server: ${err.stack}\n`);
  process.exit(1);
});
socket.bind(port, host, () => {
  serve(socket.address().port, () => {
    socket.close();
    return { datagrams };
  });
});
