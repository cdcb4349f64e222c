/** The batch checkpoint file: resume state across reopenings, compaction, torn and damaged lines. */
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../edge/batch/checkpoint.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-checkpoint-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const key = (i: number): string => `in/${String(i).padStart(5, '0')}.png`;

describe('batch checkpoint', () => {
  it('keeps the watermark, the keys settled past it and the failures across a reopening and a compaction', async () => {
    const file = join(dir, 'a.jsonl');
    const cp = await Checkpoint.open(file, 'run-a', { fsync: false });
    expect(cp.startAfter).toBeUndefined();
    // 5000 settled in order (past the 4096 appends that trigger a compaction), then two out of order and a failure.
    for (let i = 0; i < 5000; i++) await cp.record(key(i), {}, key(i));
    await cp.record(key(5002), {}, key(4999));
    await cp.record(key(5004), { failed: 'IMAGE_CORRUPT' }, undefined);
    await cp.close();
    const text = await readFile(file, 'utf8');
    expect(text.split('\n').length).toBeLessThan(1000); // compacted

    const again = await Checkpoint.open(file, 'run-a', { fsync: false });
    expect(again.startAfter).toBe(key(4999));
    expect(again.settled(key(17))).toBe('done');
    expect(again.settled(key(5000))).toBeUndefined();
    expect(again.settled(key(5002))).toBe('done');
    expect(again.settled(key(5004))).toBe('failed');
    expect([...again.failures()]).toEqual([[key(5004), 'IMAGE_CORRUPT']]);
    await again.advanceTo(key(5002));
    await again.close();
    const third = await Checkpoint.open(file, 'run-a', { fsync: false });
    expect(third.startAfter).toBe(key(5002));
    await third.close();
  });

  it('cuts off a torn last line, refuses a damaged earlier one, and refuses another run unless fresh', async () => {
    const file = join(dir, 'b.jsonl');
    const cp = await Checkpoint.open(file, 'run-b', { fsync: false });
    await cp.record(key(1), {}, key(1));
    await cp.close();
    // A power cut mid-append: the last record has no newline yet.
    await appendFile(file, '{"t":"done","key":"in/00002.png","af');
    const reopened = await Checkpoint.open(file, 'run-b', { fsync: false });
    expect(reopened.startAfter).toBe(key(1));
    expect(reopened.settled(key(2))).toBeUndefined();
    await reopened.record(key(2), {}, key(2));
    await reopened.close();
    expect((await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown)).toHaveLength(3);

    await expect(Checkpoint.open(file, 'run-other')).rejects.toMatchObject({ code: 'BATCH_CHECKPOINT_MISMATCH' });
    const fresh = await Checkpoint.open(file, 'run-other', { fresh: true, fsync: false });
    expect(fresh.startAfter).toBeUndefined();
    await fresh.close();

    const damaged = join(dir, 'c.jsonl');
    await writeFile(damaged, '{"t":"run","id":"run-c"}\nnot json\n{"t":"done","key":"k","after":"k"}\n');
    await expect(Checkpoint.open(damaged, 'run-c')).rejects.toMatchObject({ code: 'BATCH_CHECKPOINT_CORRUPT' });
  });
});
