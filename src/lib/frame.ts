// Frame: the unit that travels from a source, through the native core, to a sink.
import type { ProcessResult } from './native';

export interface Frame {
  /** Encoded image bytes (JPEG/PNG), or raw RGB when `raw` is set. */
  bytes: Buffer;
  raw?: { width: number; height: number };
  cameraId: string;
  frameNumber: number;
  timestampMs: number;
  /** Where the frame came from, for reports (a file path, "stdin", "video.mp4#12"). */
  origin: string;
  /** Output name relative to the sink's folder, without extension ("sub/photo", "000012"). */
  name: string;
  /** Set when the source could not read this frame; the pipeline reports it as a failure. */
  error?: { code: string; message: string };
  /** Set when the frame is deliberately not processed (too old for a live stream); counted, not failed. */
  skip?: string;
  /**
   * The source made `bytes` for this frame alone (a file read, a decoded video frame) and keeps no
   * other reference: the pipeline frees them once the frame is settled.
   */
  owned?: boolean;
}

export interface FrameSource {
  /** Frames in order; the iterator is pulled only as fast as the pipeline has room. */
  frames(): AsyncIterable<Frame>;
  /** Number of frames when known up front (for progress). */
  readonly total?: number;
  /** Frames per second of a video source. */
  readonly fps?: number;
  close?(): Promise<void>;
}

export interface ProcessedFrame {
  frame: Frame;
  result: ProcessResult;
}

export interface FrameSink {
  /**
   * Called in source order for every frame that was processed. The result's bytes are the sink's
   * from then on: nothing reads them after the write, and a sink may free them (releaseBytes).
   */
  write(processed: ProcessedFrame): Promise<void>;
  close(): Promise<void>;
  /** Undo partial output after a fatal error (optional). */
  abort?(): Promise<void>;
}
