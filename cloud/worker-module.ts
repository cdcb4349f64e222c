/**
 * Starting one of the service's worker-thread modules (tail-worker, json-worker): the compiled
 * `.js` next to this file, or, when the sources run through tsx, the `.ts` imported by a
 * bootstrap that registers tsx first (`--import` does not reach a worker).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** `name`: the module's file name without its extension, in this folder. */
export function startModuleWorker(name: string, options: { resourceLimits?: ResourceLimits } = {}): Worker {
  const js = new URL(`./${name}.js`, import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js, options);
  const ts = JSON.stringify(new URL(`./${name}.ts`, import.meta.url).href);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${tsx}).then(({ register }) => { register(); return import(${ts}); });`, { eval: true, ...options });
}
