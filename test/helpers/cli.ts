// Runs the bgrm CLI as a separate process, the way a user does.
import { spawn } from 'node:child_process';
import { cli } from './testdata';

export interface CliResult {
  code: number | null;
  /** The signal that ended the process, when one did (code is null then). */
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export function runCli(args: string[], opts: { stdin?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
    if (opts.stdin) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}
