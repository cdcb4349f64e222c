/**
 * The outbox's delivery loop: up to `concurrency` puts in flight, a failed put retried after
 * its backoff, and an ack (or a dead mark, when the policy no longer allows the store) logged
 * once a result is settled. The object key derives from the request id, so a put repeated
 * after a lost ack still leaves one stored copy.
 */
import { TandemError } from '../errors/index.js';
import { StoreError, UnknownDataClassError } from './errors.js';
import { evaluateWrite } from './gate.js';
import { retryDelayMs, type BackoffOptions } from './outbox-backoff.js';
import type { OutboxJournal } from './outbox-journal.js';
import type { Entry, OutboxOptions } from './outbox-types.js';

export interface DeliverySettings {
  backoff: BackoffOptions;
  concurrency: number;
  random: () => number;
  /** Called after each delivery attempt settles (the Outbox wakes its drain() waiters). */
  onSettled: () => void;
}

export class DeliveryLoop {
  private readonly ready: Entry[] = [];
  private inFlight = 0;
  private stopped = false;
  private deliveredCount = 0;

  /** `options` is the Outbox's own options object, read at each use as the Outbox reads it. */
  constructor(
    private readonly options: Pick<OutboxOptions, 'gate' | 'stores' | 'onEvent'>,
    private readonly settings: DeliverySettings,
    private readonly pending: Map<string, Entry>,
    private readonly journal: OutboxJournal,
  ) {}

  /** Results delivered since the outbox opened. */
  get delivered(): number {
    return this.deliveredCount;
  }

  /** Queues an entry; {@link pump} starts it when a slot is free. */
  enqueue(entry: Entry): void {
    this.ready.push(entry);
  }

  pump(): void {
    while (!this.stopped && this.inFlight < this.settings.concurrency && this.ready.length > 0) {
      const entry = this.ready.shift()!;
      if (entry.inFlight || !this.pending.has(entry.rec.id)) continue;
      entry.inFlight = true;
      this.inFlight++;
      void this.deliver(entry)
        .catch((error: unknown) => this.retryLater(entry, error))
        .finally(() => {
          entry.inFlight = false;
          this.inFlight--;
          this.pump();
          this.settings.onSettled();
        });
    }
  }

  /** Stops starting deliveries and cancels pending retries; undelivered results stay in the log. */
  stop(): void {
    this.stopped = true;
    for (const e of this.pending.values()) if (e.timer) clearTimeout(e.timer);
  }

  private async deliver(entry: Entry): Promise<void> {
    const { rec } = entry;
    // Re-checked at delivery: a policy tightened since acceptance must still win.
    let allowed: boolean;
    try {
      allowed = evaluateWrite(this.options.gate.policy, rec.dataClass, rec.origin ?? undefined, rec.store).allowed;
    } catch (error) {
      if (!(error instanceof UnknownDataClassError)) throw error;
      allowed = false;
    }
    if (!allowed) {
      const why = await this.options.gate.checkWrite(rec.dataClass, rec.store, { requestId: rec.id, origin: rec.origin ?? undefined }).then(
        () => 'allowed on re-check',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      this.finish(entry);
      await this.journal.appendMark({ t: 'dead', id: rec.id, why });
      this.options.onEvent?.({ type: 'dead', requestId: rec.id, store: rec.store, why });
      return;
    }
    const store = this.options.stores.get(rec.store);
    entry.attempts++;
    try {
      if (store === undefined) throw new StoreError('config', rec.store, 'not configured');
      await store.put(rec.key, rec.body, { contentType: rec.contentType, metadata: rec.metadata });
    } catch (error) {
      this.retryLater(entry, error);
      return;
    }
    // Settled before the ack is durable: if the segment goes and the ack is lost, the object is
    // already stored; if the segment stays, the worst case is one more idempotent put. Counted
    // with it: a result that leaves `pending` (and may end a drain) is one `delivered` shows.
    this.finish(entry);
    this.deliveredCount++;
    await this.journal.appendMark({ t: 'ack', id: rec.id });
    this.options.onEvent?.({ type: 'delivered', requestId: rec.id, store: rec.store, key: rec.key, attempts: entry.attempts });
    await this.journal.compact(false);
  }

  private retryLater(entry: Entry, error: unknown): void {
    if (this.stopped || !this.pending.has(entry.rec.id)) return;
    const { rec } = entry;
    const err = error instanceof TandemError ? error : new StoreError('unavailable', rec.store, error instanceof Error ? error.message : String(error), { cause: error });
    const delayMs = retryDelayMs(this.settings.backoff, entry.attempts, this.settings.random);
    this.options.onEvent?.({ type: 'retry', requestId: rec.id, store: rec.store, attempt: entry.attempts, delayMs, error: err });
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.ready.push(entry);
      this.pump();
    }, delayMs);
    // A pending retry must not keep the process alive.
    entry.timer.unref();
  }

  private finish(entry: Entry): void {
    this.pending.delete(entry.rec.id);
    this.journal.release(entry);
  }
}
