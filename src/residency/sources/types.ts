/**
 * Input sources: the objects under a bucket prefix (S3, GCS, OSS) or a local folder, listed one
 * page at a time and read one object at a time, so that a batch over millions of inputs holds
 * at most a page of names and the objects in flight. Every kind lists in its service's key
 * order and can resume a listing after a key, which is what a batch checkpoint records.
 */
import { z } from 'zod';
import { TandemError } from '../../errors/index.js';

const region = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be a region id such as us-east-1 or cn-shanghai');
const prefix = z.string().max(1024).optional();

export const sourceDeclSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('local'), root: z.string().min(1), prefix }).strict(),
  z.object({ type: z.literal('s3'), bucket: z.string().min(3), region, endpoint: z.url().optional(), forcePathStyle: z.boolean().optional(), prefix }).strict(),
  z
    .object({ type: z.literal('gcs'), bucket: z.string().min(3), apiEndpoint: z.url().optional(), projectId: z.string().optional(), authWithCustomEndpoint: z.boolean().optional(), prefix })
    .strict(),
  z.object({ type: z.literal('oss'), bucket: z.string().min(3), region, endpoint: z.url().optional(), pathStyle: z.boolean().optional(), prefix }).strict(),
]);

/** Where a batch reads its inputs (the same connection fields as the policy's store of that type). */
export type SourceDecl = z.infer<typeof sourceDeclSchema>;

export interface SourceObject {
  /** The object's key in its bucket (for a local folder: its path under the root, with "/"). */
  key: string;
  size: number;
}

export interface ListOptions {
  /** List only keys after this one (as the service orders keys); a checkpoint's resume point. */
  startAfter?: string;
  /** Names per page request (the service may return fewer). Default 1000. */
  pageSize?: number;
}

export interface ReadOptions {
  /** Refuse an object larger than this, without reading past the limit. Default 64 MiB. */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface InputSource {
  readonly name: string;
  readonly decl: SourceDecl;
  /** `s3://bucket/prefix`, `gs://…`, `oss://…` or `file:///root/prefix`: names the input set. */
  readonly uri: string;
  /** The objects under the prefix, in key order, fetched a page at a time as the caller iterates. */
  list(options?: ListOptions): AsyncIterable<SourceObject>;
  /** One object's bytes, streamed in and capped at `maxBytes`. Rejects with a `StoreError` or {@link SourceTooLargeError}. */
  read(key: string, options?: ReadOptions): Promise<Uint8Array>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** An input object is larger than the batch accepts. Code `SOURCE_OBJECT_TOO_LARGE`. */
export class SourceTooLargeError extends TandemError {
  constructor(source: string, key: string, maxBytes: number) {
    super('SOURCE_OBJECT_TOO_LARGE', `source "${source}": ${key} is larger than ${maxBytes} bytes`, { details: { source, key, maxBytes } });
  }
}

/**
 * Collects a body stream, refusing it as soon as it passes `maxBytes` (the stream is then
 * destroyed, so the rest is never downloaded).
 */
export async function readCapped(stream: AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void }, source: string, key: string, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      stream.destroy?.();
      throw new SourceTooLargeError(source, key, maxBytes);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** The listing page size, clamped to what every service accepts. */
export function pageSizeOf(options: ListOptions | undefined): number {
  return Math.max(1, Math.min(1000, Math.floor(options?.pageSize ?? 1000)));
}
