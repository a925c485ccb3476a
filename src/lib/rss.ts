// The process's own memory figure, for summaries, status records and /metrics (light: no prom-client).
import { readFileSync } from 'node:fs';

/**
 * The most memory this process has held at once (its peak resident set), in bytes. On Linux from
 * VmHWM in /proc/self/status: getrusage's maxrss survives exec, so a process started by a large
 * one (a benchmark that had just quantised a model) would report its parent's peak.
 */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'latin1'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: the resource usage figure
  }
  return process.resourceUsage().maxRSS * 1024;
}
