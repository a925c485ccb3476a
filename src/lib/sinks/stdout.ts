// StdoutSink: writes each result's bytes to standard output (`-o -`), honouring backpressure.
import type { Writable } from 'node:stream';
import type { FrameSink, ProcessedFrame } from '../frame';
import { releaseBytes } from '../native';

export class StdoutSink implements FrameSink {
  constructor(private readonly stream: Writable = process.stdout) {}

  async write(processed: ProcessedFrame): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.stream.write(processed.result.data, (err) => (err ? reject(err) : resolve()));
    });
    releaseBytes(processed.result.data);
  }

  async close(): Promise<void> {}
}
