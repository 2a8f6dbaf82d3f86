// The KCP knobs are declared once, in Rust (crates/kcpwatch-proto/src/config/knobs.rs), and
// src/generated/kcp-options.ts is written from that declaration. These tests check that the
// TypeScript options and the addon's own check (SessionConfig::validate, run by listen()) accept
// exactly the same values: each bound is taken by both, one past it is refused up front.
import test from 'ava';
import { kcpwatch, require } from './helpers/util.mjs';

const { kcpKnobs, kcpPresets, defaultPresetName } = require('../../dist/generated/kcp-options.js');
const { resolveKcpOptions } = require('../../dist/options.js');

/** Options other knobs need for a bound to be usable (a 1-segment window carries 1 segment). */
const context = {
  mtu: { min: { maxMessageSize: 26 } },
  rcvWnd: { min: { maxMessageSize: 1 } },
  maxMessageSize: { max: { stream: true } },
};

async function listens(t, options) {
  const server = kcpwatch.createServer({ log: false, mode: 'raw', ...options });
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  return server;
}

test('the table is the public presets and names every option knob once', (t) => {
  t.is(kcpwatch.presets, kcpPresets);
  t.true(Object.isFrozen(kcpKnobs) && kcpKnobs.every((k) => Object.isFrozen(k)));
  t.true(Object.values(kcpwatch.presets).every((p) => Object.isFrozen(p)));
  t.is(defaultPresetName, 'game');
  const names = kcpKnobs.map((k) => k.name);
  t.deepEqual(names, [...new Set(names)]);
  t.deepEqual(
    kcpKnobs.filter((k) => k.type === 'integer').map((k) => [k.name, k.min, k.max]),
    [
      ['interval', 10, 5000],
      ['resend', 0, 1000],
      ['sndWnd', 1, 65535],
      ['rcvWnd', 1, 65535],
      ['mtu', 50, 65507],
      ['deadLink', 2, 1000],
      ['idleTimeout', 1, 2 ** 31 - 1],
      ['maxMessageSize', 1, 2 ** 31 - 1],
      ['maxSendQueueBytes', 1, 2 ** 31 - 1],
      ['linger', 0, 2 ** 31 - 1],
      ['minRto', 1, 60000],
    ],
  );
});

test('each integer knob: both bounds are taken by the options and by the addon, one past each is refused naming the range', async (t) => {
  for (const knob of kcpKnobs.filter((k) => k.type === 'integer')) {
    for (const [bound, value, past] of [
      ['min', knob.min, knob.min - 1],
      ['max', knob.max, knob.max + 1],
    ]) {
      const extra = context[knob.name]?.[bound] ?? {};
      // listen() hands the resolved knobs to the addon, whose SessionConfig::validate refuses
      // anything outside the same table: a bound it refused would reject here.
      await t.notThrowsAsync(listens(t, { ...extra, [knob.name]: value }), `${knob.name} ${value}`);
      const range = knob.name === 'mtu' ? '50..65507 in raw mode' : `${knob.min}..${knob.max}`;
      t.throws(() => kcpwatch.createServer({ log: false, mode: 'raw', ...extra, [knob.name]: past }), {
        instanceOf: kcpwatch.KcpInvalidOptionError,
        message: `${knob.name} must be an integer in ${range}, got ${past}`,
      });
    }
  }
});

test('no options: every knob is the default preset\'s value, else the table\'s default (minRto stays unset)', (t) => {
  const resolved = resolveKcpOptions({});
  const preset = kcpPresets[defaultPresetName];
  for (const knob of kcpKnobs) {
    t.is(resolved[knob.name], knob.name in preset ? preset[knob.name] : knob.default, knob.name);
  }
  t.false('minRto' in resolved);
  t.is(resolveKcpOptions({ preset: 'normal', interval: 20 }).interval, 20);
  t.is(resolveKcpOptions({ preset: 'normal' }).sndWnd, 32);
});
