/**
 * A lock file beside a file Tandem rewrites by read, modify and rename (a package's
 * manifest.json), so that concurrent writers, in several processes or in one, take turns and
 * none loses another's change. The lock is created with exclusive create (`wx`) and holds the
 * owner's pid, host, time and a random token.
 *
 * A lock whose owner is gone (its pid is not alive on this host) or that is older than
 * `staleMs` is taken over. Breaking it is itself done under a second exclusive file
 * (`LOCK.break`), and only after checking the lock still holds the very token judged stale:
 * two waiters that both saw the stale lock cannot remove the new owner's lock, so the lock has
 * one owner at a time. (A `LOCK.break` left by a process that died in those few microseconds is
 * removed once its pid is gone or it is older than BREAK_STALE_MS.)
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ModelPackageError } from './errors.js';

export interface FileLockOptions {
  /** How long to wait for the lock before rejecting with RUNTIME_PACKAGE_LOCKED (default 10 s). */
  timeoutMs?: number;
  /** A lock older than this is taken over even if its pid is alive (default 60 s). */
  staleMs?: number;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
export const DEFAULT_LOCK_STALE_MS = 60_000;
/** `LOCK.break` is held for a read and an unlink only. */
const BREAK_STALE_MS = 5_000;
/** An unreadable lock (its owner died between creating and writing it) is stale past this. */
const UNREADABLE_GRACE_MS = 2_000;

interface Holder {
  /** The file's text, compared before taking it over. */
  text: string;
  pid?: number;
  host?: string;
  /** Epoch ms the lock was taken (its mtime when the file does not say). */
  at: number;
}

/** Runs `fn` holding `lockFile`; the lock is released when `fn` settles, whatever it does. */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const token = await acquire(lockFile, options);
  try {
    return await fn();
  } finally {
    await release(lockFile, token);
  }
}

async function acquire(lockFile: string, options: FileLockOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const staleMs = options.staleMs ?? DEFAULT_LOCK_STALE_MS;
  const deadline = Date.now() + timeoutMs;
  const token = randomBytes(12).toString('hex');
  for (let attempt = 0; ; attempt++) {
    if (await tryCreate(lockFile, token)) return token;
    const holder = await readHolder(lockFile); // undefined: released since: try again
    if (holder !== undefined && isStale(holder, staleMs, UNREADABLE_GRACE_MS) && (await breakStale(lockFile, holder))) continue;
    const left = deadline - Date.now();
    if (holder !== undefined && left <= 0) {
      const who = holder.pid === undefined ? 'an unknown process' : `pid ${holder.pid}${holder.host !== undefined && holder.host !== hostname() ? ` on ${holder.host}` : ''}`;
      const since = new Date(holder.at).toISOString();
      throw new ModelPackageError('RUNTIME_PACKAGE_LOCKED', `${lockFile} is held by ${who} since ${since}; gave up after ${timeoutMs} ms (remove the file if that process is gone)`, {
        details: { path: lockFile, pid: holder.pid ?? null, host: holder.host ?? null, since, timeoutMs },
      });
    }
    // Short, growing, jittered waits: writers hold the lock for milliseconds.
    const wait = Math.min(Math.max(left, 1), Math.min(200, 5 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** Creates `file` exclusively with this process's record; false when it exists. */
async function tryCreate(file: string, token: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(`${JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString(), token })}\n`);
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    // Ours, but unusable: an empty lock would hold the others off for the grace time.
    await unlink(file).catch(() => undefined);
    throw error;
  }
  return true;
}

async function readHolder(file: string): Promise<Holder | undefined> {
  let text: string;
  let mtime: number;
  try {
    [text, mtime] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mtimeMs)]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as { pid?: unknown; host?: unknown; at?: unknown };
    const at = typeof parsed.at === 'string' ? Date.parse(parsed.at) : NaN;
    return {
      text,
      ...(Number.isInteger(parsed.pid) && (parsed.pid as number) > 0 ? { pid: parsed.pid as number } : {}),
      ...(typeof parsed.host === 'string' ? { host: parsed.host } : {}),
      at: Number.isFinite(at) ? at : mtime,
    };
  } catch {
    return { text, at: mtime };
  }
}

/** Whether `pid` is a live process on this host (EPERM: alive, someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function isStale(holder: Holder, staleMs: number, unreadableMs: number): boolean {
  const age = Date.now() - holder.at;
  // A pid on another host cannot be checked: only age tells.
  if (holder.pid !== undefined && (holder.host === undefined || holder.host === hostname()) && !alive(holder.pid)) return true;
  return age > (holder.pid === undefined ? unreadableMs : staleMs);
}

/**
 * Removes `lockFile` if it still is the stale `holder`, under `LOCK.break` so only one waiter
 * does; false when another waiter is at it (wait, then look again).
 */
async function breakStale(lockFile: string, holder: Holder): Promise<boolean> {
  const breakFile = `${lockFile}.break`;
  const token = randomBytes(12).toString('hex');
  if (!(await tryCreate(breakFile, token))) {
    const breaker = await readHolder(breakFile);
    if (breaker !== undefined && isStale(breaker, BREAK_STALE_MS, BREAK_STALE_MS)) await unlink(breakFile).catch(ignoreMissing);
    return false;
  }
  try {
    const now = await readHolder(lockFile);
    if (now?.text === holder.text) await unlink(lockFile).catch(ignoreMissing);
  } finally {
    await release(breakFile, token);
  }
  return true;
}

/** Removes `file` if it still holds `token` (a lock taken over as stale is the new owner's). */
async function release(file: string, token: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text.includes(`"token":"${token}"`)) await unlink(file).catch(ignoreMissing);
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
