/**
 * Clears `keys` from the environment and returns what puts them back: for tests that drive an
 * SDK's credential chain, so that neither the machine's own setup nor another test leaks in.
 */
export function isolateEnv(keys: readonly string[]): () => void {
  const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
  for (const k of keys) Reflect.deleteProperty(process.env, k);
  return () => {
    for (const k of keys) {
      const v = saved[k];
      if (v === undefined) Reflect.deleteProperty(process.env, k);
      else process.env[k] = v;
    }
  };
}
