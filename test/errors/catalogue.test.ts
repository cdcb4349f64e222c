/**
 * The error catalogue against the sources and the generated reference: every code the sources
 * use is listed, every listed code is used (or reserved), the entries are well-formed, the
 * statuses the cloud's construction sites write agree with it, and docs/reference/errors.md is
 * what the generator makes of it now.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS_DOC_PATH, renderErrorsDoc } from '../../scripts/errors-doc.js';
import { ERROR_AREAS, ERROR_CATALOGUE, isErrorCode, type ErrorInfo } from '../../src/errors/catalogue.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE_DIRS = ['src', 'edge', 'cloud', 'cli', 'demo', 'bench', 'models'];

/** The catalogue itself: its keys are not uses. */
const CATALOGUE_FILES = new Set(['src/errors/catalogue.ts']);
const CATALOGUE_DIR = 'src/errors/catalogue/';

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .filter((f) => !f.startsWith('models/generated/') && !CATALOGUE_FILES.has(f) && !f.startsWith(CATALOGUE_DIR));
}

const SOURCES = SOURCE_DIRS.flatMap(sourceFiles).map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));

/**
 * Upper-case names in the sources that are not Tandem's error codes: other systems' codes the
 * classifiers compare against, and constants of the formats Tandem reads. Environment variable
 * names are told apart by how they are read (see {@link isEnvRead}).
 */
const NOT_ERROR_CODES = new Set([
  // Node, undici and OpenSSL error codes (src/providers/errors.ts classifies them).
  'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
  // google.rpc.Code names the Vertex AI fronts answer with.
  'INVALID_ARGUMENT', 'PERMISSION_DENIED', 'NOT_FOUND', 'RESOURCE_EXHAUSTED', 'DEADLINE_EXCEEDED',
  // SageMaker's own error code for a container's client error.
  'CLIENT_ERROR_FROM_MODEL',
  // ONNX auto_pad values and the protobuf NullValue.
  'SAME_UPPER', 'SAME_LOWER', 'NULL_VALUE',
  // Environment variables read from a list rather than one at a time.
  'SAGEMAKER_BIND_TO_PORT', 'AIP_HTTP_PORT', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY',
  // AWS KMS's data-key spec.
  'AES_256',
]);

/** `env['X']`, `process.env['X']`, `set(env, 'X')`, `intFromEnv(env, 'X')`: the literal names an environment variable. */
function isEnvRead(before: string): boolean {
  return /(?:\benv\[|\benv,\s*|Env\()\s*$/.test(before);
}

const SNAKE_LITERAL = /'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g;
/** One-word codes are only taken where a code is certainly meant: as an error's code argument. */
const CODE_ARGUMENT = /(?:new \w*Error|super|badRequest|unauthorized)\(\s*(?:\d{3},\s*)?'([A-Z][A-Z0-9_]*)'/g;

function usedCodes(): Map<string, string> {
  const used = new Map<string, string>();
  for (const { file, text } of SOURCES) {
    for (const m of text.matchAll(SNAKE_LITERAL)) {
      const name = m[1] as string;
      if (NOT_ERROR_CODES.has(name) || isEnvRead(text.slice(Math.max(0, m.index - 30), m.index))) continue;
      if (!used.has(name)) used.set(name, file);
    }
    for (const m of text.matchAll(CODE_ARGUMENT)) if (!used.has(m[1] as string)) used.set(m[1] as string, file);
  }
  return used;
}

const VALID_STATUSES = new Set([400, 401, 403, 404, 408, 413, 429, 499, 500, 501, 503, 504]);
const entries = Object.entries(ERROR_CATALOGUE) as [string, ErrorInfo][];

describe('the error catalogue', () => {
  it('lists every code the sources use', () => {
    const missing = [...usedCodes()].filter(([code]) => !isErrorCode(code)).map(([code, file]) => `${code} (${file})`);
    expect(missing).toEqual([]);
  });

  it('lists no code the sources do not use, unless it is marked reserved', () => {
    const text = SOURCES.map((s) => s.text).join('\n');
    const unused = entries.filter(([code, info]) => !info.reserved && !text.includes(`'${code}'`)).map(([code]) => code);
    expect(unused).toEqual([]);
  });

  it('lists each code once, in one area', () => {
    const listed = Object.values(ERROR_AREAS).flatMap((table) => Object.keys(table));
    expect(listed.length).toBe(new Set(listed).size);
    expect(listed.length).toBe(entries.length);
    for (const [area, table] of Object.entries(ERROR_AREAS)) for (const info of Object.values(table)) expect(info.area).toBe(area);
  });

  it('gives every code a valid status, a retryable flag and a one-line meaning', () => {
    for (const [code, info] of entries) {
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/);
      expect(VALID_STATUSES.has(info.status), `${code}: status ${info.status}`).toBe(true);
      for (const s of info.alsoStatus ?? []) expect(VALID_STATUSES.has(s) && s !== info.status, `${code}: alsoStatus ${s}`).toBe(true);
      expect([true, false, 'sometimes']).toContain(info.retryable);
      expect(info.meaning.trim().length, code).toBeGreaterThan(10);
      expect(info.meaning, code).not.toMatch(/\n/);
      expect(info.meaning, code).toMatch(/[.)]$/);
    }
  });

  it("agrees with the statuses the cloud service's construction sites write", () => {
    const sites = [
      { pattern: /new CloudError\(\s*(\d{3}),\s*'([A-Z_0-9]+)'/g, status: (m: RegExpMatchArray) => Number(m[1]), code: (m: RegExpMatchArray) => m[2] as string },
      { pattern: /badRequest\(\s*'([A-Z_0-9]+)'/g, status: () => 400, code: (m: RegExpMatchArray) => m[1] as string },
      { pattern: /unauthorized\(\s*'([A-Z_0-9]+)'/g, status: () => 403, code: (m: RegExpMatchArray) => m[1] as string },
    ];
    const wrong: string[] = [];
    let seen = 0;
    for (const { file, text } of SOURCES) {
      for (const site of sites) {
        for (const m of text.matchAll(site.pattern)) {
          seen++;
          const code = site.code(m);
          const status = site.status(m);
          const info: ErrorInfo | undefined = isErrorCode(code) ? ERROR_CATALOGUE[code] : undefined;
          if (!info || (info.status !== status && !(info.alsoStatus as readonly number[] | undefined)?.includes(status))) wrong.push(`${file}: ${code} ${status}`);
        }
      }
    }
    expect(seen).toBeGreaterThan(20);
    expect(wrong).toEqual([]);
  });
});

describe('docs/reference/errors.md', () => {
  it('is what `npm run docs:errors` generates from the catalogue now', () => {
    const onDisk = readFileSync(join(ROOT, ERRORS_DOC_PATH), 'utf8');
    expect(onDisk, 'docs/reference/errors.md is stale: run npm run docs:errors').toBe(renderErrorsDoc());
  });

  it('has a table row for every code', () => {
    const doc = renderErrorsDoc();
    for (const [code] of entries) expect(doc).toContain(`| \`${code}\` |`);
  });
});
