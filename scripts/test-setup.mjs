#!/usr/bin/env node
// `npm test`'s set-up (npm runs it as `pretest`), done before any test starts so that no test
// builds, downloads or installs anything while other tests run:
//   - the addon and the TypeScript (`npm run build`; cargo makes an up-to-date build cheap);
//   - the kcp-go reference peer (interop/kcp-go), its Go modules downloaded on first use;
//   - the reference C ikcp peer (interop/ikcp): ikcp.c from the checksum-pinned PyPI sdist
//     kcp==0.1.6, compiled with gcc;
//   - rsyslog with its OpenSSL network stream driver, the real receiver of the syslog sink tests:
//     installed with apt on Debian or Ubuntu when running as root, otherwise one clear message
//     saying what to install, and the run stops. The real-receiver tests are never skipped.
// Each step stops the run with one message naming what is missing and how to get it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const RSYSLOG_PACKAGES = ['rsyslog', 'rsyslog-openssl'];

function fail(message) {
  process.stderr.write(`\nnpm test cannot start: ${message}\n\n`);
  process.exit(1);
}

/** The first `name` on PATH, or in `extraDirs` (sbin directories a non-root PATH may lack). */
function which(name, extraDirs = []) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
}

function run(command, args, what) {
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} failed (exit ${r.status ?? r.signal}); its output is above`);
}

function step(text) {
  process.stderr.write(`test set-up: ${text}\n`);
}

function requireToolchains() {
  const missing = [];
  if (!which('cargo')) missing.push('Rust (cargo, rustc: from rustup or your distribution)');
  if (!which('go')) missing.push('Go 1.21 or later (the kcp-go reference peer and the Go protocol tests)');
  if (missing.length > 0) fail(`missing toolchains:\n  - ${missing.join('\n  - ')}\nInstall them and run npm test again.`);
}

const RSYSLOG_DRIVER_DIRS = ['/usr/lib/x86_64-linux-gnu/rsyslog', '/usr/lib/aarch64-linux-gnu/rsyslog', '/usr/lib/rsyslog', '/usr/lib64/rsyslog'];

function rsyslogPresent() {
  return which('rsyslogd', ['/usr/sbin', '/sbin']) !== undefined && RSYSLOG_DRIVER_DIRS.some((d) => existsSync(join(d, 'lmnsd_ossl.so')));
}

function isDebianLike() {
  if (existsSync('/etc/debian_version')) return true;
  try {
    return /^ID(_LIKE)?=.*\b(debian|ubuntu)\b/m.test(readFileSync('/etc/os-release', 'utf8'));
  } catch {
    return false;
  }
}

function ensureRsyslog() {
  if (rsyslogPresent()) return step('rsyslog with lmnsd_ossl found');
  const install = `apt-get install -y ${RSYSLOG_PACKAGES.join(' ')}`;
  const why = 'the syslog sink tests need a real rsyslogd with its TLS driver (lmnsd_ossl), and it is not installed';
  if (process.platform !== 'linux' || !isDebianLike()) {
    fail(`${why}.\nInstall rsyslog and its OpenSSL network stream driver with your package manager (Debian/Ubuntu: ${RSYSLOG_PACKAGES.join(', ')}; Fedora/RHEL: rsyslog, rsyslog-openssl), then run npm test again.`);
  }
  if (process.getuid?.() !== 0 || !which('apt-get', ['/usr/bin'])) {
    fail(`${why}.\nInstall it as root, then run npm test again:\n  sudo apt-get update && sudo ${install}`);
  }
  step(`installing ${RSYSLOG_PACKAGES.join(' ')} with apt-get (Debian, root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...RSYSLOG_PACKAGES]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) fail(`${why}, and \`apt-get ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}).\nInstall it, then run npm test again:\n  ${install}`);
  }
  if (!rsyslogPresent()) fail(`${why}; apt-get installed ${RSYSLOG_PACKAGES.join(' ')} but rsyslogd or lmnsd_ossl.so is still not found.`);
}

requireToolchains();
step('building the addon and the TypeScript (npm run build)');
run('npm', ['run', '--silent', 'build'], 'npm run build');
step('building the kcp-go reference peer (interop/kcp-go; downloads its Go modules on first use)');
run('bash', [join(root, 'interop/kcp-go/build.sh')], 'building interop/kcp-go');
step('building the reference-ikcp peer (interop/ikcp; fetches the pinned kcp==0.1.6 sdist from PyPI on first use)');
run('node', [join(root, 'interop/ikcp/build.mjs')], 'building interop/ikcp');
ensureRsyslog();
step('done');
