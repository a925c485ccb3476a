// Graceful stop for long commands: the first SIGINT/SIGTERM asks the run to stop starting work and
// finish what is in flight; a second one quits at once (exit 130).
import { trace } from './debug';

export function stopOnSignals(notice?: string): AbortSignal {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    trace('stop', () => `${signal}: ${stop.signal.aborted ? 'quitting now' : 'stopping after the frames in flight'}`);
    if (stop.signal.aborted) process.exit(130);
    if (notice) process.stderr.write(`\n${notice}\n`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return stop.signal;
}
