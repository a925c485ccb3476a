// Runs the bgrm CLI as a separate process, the way a user does.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { cli } from './testdata';

/** bgrm processes started by the running test file and not yet exited. */
const running = new Set<ChildProcess>();

/**
 * Starts `bgrm ARGS` as a child that the test file's end kills if it is still running (a test that
 * timed out leaves no worker behind to keep Jest, and CI, waiting).
 */
export function spawnBgrm(args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(process.execPath, [cli, ...args], options);
  running.add(child);
  child.on('close', () => running.delete(child));
  return child;
}

/** Kills what spawnBgrm started and is still running (test/helpers/setup.ts, after each file); says so. */
export function killLeftovers(): void {
  for (const child of running) {
    // one a test already signalled is on its way out: killed without a word
    if (!child.killed) process.stderr.write(`a test left bgrm ${child.spawnargs.slice(2, 3).join(' ')} (pid ${child.pid}) running: killed\n`);
    child.kill('SIGKILL');
  }
  running.clear();
}

export interface CliResult {
  code: number | null;
  /** The signal that ended the process, when one did (code is null then). */
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export function runCli(args: string[], opts: { stdin?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnBgrm(args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
    if (opts.stdin) child.stdin!.end(opts.stdin);
    else child.stdin!.end();
  });
}
