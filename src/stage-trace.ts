/**
 * The JavaScript half of the bench's stage trace (the I/O thread's half is
 * `crates/kcpwatch/src/stage_trace.rs` in the repository). Off unless the environment has
 * `KCPWATCH_STAGE_TRACE=1` when the module loads; off, each hook is one property test.
 *
 * Stamps are `process.hrtime.bigint()`, Node's reading of `CLOCK_MONOTONIC`, the clock the I/O
 * thread stamps with, so the wake-up is measured from the moment the I/O thread staged the
 * records to the moment JavaScript starts taking them.
 * @internal
 */

/** Samples kept per hop, as on the native side; later ones are only counted. */
const SAMPLES_PER_HOP = 200_000;

/** @internal Whether this process traces stages. */
export const stageTraceOn = process.env.KCPWATCH_STAGE_TRACE === '1';

const now = (): number => Number(process.hrtime.bigint());

/** @internal One transport's JavaScript-side hops, in nanoseconds. */
export class JsStages {
  readonly hops = {
    /** Records staged by the I/O thread to JavaScript starting to take them. */
    notify_to_js_wakeup: [] as number[],
    /** JavaScript's wake-up to a message's `'message'` listener being called. */
    js_wakeup_to_handler: [] as number[],
    /** The listener's start to its `send()`. */
    handler_to_send: [] as number[],
    /** The turn's first `send()` to the batch handed to the command queue. */
    send_to_command_queue: [] as number[],
  };
  overflow = 0;
  private wokeAt = 0;
  private handlerAt = 0;
  private firstSendAt = 0;

  private put(hop: keyof JsStages['hops'], nanos: number): void {
    const kept = this.hops[hop];
    if (kept.length < SAMPLES_PER_HOP) kept.push(nanos);
    else this.overflow += 1;
  }

  /** JavaScript starts taking records staged at `stagedAt` (0: unknown). */
  woke(stagedAt: number): void {
    this.wokeAt = now();
    if (stagedAt > 0) this.put('notify_to_js_wakeup', this.wokeAt - stagedAt);
  }

  handler(): void {
    this.handlerAt = now();
    if (this.wokeAt > 0) this.put('js_wakeup_to_handler', this.handlerAt - this.wokeAt);
  }

  send(): void {
    const at = now();
    if (this.handlerAt > 0) {
      this.put('handler_to_send', at - this.handlerAt);
      this.handlerAt = 0;
    }
    if (this.firstSendAt === 0) this.firstSendAt = at;
  }

  queued(): void {
    if (this.firstSendAt > 0) this.put('send_to_command_queue', now() - this.firstSendAt);
    this.firstSendAt = 0;
  }
}
