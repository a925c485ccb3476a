// Lifecycle tracing for diagnosis: BGRM_DEBUG=kafka (or a comma list of areas, or "all") writes one
// timestamped line per step of that area to stderr: group rebalances, transactions, rewinds, the
// stop sequence. Off by default; nothing is formatted when off.
const areas = new Set(
  (process.env.BGRM_DEBUG ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

function tracing(area: string): boolean {
  return areas.has(area) || areas.has('all');
}

/** One line on stderr when `area` is traced; `message` is a function so nothing is built when it is not. */
export function trace(area: string, message: () => string): void {
  if (tracing(area)) process.stderr.write(`[bgrm ${area} ${new Date().toISOString()}] ${message()}\n`);
}
