// StdinSource: one encoded image read whole from standard input (`bgrm process -`).
import type { Readable } from 'node:stream';
import { BgrmError } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { MAX_INPUT_BYTES } from './files';

export class StdinSource implements FrameSource {
  readonly total = 1;
  constructor(private readonly stream: Readable = process.stdin) {}

  async *frames(): AsyncIterable<Frame> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of this.stream) {
      size += (chunk as Buffer).length;
      if (size > MAX_INPUT_BYTES) {
        throw new BgrmError('ERR_INPUT_TOO_LARGE', `standard input is over the ${MAX_INPUT_BYTES}-byte input limit`);
      }
      chunks.push(chunk as Buffer);
    }
    yield { bytes: Buffer.concat(chunks, size), cameraId: 'stdin', frameNumber: 0, timestampMs: Date.now(), origin: 'stdin', name: 'stdin' };
  }
}
