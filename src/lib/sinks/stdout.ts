// StdoutSink: writes each result's bytes to standard output (`-o -`), honouring backpressure.
import type { Writable } from 'node:stream';
import type { FrameSink, ProcessedFrame } from '../frame';

export class StdoutSink implements FrameSink {
  constructor(private readonly stream: Writable = process.stdout) {}

  write(processed: ProcessedFrame): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stream.write(processed.result.data, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}
