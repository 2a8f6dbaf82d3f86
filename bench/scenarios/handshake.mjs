// Handshakes per second per core (issue #18): what a protocol-v2 handshake costs the server, on
// the sans-IO endpoint in one thread (crates/kcpwatch-proto/examples/handshake_cost.rs): the
// stateless cookie half (HELLO in, COOKIE out), the Noise half (HELLO with the cookie in, ACCEPT
// out), both together, and an estimate without the cookie round trip (the server has no mode
// that skips it: the Noise half less one cookie check). CPU time of the thread, so other work on
// the machine does not count; no sockets, so the kernel's part of the four datagrams is not in
// it. Three runs, the median of each figure.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { root } from '../lib/peers.mjs';
import { median, runDriver } from '../lib/process.mjs';

function build() {
  return new Promise((resolve, reject) => {
    const child = spawn('cargo', ['build', '--release', '--quiet', '-p', 'kcpwatch-proto', '--example', 'handshake_cost'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`cargo build of the handshake_cost example failed (${code}): ${err.slice(-1500)}`));
    });
  });
}

export async function handshake(ctx) {
  await build();
  const bin = join(root, 'target/release/examples/handshake_cost');
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await runDriver(bin, ['--batches', ctx.quick ? '6' : '20'], { timeoutMs: 60_000 }));
  const m = (key) => median(runs.map((r) => r[key]));
  const out = {
    handshakes_per_run: runs[0].handshakes,
    cookie_half_us: m('cookie_half_us'),
    noise_half_us: m('noise_half_us'),
    full_us: m('full_us'),
    cookie_check_us: m('cookie_check_us'),
    without_cookie_us: m('without_cookie_us'),
    full_per_core_s: m('full_per_core_s'),
    without_cookie_per_core_s: m('without_cookie_per_core_s'),
    cookie_replies_per_core_s: m('cookie_replies_per_core_s'),
    runs,
  };
  ctx.progress(`handshake: ${out.full_per_core_s} handshakes/s/core with the cookie round trip`);
  const us = (x) => x.toFixed(1);
  return {
    json: out,
    table: [
      ['handshake v2, server CPU, with the cookie round trip', `${out.full_per_core_s} handshakes/s/core (${us(out.full_us)} us: cookie half ${us(out.cookie_half_us)} + Noise half ${us(out.noise_half_us)})`],
      ['handshake v2, server CPU, without the cookie round trip (est.)', `${out.without_cookie_per_core_s} handshakes/s/core (${us(out.without_cookie_us)} us: Noise half less one cookie check of ${out.cookie_check_us.toFixed(2)} us)`],
      ['handshake v2, server CPU, cookie replies alone', `${out.cookie_replies_per_core_s} COOKIEs/s/core`],
    ],
    chart: [
      { panel: 'Handshakes per second per core (server, sans-IO)', unit: '/s', group: 'v2', peer: 'with cookie', value: out.full_per_core_s },
      { panel: 'Handshakes per second per core (server, sans-IO)', unit: '/s', group: 'v2', peer: 'without cookie (est.)', value: out.without_cookie_per_core_s },
    ],
  };
}
