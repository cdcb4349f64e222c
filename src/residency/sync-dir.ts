import { open } from 'node:fs/promises';

/** fsyncs a directory, so a file just created in it still has its name after a crash. */
export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
