/**
 * Emulating a slower edge device on this host: after each run the worker waits so that the
 * run takes as long as it would on the emulated device.
 *
 * A device `slowdown`× slower has `slowdown`× the compute, not `slowdown`× the scheduling
 * hiccups of the host emulating it: stretching each run's own time turned a 10 ms hiccup on a
 * shared build machine into an 80 ms one at ×8. So by default the wait stretches this host's
 * undisturbed time for the same run — the fastest of its recent runs — and the run's excess
 * over it (contention, hiccups) passes through once. The fastest, not the median: a session's
 * first runs are slow (allocation, warm-up), and a median over a short history would carry
 * them into the next several runs.
 */
import type { WireTensor } from './protocol.js';

/** Recent runs whose fastest is a run's undisturbed time (short enough to follow a lasting change). */
export const RECENT_WINDOW = 15;
/** Distinct runs (model, fetches, shapes) remembered; the oldest is forgotten first. */
const MAX_TRACKED_RUNS = 256;

/** What makes two runs the same computation: the model, what is fetched, and the input shapes. */
export function runKey(task: { model: { sha256: string }; inputs: readonly Pick<WireTensor, 'dims'>[] }, fetches: readonly string[]): string {
  return `${task.model.sha256}|${fetches.join(',')}|${task.inputs.map((t) => t.dims.join('x')).join(';')}`;
}

export class SlowdownEmulator {
  private readonly recent = new Map<string, number[]>();

  /** The wait after a run of `runMs` so that it lasts as long as on the emulated device. */
  extraMs(task: { slowdown: number; stretchJitter: boolean }, key: string, runMs: number): number {
    if (!(task.slowdown > 1)) return 0;
    if (task.stretchJitter) return (task.slowdown - 1) * runMs;
    let runs = this.recent.get(key);
    if (!runs) {
      if (this.recent.size >= MAX_TRACKED_RUNS) this.recent.delete(this.recent.keys().next().value as string);
      runs = [];
      this.recent.set(key, runs);
    }
    runs.push(runMs);
    if (runs.length > RECENT_WINDOW) runs.shift();
    return (task.slowdown - 1) * Math.min(...runs);
  }

  /** Distinct runs currently remembered. */
  get tracked(): number {
    return this.recent.size;
  }
}
