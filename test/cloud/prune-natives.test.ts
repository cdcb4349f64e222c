import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = join(process.cwd(), 'cloud/prune-natives.sh');
const here = { os: process.platform, arch: process.arch };
const otherArch = here.arch === 'x64' ? 'arm64' : 'x64';

function tree(dirs: readonly string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'tandem-prune-'));
  for (const d of dirs) {
    mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, d, 'lib.node'), 'x');
  }
  return root;
}

describe('cloud/prune-natives.sh (the image keeps only its own platform\'s native binaries)', () => {
  const roots: string[] = [];
  afterEach(() => {
    for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
  });

  it('keeps this platform\'s onnxruntime-node and aws-crt builds and removes the others', () => {
    const ort = 'onnxruntime-node/bin/napi-v6';
    const crt = 'aws-crt/dist/bin';
    const root = tree([
      `${ort}/${here.os}/${here.arch}`, `${ort}/${here.os}/${otherArch}`, `${ort}/win32/x64`, `${ort}/darwin/arm64`,
      `${crt}/${here.os}-${here.arch}-glibc`, `${crt}/${here.os}-${here.arch}-musl`, `${crt}/${here.os}-${otherArch}-glibc`, `${crt}/win32-x64-cruntime`,
      'sharp/lib',
    ]);
    roots.push(root);
    execFileSync('sh', [SCRIPT, root], { stdio: 'pipe' });
    expect(existsSync(join(root, ort, here.os, here.arch, 'lib.node'))).toBe(true);
    expect(existsSync(join(root, ort, here.os, otherArch))).toBe(false);
    expect(existsSync(join(root, ort, here.os === 'win32' ? 'darwin' : 'win32'))).toBe(false);
    expect(existsSync(join(root, crt, `${here.os}-${here.arch}-glibc`, 'lib.node'))).toBe(true);
    expect(existsSync(join(root, crt, `${here.os}-${here.arch}-musl`, 'lib.node'))).toBe(true);
    expect(existsSync(join(root, crt, `${here.os}-${otherArch}-glibc`))).toBe(false);
    expect(existsSync(join(root, 'sharp/lib/lib.node'))).toBe(true);
  });

  it('fails and removes nothing when onnxruntime-node has no build for this platform', () => {
    const ort = 'onnxruntime-node/bin/napi-v6';
    const root = tree([`${ort}/${here.os}/${otherArch}`, `${ort}/plan9/mips`]);
    roots.push(root);
    const r = spawnSync('sh', [SCRIPT, root], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no .* build; nothing removed/);
    expect(existsSync(join(root, ort, here.os, otherArch, 'lib.node'))).toBe(true);
    expect(existsSync(join(root, ort, 'plan9/mips/lib.node'))).toBe(true);
  });

  it('fails when there is no onnxruntime-node at all (an image that could not run a model)', () => {
    const root = tree(['sharp/lib']);
    roots.push(root);
    const r = spawnSync('sh', [SCRIPT, root], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no onnxruntime-node binaries/);
  });
});
