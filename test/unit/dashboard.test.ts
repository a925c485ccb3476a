// The dashboard's model without Kafka or HTTP: bounded workers and cameras, stopped workers gone,
// a mask shown with its input frame once that is read (the newest pair wins), the series bounded.
import { encodeFrameMessage, type IncomingMessage } from '../../src/lib/kafka/messages';
import { DashboardModel, type FrameFetcher } from '../../src/lib/serve/dashboard';
import { STATUS_KIND } from '../../src/lib/status';

function status(workerId: string, state = 'running'): IncomingMessage {
  const record = { kind: STATUS_KIND, version: 1, workerId, state, at: Date.now(), fps: 2, topic: 'frames', lag: { '0': 3 }, latencyMs: { p50: 100, p95: 200, p99: 300 }, processed: 10 };
  return { topic: 'bgrm.status', partition: 0, offset: 0, value: Buffer.from(JSON.stringify(record)) };
}

function output(camera: string, frameNumber: number, content = 'rgba/png', offset = frameNumber): IncomingMessage {
  const m = encodeFrameMessage({ cameraId: camera, frameNumber, timestampMs: Date.now(), width: 4, height: 4, encoding: 'jpeg', quality: 80 }, Buffer.from(`out ${frameNumber}`), 'binary');
  const headers = [...(m.headers as { [k: string]: string }[]), { 'bgrm-content': content }, { 'bgrm-source': `frames[0]@${offset}` }];
  return { topic: 'cutouts', partition: 0, offset, value: Buffer.from(`out ${frameNumber}`), headers };
}

type Snapshot = { workers: { workerId: string }[]; cameras: { id: string; frameNumber: number; hasFrame: boolean; ready: boolean }[]; series: unknown[] };

describe('dashboard model', () => {
  it('keeps at most 64 workers and 32 cameras, the oldest leaving first; a stopped worker is not shown', () => {
    const model = new DashboardModel();
    for (let i = 0; i < 70; i++) model.onStatus(status(`w${i}`));
    model.onStatus(status('w69', 'stopped'));
    for (let i = 0; i < 40; i++) model.onOutput(output(`cam${i}`, 1));
    const s = model.snapshot({}, null) as Snapshot;
    expect(s.workers).toHaveLength(63); // 64 kept, w69 stopped
    expect(s.workers.map((w) => w.workerId)).not.toContain('w0');
    expect(s.cameras).toHaveLength(32);
    expect(s.cameras.every((c) => c.ready && !c.hasFrame)).toBe(true);
  });

  it('ignores records that are not status records or not frames', () => {
    const model = new DashboardModel();
    model.onStatus({ topic: 'bgrm.status', partition: 0, offset: 0, value: Buffer.from('{"kind":"other"}') });
    model.onStatus({ topic: 'bgrm.status', partition: 0, offset: 1, value: Buffer.from('not json') });
    model.onOutput({ topic: 'cutouts', partition: 0, offset: 0, value: Buffer.from('no headers') });
    const s = model.snapshot({}, null) as Snapshot;
    expect([s.workers.length, s.cameras.length]).toEqual([0, 0]);
  });

  it('shows a mask with its input frame once the frame is read; until then the last complete pair', async () => {
    const reads: number[] = [];
    const fetcher: FrameFetcher = {
      fetchesFrames: true,
      fetchFrame: async (source) => {
        reads.push(source.offset);
        return Buffer.from(`frame ${source.offset}`);
      },
    };
    const model = new DashboardModel(fetcher);
    model.onOutput(output('cam', 5, 'mask/png'));
    let cam = (model.snapshot({}, null) as Snapshot).cameras[0];
    expect(cam.ready).toBe(false); // no pair yet
    await new Promise((r) => setImmediate(r));
    cam = (model.snapshot({}, null) as Snapshot).cameras[0];
    expect([cam.ready, cam.hasFrame, cam.frameNumber]).toEqual([true, true, 5]);
    expect(model.cameras.get('cam')?.shown?.frame?.toString()).toBe('frame 5');
    model.onOutput(output('cam', 6, 'mask/png'));
    expect(model.cameras.get('cam')?.shown?.frameNumber).toBe(5); // the complete pair stays until 6's frame is read
    await new Promise((r) => setImmediate(r));
    expect(model.cameras.get('cam')?.shown?.frameNumber).toBe(6);
    expect(reads).toEqual([5, 6]);
  });

  it('keeps 300 points of series, summing the live workers', () => {
    const model = new DashboardModel();
    model.onStatus(status('a'));
    model.onStatus(status('b'));
    for (let i = 0; i < 310; i++) model.sample(i);
    const s = model.snapshot({}, null) as { series: { http: number; workers: number; p95: number; lag: number }[] };
    expect(s.series).toHaveLength(300);
    expect(s.series[299]).toMatchObject({ http: 309, workers: 4, p95: 200, lag: 6 });
  });
});
