/**
 * A plain ZIP writer (deflate, Unix modes, no ZIP64: an artifact is far below 4 GiB and 65 535
 * files) for the Greengrass artifact, which the nucleus unarchives (`Unarchive: ZIP`), and the
 * matching reader the tests and the bench unpack it with. No dependency: the repository has
 * no zip library, and a device-side tool must not be assumed on the build machine.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { deflateRaw, inflateRawSync } from 'node:zlib';
import { TandemError } from '../../src/errors/index.js';
import { crc32 } from '../../src/util/index.js';

// Fixed DOS timestamp (1980-01-01): the same inputs make the same zip, byte for byte.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
/** Files compressed ahead of the one being written. */
const AHEAD = 4;
const deflate = promisify(deflateRaw);

interface Packed {
  data: Buffer;
  packed: Buffer;
  mode: number;
}

/** Writes `files` (relative paths with `/`, read from `root`) into the zip file `out`. */
export async function writeZip(out: string, root: string, files: readonly string[]): Promise<number> {
  const stream = createWriteStream(out);
  const central: Buffer[] = [];
  let offset = 0;
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      offset += b.length;
      stream.write(b, (error) => (error ? reject(error) : resolve()));
    });
  // Compressed a few files ahead, on libuv's thread pool (deflate is most of the time spent
  // here), and written in order.
  const pack = async (path: string): Promise<Packed> => {
    const full = join(root, path);
    const data = await readFile(full);
    return { data, packed: await deflate(data), mode: (await stat(full)).mode & 0o777 };
  };
  const pending = new Map<number, Promise<Packed>>();
  const start = (i: number): void => {
    const path = files[i];
    if (path === undefined) return;
    const p = pack(path);
    p.catch(() => undefined); // awaited below, in order; this only keeps it from counting as unhandled
    pending.set(i, p);
  };
  for (let i = 0; i < AHEAD; i++) start(i);
  for (const [i, path] of files.entries()) {
    start(i + AHEAD);
    const { data, packed, mode } = await (pending.get(i) as Promise<Packed>);
    pending.delete(i);
    const stored = packed.length >= data.length;
    const body = stored ? data : packed;
    const name = Buffer.from(path, 'utf8');
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(stored ? 0 : 8, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE((3 << 8) | 20, 4); // made by Unix: the external attributes carry the mode
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(0x0800, 8);
    header.writeUInt16LE(stored ? 0 : 8, 10);
    header.writeUInt16LE(DOS_TIME, 12);
    header.writeUInt16LE(DOS_DATE, 14);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(body.length, 20);
    header.writeUInt32LE(data.length, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE(((0o100000 | mode) << 16) >>> 0, 38);
    header.writeUInt32LE(offset, 42);
    central.push(header, name);
    await write(local);
    await write(name);
    await write(body);
  }
  const dir = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  await write(dir);
  await write(end);
  stream.end();
  await finished(stream);
  return offset;
}

export interface ZipEntry {
  path: string;
  mode: number;
  data: Buffer;
}

/** Reads every entry of a zip written by {@link writeZip} (or any zip without ZIP64 or encryption). */
export async function readZip(file: string): Promise<ZipEntry[]> {
  const zip = await readFile(file);
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new TandemError('ARTIFACT_MANIFEST', `${file} is not a zip file`, { details: { file } });
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    const mode = (zip.readUInt32LE(at + 38) >>> 16) & 0o777;
    const localAt = zip.readUInt32LE(at + 42);
    const path = zip.toString('utf8', at + 46, at + 46 + nameLength);
    const start = localAt + 30 + zip.readUInt16LE(localAt + 26) + zip.readUInt16LE(localAt + 28);
    const body = zip.subarray(start, start + size);
    entries.push({ path, mode, data: method === 8 ? inflateRawSync(body) : Buffer.from(body) });
    at += 46 + nameLength + extra;
  }
  return entries;
}

/** Unpacks a zip into `dir`, with each file's mode. */
export async function extractZip(file: string, dir: string): Promise<void> {
  for (const entry of await readZip(file)) {
    if (entry.path.startsWith('/') || entry.path.split('/').includes('..')) {
      throw new TandemError('ARTIFACT_MANIFEST', `${file} has an entry outside its folder: ${entry.path}`, { details: { file, path: entry.path } });
    }
    const target = join(dir, ...entry.path.split('/'));
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, entry.data, { mode: entry.mode || 0o644 });
  }
}
