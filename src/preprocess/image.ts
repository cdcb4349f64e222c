/**
 * Turns an encoded image (JPEG, PNG, WebP) or a raw pixel buffer into the input tensor a
 * model expects, as its manifest pipeline declares. sharp decodes and resizes; the layout,
 * channel order, normalisation and dtype are applied here in one pass.
 */
import type { Metadata, OutputInfo, Sharp, SharpOptions } from 'sharp';
import { LazyValue } from '../lazy.js';
import type { Tensor } from '../tensor/index.js';
import { raceAbort, type DeadlineOptions, type EndedBy } from '../util/deadline.js';
import { ImageError } from './errors.js';
import type { PipelineSpec } from './schema.js';

/** Interleaved 8-bit pixels (HWC), e.g. straight from a camera. */
export interface RawImage {
  pixels: Uint8Array;
  width: number;
  height: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA). */
  channels: number;
}

/** What an image pipeline accepts: encoded bytes or raw pixels. */
export type ImageInput = Uint8Array | RawImage;

const DECODABLE = new Set(['jpeg', 'png', 'webp']);

// Loaded by the first image that needs decoding: apps that feed tensors never pay for libvips.
const sharpModule = new LazyValue<typeof import('sharp')>(() => import('sharp'));

async function loadSharp(): Promise<(input: Uint8Array, options: SharpOptions) => Sharp> {
  try {
    return (await sharpModule.get()).default;
  } catch (error) {
    throw new ImageError('IMAGE_DECODER_UNAVAILABLE', `the image decoder (sharp) cannot be loaded: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

export function isRawImage(value: unknown): value is RawImage {
  return typeof value === 'object' && value !== null && 'pixels' in value && (value as RawImage).pixels instanceof Uint8Array;
}

interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** The request an image belongs to: its decode counts against the request's deadline. */
export interface ImageCallOptions extends DeadlineOptions {
  /** The error the caller's abort or the deadline ends the wait with (the runtime's own codes). */
  ended?: (by: EndedBy, reason: unknown) => Error;
}

/**
 * Runs `spec` on `input`. Rejects with {@link ImageError} for unusable images, or with
 * `options.ended`'s error when the caller's signal or deadline ends the decode first.
 */
export async function imageToTensor(input: ImageInput, spec: PipelineSpec, options: ImageCallOptions = {}): Promise<Tensor> {
  const source = isRawImage(input) ? checkRaw(input, spec) : await checkEncoded(input, spec);
  // The header is cheap, the decode is not: nothing starts once the request is over, and the
  // wait ends with it. sharp cannot be cancelled, so an abandoned decode runs on, bounded by
  // the limits checked above.
  const ended = options.ended ?? defaultEnded;
  if (options.signal?.aborted) throw ended('abort', options.signal.reason);
  if (options.deadline !== undefined && Date.now() >= options.deadline) throw ended('deadline', undefined);
  const decoded = await raceAbort(decode(source, spec), options, ended);
  const cropped = spec.crop ? crop(decoded, spec.crop) : decoded;
  return toTensor(cropped, spec);
}

type Source = { kind: 'raw'; image: RawImage } | { kind: 'encoded'; bytes: Uint8Array };

function checkRaw(image: RawImage, spec: PipelineSpec): Source {
  const { width, height, channels, pixels } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new ImageError('IMAGE_ZERO_SIZE', `raw image dimensions must be non-negative integers, got ${width}×${height}`);
  }
  if (width === 0 || height === 0) throw new ImageError('IMAGE_ZERO_SIZE', `raw image is ${width}×${height}`);
  if (![1, 3, 4].includes(channels)) throw new ImageError('IMAGE_CHANNELS', `raw images need 1, 3 or 4 channels, got ${channels}`, { details: { channels } });
  checkSize(width, height, spec);
  if (pixels.byteLength !== width * height * channels) {
    throw new ImageError('IMAGE_RAW_LENGTH', `a ${width}×${height}×${channels} raw image needs ${width * height * channels} bytes, got ${pixels.byteLength}`);
  }
  return { kind: 'raw', image };
}

async function checkEncoded(bytes: Uint8Array, spec: PipelineSpec): Promise<Source> {
  if (!(bytes instanceof Uint8Array)) throw new ImageError('IMAGE_CORRUPT', 'an image must be a Uint8Array/Buffer or a raw pixel buffer');
  if (bytes.byteLength === 0) throw new ImageError('IMAGE_EMPTY', 'the image is empty (0 bytes)');
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    // Reading the header only: the pixel limit is checked before anything is decoded.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new ImageError('IMAGE_CORRUPT', 'the image cannot be decoded (corrupt or not an image)', { cause: error });
  }
  if (!meta.format || !DECODABLE.has(meta.format)) {
    throw new ImageError('IMAGE_FORMAT', `unsupported image format ${meta.format ?? 'unknown'}; use JPEG, PNG, WebP or raw pixels`, { details: { format: meta.format } });
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width === 0 || height === 0) throw new ImageError('IMAGE_ZERO_SIZE', `the image is ${width}×${height}`);
  checkSize(width, height, spec);
  return { kind: 'encoded', bytes };
}

/** The limits that bound a decode's CPU, checked on the header's dimensions. */
function checkSize(width: number, height: number, spec: PipelineSpec): void {
  if (width * height > spec.maxPixels) {
    throw new ImageError('IMAGE_TOO_LARGE', `the image is ${width}×${height} = ${width * height} pixels, over the limit of ${spec.maxPixels}`, {
      details: { width, height, limit: spec.maxPixels },
    });
  }
  const long = Math.max(width, height);
  if (long > spec.maxSide) {
    throw new ImageError('IMAGE_TOO_LARGE', `the image is ${width}×${height}; its longer side is over the limit of ${spec.maxSide} pixels`, {
      details: { width, height, maxSide: spec.maxSide },
    });
  }
  const ratio = long / Math.min(width, height);
  if (ratio > spec.maxAspectRatio) {
    throw new ImageError('IMAGE_ASPECT_RATIO', `the image is ${width}×${height}, an aspect ratio of ${ratio.toFixed(1)}:1, over the limit of ${spec.maxAspectRatio}:1`, {
      details: { width, height, maxAspectRatio: spec.maxAspectRatio },
    });
  }
}

/** Without a caller's mapping: the abort's reason, or a TimeoutError as `AbortSignal.timeout` gives. */
function defaultEnded(by: EndedBy, reason: unknown): Error {
  if (by === 'deadline') return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
  return reason instanceof Error ? reason : new Error('aborted');
}

async function decode(source: Source, spec: PipelineSpec): Promise<Pixels> {
  const sharp = await loadSharp();
  const options: SharpOptions = { limitInputPixels: spec.maxPixels, failOn: 'error' };
  let img =
    source.kind === 'raw'
      ? sharp(source.image.pixels, { ...options, raw: { width: source.image.width, height: source.image.height, channels: source.image.channels as 1 | 3 | 4 } })
      : sharp(source.bytes, options);
  if (spec.autoOrient && source.kind === 'encoded') img = img.rotate();
  const gray = spec.colorOrder === 'gray';
  img = img.removeAlpha().toColourspace(gray ? 'b-w' : 'srgb');
  const r = spec.resize;
  if (r) {
    switch (r.mode) {
      case 'stretch':
        img = img.resize(r.width, r.height, { fit: 'fill' });
        break;
      case 'pad':
        img = img.resize(r.width, r.height, {
          fit: 'contain',
          position: r.position === 'centre' ? 'centre' : 'northwest',
          background: { r: r.padColor[0] ?? 0, g: r.padColor[1] ?? 0, b: r.padColor[2] ?? 0, alpha: 1 },
        });
        break;
      case 'cover':
        img = img.resize(r.width, r.height, { fit: 'cover', position: 'centre' });
        break;
      case 'shorter-side':
        img = img.resize(r.size, r.size, { fit: 'outside' });
        break;
    }
  }
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/pixel limit/i.test(message)) throw new ImageError('IMAGE_TOO_LARGE', `the image is over the limit of ${spec.maxPixels} pixels`, { cause: error });
    throw new ImageError('IMAGE_CORRUPT', `the image cannot be decoded: ${message}`, { cause: error });
  }
  const expected = gray ? 1 : 3;
  if (out.info.channels !== expected) {
    throw new ImageError('IMAGE_CHANNELS', `the image decoded to ${out.info.channels} channels; the pipeline needs ${expected}`, { details: { channels: out.info.channels } });
  }
  return { data: out.data, width: out.info.width, height: out.info.height, channels: out.info.channels };
}

function crop(px: Pixels, spec: NonNullable<PipelineSpec['crop']>): Pixels {
  const left = 'left' in spec ? spec.left : Math.floor((px.width - spec.width) / 2);
  const top = 'top' in spec ? spec.top : Math.floor((px.height - spec.height) / 2);
  if (left < 0 || top < 0 || left + spec.width > px.width || top + spec.height > px.height) {
    throw new ImageError('IMAGE_CROP', `cannot crop ${spec.width}×${spec.height} at (${left}, ${top}) from a ${px.width}×${px.height} image`);
  }
  const rowBytes = spec.width * px.channels;
  const data = new Uint8Array(spec.height * rowBytes);
  for (let y = 0; y < spec.height; y++) {
    const from = ((top + y) * px.width + left) * px.channels;
    data.set(px.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { data, width: spec.width, height: spec.height, channels: px.channels };
}

function toTensor(px: Pixels, spec: PipelineSpec): Tensor {
  const { width, height, channels } = px;
  const plane = width * height;
  const n = plane * channels;
  const bgr = spec.colorOrder === 'bgr';
  const nchw = spec.layout === 'nchw';
  const dims = nchw ? [1, channels, height, width] : [1, height, width, channels];
  // Per-channel affine map: value = pixel × a[c] + b[c].
  const scale = spec.scale ?? 1;
  const a = new Float64Array(channels);
  const b = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const mean = spec.mean ? (spec.mean.length === 1 ? spec.mean[0]! : spec.mean[c]!) : 0;
    const std = spec.std ? (spec.std.length === 1 ? spec.std[0]! : spec.std[c]!) : 1;
    a[c] = scale / std;
    b[c] = -mean / std;
  }
  const index = (i: number, c: number): number => (nchw ? c * plane + i : i * channels + c);
  if (spec.dtype === 'uint8') {
    const data = new Uint8Array(n);
    for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) data[index(i, c)] = px.data[i * channels + (bgr ? channels - 1 - c : c)]!;
    return { dtype: 'uint8', dims, data };
  }
  const values = new Float32Array(n);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < channels; c++) {
      const src = bgr ? channels - 1 - c : c;
      values[index(i, c)] = px.data[i * channels + src]! * a[c]! + b[c]!;
    }
  }
  if (spec.dtype === 'float16') return { dtype: 'float16', dims, data: toFloat16Bits(values) };
  return { dtype: 'float32', dims, data: values };
}

/** IEEE 754 half-precision bit patterns, round to nearest even. */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i]!;
    const x = u[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && (half & 1))) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
    e = half;
    out[i] = sign | e;
  }
  return out;
}
