#!/usr/bin/env node
// Runs a test command with a hard limit on its whole run, and checks that it leaves no process
// behind. Usage: node scripts/bounded.mjs <minutes> <command> [args...]
//
// The command runs in a process group of its own, so every process it starts (ava's workers,
// the `kcpwatch serve` children and Go peers of the tests, rsyslogd) stays findable even when
// its parent died. When the limit passes, the run fails and names the tests that reported last
// and every process still alive, then ends them all: a test run never hangs. When the command
// ends by itself, any process still in its group was left behind by a test: the run fails and
// names it.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const [minutesText, command, ...args] = process.argv.slice(2);
const minutes = Number(minutesText);
if (!command || !(minutes > 0)) {
  process.stderr.write('usage: node scripts/bounded.mjs <minutes> <command> [args...]\n');
  process.exit(2);
}

const TAIL_LINES = 15;
const tail = [];
const remember = (chunk) => {
  for (const line of chunk.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  }
};

const child = spawn(command, args, { stdio: ['inherit', 'pipe', 'pipe'], detached: true });
child.on('error', (error) => {
  process.stderr.write(`✘ cannot start ${command}: ${error.message}\n`);
  process.exit(1);
});
child.stdout.on('data', (d) => (process.stdout.write(d), remember(d)));
child.stderr.on('data', (d) => (process.stderr.write(d), remember(d)));
// Ctrl-C or a CI stop reaches this process; pass it on to the whole group.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killGroup(signal);
    process.exit(1);
  });
}

/** Processes in the command's group other than its leader: pid and command line. */
function groupMembers() {
  const pgid = child.pid;
  const members = [];
  let pids;
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return members; // No /proc (macOS): the limit still holds; leftovers are not listed.
  }
  for (const pid of pids) {
    try {
      // Field 5 of /proc/PID/stat is the process group; the command name (field 2) may hold
      // spaces, so fields are counted after its closing parenthesis.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || Number(pid) === pgid) continue;
      if (fields[0] === 'Z') continue; // A zombie is already dead; its parent just has not reaped it.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      members.push(`${pid} ${cmdline}`);
    } catch {
      // Exited while being read.
    }
  }
  return members;
}

function killGroup(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is empty already.
  }
}

async function endGroup() {
  killGroup('SIGTERM');
  for (let i = 0; i < 50 && groupMembers().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  killGroup('SIGKILL');
}

let limitHit = false;
const limit = setTimeout(async () => {
  limitHit = true;
  const alive = groupMembers();
  process.stderr.write(
    `\n✘ ${[command, ...args].join(' ')} did not end within its limit of ${minutes} min: the run fails.\n` +
      `Last output:\n  ${tail.join('\n  ')}\n` +
      `Processes still alive:\n  ${alive.length > 0 ? alive.join('\n  ') : `${child.pid} ${command}`}\n` +
      'Interrupting the run (ava lists the tests still pending):\n',
  );
  // SIGINT first: ava answers it by naming each test still pending, then exits.
  killGroup('SIGINT');
  await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 10_000))]);
  await endGroup();
  process.exit(1);
}, minutes * 60_000);

child.on('exit', async (code, signal) => {
  if (limitHit) return;
  clearTimeout(limit);
  // A process left behind may hold the command's output open: wait for the output to end only
  // briefly before looking.
  await Promise.race([new Promise((r) => child.once('close', r)), new Promise((r) => setTimeout(r, 2000))]);
  const left = groupMembers();
  if (left.length > 0) {
    process.stderr.write(`\n✘ processes left behind by the tests (a test must end what it starts):\n  ${left.join('\n  ')}\n`);
    await endGroup();
    process.exit(1);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
