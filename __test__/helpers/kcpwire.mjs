// A tiny KCP segment encoder for crafting datagrams in tests (the layout of
// crates/kcpwatch-proto/src/segment.rs): a 24-byte little-endian header — conv u32, cmd u8,
// frg u8, wnd u16, ts u32, sn u32, una u32, len u32 — then the payload.

export const HEADER = 24;
export const CMD_PUSH = 81;
export const CMD_ACK = 82;
export const CMD_WASK = 83;
export const CMD_WINS = 84;

/**
 * One segment. `len` defaults to the payload length; pass it to claim a different one (a
 * header that lies about its payload).
 */
export function segment({ conv, cmd = CMD_PUSH, frg = 0, wnd = 128, ts = 0, sn = 0, una = 0, len, payload = Buffer.alloc(0) }) {
  const data = Buffer.from(payload);
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(conv >>> 0, 0);
  header.writeUInt8(cmd, 4);
  header.writeUInt8(frg, 5);
  header.writeUInt16LE(wnd, 6);
  header.writeUInt32LE(ts >>> 0, 8);
  header.writeUInt32LE(sn >>> 0, 12);
  header.writeUInt32LE(una >>> 0, 16);
  header.writeUInt32LE((len ?? data.length) >>> 0, 20);
  return Buffer.concat([header, data]);
}

/** Several segments in one datagram, as KCP packs them. */
export function datagram(...segments) {
  return Buffer.concat(segments.map((s) => (Buffer.isBuffer(s) ? s : segment(s))));
}
