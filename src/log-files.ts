/**
 * The files the log outputs name, checked when a server or the CLI is created: the files
 * records are appended to, and the CA, certificate and key files the outputs read.
 */

import { closeSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

import { KcpInvalidOptionError } from './errors';
import type { LogOptions } from './log';
import type { NativeLogOptions } from './native';
import { describeThrown } from './options';

/** A log file output and the option that named it, for errors. */
export interface LogFileOption {
  option: string;
  path: string;
}

/**
 * The files resolved log options name, each with the option name the user wrote: the log files
 * the outputs append to, and the CA, certificate and key files they read.
 */
export function logPaths(given: unknown, log: NativeLogOptions | undefined): { appended: LogFileOption[]; read: LogFileOption[] } {
  const appended: LogFileOption[] = [];
  const read: LogFileOption[] = [];
  if (!log) return { appended, read };
  const viaOutputs = typeof given === 'object' && given !== null && (given as LogOptions).outputs !== undefined;
  log.outputs.forEach(({ destination: d }, i) => {
    const prefix = viaOutputs ? `log.outputs[${i}].destination` : 'log.destination';
    if (d.type === 'file') appended.push({ option: `${prefix}.file`, path: d.path });
    const tls = d.type === 'syslog' ? (d.transport.kind === 'tls' ? d.transport : undefined) : d.type === 'http' ? d : undefined;
    if (tls?.caFile !== undefined) read.push({ option: `${prefix}.caFile`, path: tls.caFile });
    if (tls?.clientCert) {
      read.push({ option: `${prefix}.certFile`, path: tls.clientCert.certFile });
      read.push({ option: `${prefix}.keyFile`, path: tls.clientCert.keyFile });
    }
  });
  return { appended, read };
}

/** A file an output reads (a CA, a certificate, a key) exists and is a file. */
export function checkReadableFile(path: string, option: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    throw new KcpInvalidOptionError(`${option} ${path}: does not exist or cannot be read (${codeOf(err)})`, { cause: err });
  }
  if (stat.isDirectory()) throw new KcpInvalidOptionError(`${option} ${path}: is a directory, not a file`);
}

/**
 * @internal What can be known of a log file's path without opening it: its directory exists
 * and is one, and the path itself is not a directory. `option` names it in the error
 * (`log.destination.file`, `--log-file`).
 */
export function checkLogFilePath(path: string, option: string): void {
  const dir = dirname(path);
  let dirStat;
  try {
    dirStat = statSync(dir);
  } catch (err) {
    throw new KcpInvalidOptionError(`${option} ${path}: the directory ${dir} does not exist or cannot be read (${codeOf(err)})`, { cause: err });
  }
  if (!dirStat.isDirectory()) throw new KcpInvalidOptionError(`${option} ${path}: ${dir} is not a directory`);
  let stat;
  try {
    stat = statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    throw new KcpInvalidOptionError(`${option} ${path}: cannot be read (${codeOf(err)})`, { cause: err });
  }
  if (stat?.isDirectory()) throw new KcpInvalidOptionError(`${option} ${path}: is a directory, not a file`);
}

/**
 * @internal Opens (creating, as the log thread will) each log file once, so that a path the
 * process cannot write is a typed error naming it rather than the runtime's unnamed failure.
 */
export function openLogFiles(files: LogFileOption[]): void {
  for (const { option, path } of files) {
    try {
      // Only a regular file or a new one: opening a FIFO for writing would wait for a reader.
      const stat = statSync(path, { throwIfNoEntry: false });
      if (stat && !stat.isFile()) continue;
      closeSync(openSync(path, 'a'));
    } catch (err) {
      throw new KcpInvalidOptionError(`${option} ${path}: cannot open it for appending (${codeOf(err)})`, { cause: err });
    }
  }
}

/** An fs error's code and text (`ENOENT: no such file or directory`), or what was thrown. */
function codeOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof Error && typeof e.code === 'string') return e.message.startsWith(e.code) ? e.message.split(',')[0]! : e.code;
  return describeThrown(err);
}
