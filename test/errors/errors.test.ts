/** TandemError against the catalogue: typed codes, retryable defaults, and the catalogue-based classifiers. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { CloudError } from '../../cloud/errors.js';
import { CodecError, type CodecErrorCode } from '../../src/codec/errors.js';
import { ERROR_CATALOGUE, errorInfo, httpStatusOf, isErrorCode, type AreaErrorCode, type ErrorCode } from '../../src/errors/catalogue.js';
import { TandemError, ValidationError } from '../../src/errors/index.js';
import { ProviderError, type ProviderErrorCode } from '../../src/providers/errors.js';
import { DurableAppendFile } from '../../src/residency/append-file.js';
import { isResidencyRefusal, StoreError } from '../../src/residency/errors.js';
import { isPackageCode } from '../../src/runtime/errors.js';

const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

describe('TandemError codes', () => {
  it('takes only catalogue codes', () => {
    // @ts-expect-error: a code the catalogue does not list fails the type check.
    const unlisted = new TandemError('NOT_A_CODE', 'x');
    expect(isErrorCode(unlisted.code)).toBe(false);
    expect(isErrorCode('CODEC_MAGIC')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode(42)).toBe(false);
  });

  it("narrows an area's error class to the area's codes", () => {
    expectTypeOf<ProviderErrorCode>().toEqualTypeOf<AreaErrorCode<'providers'>>();
    expectTypeOf<CodecErrorCode>().toEqualTypeOf<AreaErrorCode<'codec'>>();
    expectTypeOf<'PROVIDER_TIMEOUT'>().toExtend<ProviderErrorCode>();
    expectTypeOf<'CODEC_MAGIC'>().not.toExtend<ProviderErrorCode>();
    // @ts-expect-error: a codec code is not a provider's.
    expect(() => new ProviderError('CODEC_MAGIC', 'x')).not.toThrow();
  });
});

describe('retryable', () => {
  it("defaults to the catalogue's value for every code", () => {
    for (const code of CODES) expect(new TandemError(code, 'x').retryable, code).toBe(ERROR_CATALOGUE[code].retryable === true);
  });

  it('lets a construction site decide for a code that is retryable only sometimes', () => {
    expect(errorInfo('CLOUD_DEADLINE').retryable).toBe('sometimes');
    expect(new CloudError(504, 'CLOUD_DEADLINE', 'queued too long', { retryable: true }).retryable).toBe(true);
    expect(new CloudError(504, 'CLOUD_DEADLINE', 'late on arrival', { retryable: false }).retryable).toBe(false);
    expect(new CloudError(504, 'CLOUD_DEADLINE', 'unsaid').retryable).toBe(false);
  });

  it('follows the catalogue in the area classes', () => {
    expect(new ProviderError('PROVIDER_THROTTLED', 'x').retryable).toBe(true);
    expect(new ProviderError('PROVIDER_AUTH', 'x').retryable).toBe(false);
    expect(new StoreError('unavailable', 's3', 'down').retryable).toBe(true);
    expect(new StoreError('auth', 's3', 'refused').retryable).toBe(false);
    expect(new CodecError('CODEC_TRUNCATED', 'x').retryable).toBe(false);
    expect(new CloudError(503, 'CLOUD_DRAINING', 'x').retryable).toBe(true);
    expect(new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', 'x').retryable).toBe(false);
  });
});

describe('catalogue look-ups', () => {
  it('gives a code its status and area', () => {
    expect(httpStatusOf('CLOUD_TOO_LARGE')).toBe(413);
    expect(httpStatusOf('MODEL_UNKNOWN')).toBe(404);
    expect(httpStatusOf('CLOUD_OVERLOADED')).toBe(429);
    expect(errorInfo('PROVIDER_TLS').area).toBe('providers');
  });

  it('answers an unlisted code that got past the type check (a peer, a worker) as internal', () => {
    expect(httpStatusOf('FROM_A_PEER' as ErrorCode)).toBe(500);
    expect(new TandemError('FROM_A_PEER' as ErrorCode, 'x').retryable).toBe(false);
  });
});

describe('classification without patterns on the code', () => {
  it('takes exactly the RESIDENCY_* codes as residency refusals', () => {
    const refusals = CODES.filter(isResidencyRefusal).sort();
    expect(refusals).toEqual(CODES.filter((c) => c.startsWith('RESIDENCY_')).sort());
    expect(isResidencyRefusal('STORE_AUTH')).toBe(false);
    expect(isResidencyRefusal('CLOUD_AUTH_INVALID')).toBe(false);
  });

  it('takes the package area as package faults, whatever their prefix', () => {
    expect(isPackageCode('RUNTIME_PACKAGE_SHA256')).toBe(true);
    expect(isPackageCode('RUNTIME_MODEL_CHANGED')).toBe(true);
    expect(isPackageCode('RUNTIME_EDGE_RUN')).toBe(false);
    expect(isPackageCode('RUNTIME_MODEL_LOAD')).toBe(false);
  });

  it('puts only CLI_* codes in the cli area (the CLI exits 2 for them)', () => {
    expect(CODES.filter((c) => errorInfo(c).area === 'cli').every((c) => c.startsWith('CLI_'))).toBe(true);
    expect(CODES.filter((c) => c.startsWith('CLI_')).every((c) => errorInfo(c).area === 'cli')).toBe(true);
  });
});

describe('no plain Error across a public boundary', () => {
  it('refuses an append after close with a TandemError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-append-'));
    try {
      const file = await DurableAppendFile.open(join(dir, 'log'), { fsync: false });
      await file.close();
      await expect(file.append(new Uint8Array([1]))).rejects.toMatchObject({ name: 'TandemError', code: 'APPEND_FILE_CLOSED' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps ValidationError a TandemError', () => {
    expect(new ValidationError('CLI_OPTION', 'x')).toBeInstanceOf(TandemError);
  });
});
