// The process's own memory figure, for summaries, status records and /metrics (light: no prom-client).

/** The most memory this process has held at once (its peak resident set), in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
