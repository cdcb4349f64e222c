/**
 * One bare onnxruntime-node process for the pool-scaling reference in `overhead.ts`: it loads
 * the model with the edge workers' session options and one intra-op thread, then runs it as
 * many times as the parent asks, on an input it builds once, and answers when done. Two of
 * these running at once is the physical limit a two-worker pool can reach on this machine.
 */
import * as ort from 'onnxruntime-node';

interface Start { model: string; shape: number[] }
interface Run { runs: number }

const send = (message: unknown): void => {
  process.send?.(message);
};

let session: ort.InferenceSession | undefined;
let feeds: Record<string, ort.Tensor> = {};

process.on('message', (message: Start | Run) => {
  void (async () => {
    if ('model' in message) {
      session = await ort.InferenceSession.create(message.model, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
      const n = message.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
      feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, message.shape) };
      await session.run(feeds);
      send({ ready: true });
      return;
    }
    if (!session) throw new Error('run before start');
    for (let i = 0; i < message.runs; i++) await session.run(feeds);
    send({ done: message.runs });
  })().catch((error: unknown) => {
    send({ error: error instanceof Error ? error.message : String(error) });
  });
});
process.on('disconnect', () => process.exit(0));
