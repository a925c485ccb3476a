// The process's own memory figure, for summaries, status records and /metrics (light: no prom-client).
import { readFileSync } from 'node:fs';

const FIELDS = { VmHWM: /^VmHWM:\s+(\d+)\s+kB/m, VmRSS: /^VmRSS:\s+(\d+)\s+kB/m };

/**
 * A memory figure of a process from /proc/PID/status, in KiB: VmRSS (resident now) or VmHWM (its
 * peak). Undefined where there is none (not Linux, or the process has gone).
 */
export function procStatusKiB(field: keyof typeof FIELDS, pid: number | 'self' = 'self'): number | undefined {
  try {
    const m = FIELDS[field].exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The most memory this process has held at once (its peak resident set), in bytes. On Linux from
 * VmHWM in /proc/self/status: getrusage's maxrss survives exec, so a process started by a large
 * one (a benchmark that had just quantised a model) would report its parent's peak.
 */
export function peakRssBytes(): number {
  const kib = procStatusKiB('VmHWM');
  return (kib ?? process.resourceUsage().maxRSS) * 1024; // not Linux: the resource usage figure
}
