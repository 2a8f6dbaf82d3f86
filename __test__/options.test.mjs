import test from 'ava';
import { kcpwatch } from './helpers/util.mjs';

test('presets match the design table', (t) => {
  const { presets } = kcpwatch;
  t.deepEqual(
    Object.fromEntries(Object.entries(presets).map(([k, p]) => [k, [p.nodelay ? 1 : 0, p.interval, p.resend, p.nc ? 1 : 0]])),
    { normal: [0, 40, 2, 1], fast: [0, 30, 2, 1], fast2: [1, 20, 2, 1], fast3: [1, 10, 2, 1], game: [1, 10, 2, 1] },
  );
  t.deepEqual([presets.game.sndWnd, presets.game.rcvWnd, presets.game.mtu], [256, 256, 1200]);
  t.true(Object.isFrozen(presets));
});

test('every knob is validated with a clear message', (t) => {
  for (const [key, value] of [
    ['interval', 5],
    ['sndWnd', 0],
    ['rcvWnd', 70000],
    ['mtu', 70000],
    ['resend', -1],
    ['nodelay', 'yes'],
    ['stream', 1],
    ['deadLink', 1],
    ['idleTimeout', 0],
    ['maxMessageSize', 1.5],
    ['highWaterMark', 0],
    ['minRto', 0],
  ]) {
    const err = t.throws(() => kcpwatch.createServer({ [key]: value }), { code: 'KCP_ERR_INVALID_OPTION' });
    t.regex(err.message, new RegExp(key));
  }
});
