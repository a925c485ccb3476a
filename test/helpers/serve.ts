// `bgrm serve` (or a worker) as a separate process, and small HTTP helpers for the tests.
import type { ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { procStatusKiB } from '../../src/lib/rss';
import { spawnBgrm } from './cli';

export interface Served {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** stopProcess with its last output: the exit code, or null when it had to be killed (default grace 60 s). */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * SIGTERM, then `exited`; a process still running `graceMs` later is killed (SIGKILL) and said so on
 * stderr (with `lastOutput`), so that cleanup never hangs a suite and a slow shutdown stays visible.
 */
export async function stopProcess<T>(child: ChildProcess, exited: Promise<T>, graceMs: number, name: string, lastOutput = ''): Promise<T> {
  child.kill('SIGTERM');
  const killer = setTimeout(() => {
    process.stderr.write(`${name} still running ${graceMs} ms after SIGTERM: killed.${lastOutput ? ` Its last output:\n${lastOutput}` : ''}\n`);
    child.kill('SIGKILL');
  }, graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(killer);
  }
}

/** Spawns `bgrm ARGS` and waits until it prints a line matching `ready` (whose group 1 is the URL). */
export function spawnUntil(args: string[], ready: RegExp, timeoutMs = 120000, env?: NodeJS.ProcessEnv): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawnBgrm(args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    let out = '';
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bgrm ${args[0]} did not start within ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = ready.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          child,
          stderr: () => err,
          stdout: () => out,
          exited,
          stop: (graceMs = 60000) => stopProcess(child, exited, graceMs, `bgrm ${args[0]}`, err.slice(-2000)),
        });
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`bgrm ${args[0]} exited ${code} before it was ready:\n${err}`));
    });
  });
}

export function startServe(args: string[] = [], env?: NodeJS.ProcessEnv): Promise<Served> {
  return spawnUntil(['serve', '--port', '0', ...args], /bgrm serve: (http:\/\/[^/\s]+)\//, 120000, env);
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request; `body` may be a Buffer or chunks written one by one (chunked encoding). */
export function request(url: string, opts: { method?: string; headers?: Record<string, string | number>; body?: Buffer; chunks?: Buffer[] } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? (opts.body || opts.chunks ? 'POST' : 'GET'), headers: opts.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.chunks) {
      const write = (i: number): void => {
        if (i >= opts.chunks!.length || req.destroyed) return void req.end();
        req.write(opts.chunks![i], () => setImmediate(() => write(i + 1)));
      };
      write(0);
    } else req.end(opts.body);
  });
}

/** The process's resident set now, in KiB (NaN where there is none, so that an assertion on it fails). */
export function rssKiB(pid: number): number {
  return procStatusKiB('VmRSS', pid) ?? NaN;
}
