/**
 * Deferred loading of heavy optional dependencies (the cloud SDKs). Importing the package root
 * must stay cheap on small edge devices, so each SDK is loaded by the first client or store
 * that actually talks to that cloud, and never by an app that does not.
 */

/**
 * One asynchronously built value (an SDK module, or a client built from it), built on first
 * `get()` and shared by every later call. A failed build is not cached: the next call tries
 * again (a package installed after start, a transient EMFILE). `peek` lets `close()` release
 * only what was actually built.
 */
export class LazyValue<T> {
  private pending: Promise<T> | undefined;

  constructor(private readonly build: () => Promise<T>) {}

  get(): Promise<T> {
    this.pending ??= this.build().catch((error: unknown) => {
      this.pending = undefined;
      throw error;
    });
    return this.pending;
  }

  /** The value if a build was started and succeeds; undefined if none was started or it failed. */
  async peek(): Promise<T | undefined> {
    if (this.pending === undefined) return undefined;
    try {
      return await this.pending;
    } catch {
      return undefined;
    }
  }
}
