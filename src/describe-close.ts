/**
 * One line of text for a closed connection (the CLI's `serve` log and the demo print it). Its
 * own module so that the CLI and the demo, which the CLI runs, do not import each other.
 */

import type { CloseInfo } from './records';

/** `reason=... initiator=... duration_ms=...`: the close summary as `key=value` words. */
export function describeClose(info: CloseInfo): string {
  return (
    `reason=${info.reason} initiator=${info.initiator} duration_ms=${info.durationMs} ` +
    `datagrams_in=${info.datagramsIn} bytes_in=${info.bytesIn} datagrams_out=${info.datagramsOut} ` +
    `bytes_out=${info.bytesOut} messages_in=${info.messagesIn} messages_out=${info.messagesOut} ` +
    `retransmitted=${info.retransmittedSegments} guard_drops=${info.guardDrops} srtt_ms=${info.srttMs} rto_ms=${info.rtoMs}` +
    (info.peerReason !== undefined ? ` peer_reason=${info.peerReason}` : '') +
    (info.code !== undefined ? ` code=${info.code}` : '') +
    // The peer's application wrote the text: quoted, so it cannot pose as another field or line.
    (info.description !== undefined ? ` text=${JSON.stringify(info.description)}` : '')
  );
}
