/**
 * `tandem package greengrass`: the recipe passes the recipe check and serves the packages in
 * the zip; the zip, unpacked as the nucleus does, matches its manifest; and the recipe's own
 * lifecycle scripts, run as the nucleus runs them (variables interpolated, the configuration
 * written by the Run step), start the agent, which answers through the nucleus's IPC
 * (a fake nucleus; the real aws-crt client from the artifact) and stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildGreengrassComponent, checkRecipe, type GreengrassComponent } from '../../cli/edge-artifact/greengrass.js';
import { verifyArtifact } from '../../cli/edge-artifact/manifest.js';
import { extractZip } from '../../cli/edge-artifact/zip.js';
import { encodeRequest } from '../../edge/protocol.js';
import { FakeNucleus, type PublishedMessage } from '../fakes/greengrass-ipc.js';
import { writeDetPackage } from '../../cli/edge-artifact/bench-command.js';

const TOKEN = 'component-token';
const THING = 'gg-core-1';

/** Runs a lifecycle script as the nucleus does: `sh -c`, in the work folder, with the component's environment. */
function runScript(script: string, cwd: string, env: Record<string, string>): { exited: Promise<number | null>; kill: (s: NodeJS.Signals) => void; output: () => string } {
  const child = spawn('sh', ['-c', script], { cwd, env: { PATH: `${dirname(process.execPath)}${delimiter}/usr/bin${delimiter}/bin`, HOME: cwd, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))), kill: (s) => child.kill(s), output: () => out };
}

describe('tandem package greengrass --platform linux-x64', () => {
  let work: string;
  let built: GreengrassComponent;
  let recipe: Record<string, any>;
  let text: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tandem-package-gg-'));
    const pkg = await writeDetPackage(join(work, 'ppocr-det'));
    built = await buildGreengrassComponent({ platform: 'linux-x64', out: join(work, 'component'), models: [pkg], componentVersion: '1.2.3', artifactUri: 's3://my-bucket/tandem/1.2.3/tandem-edge.zip' });
    text = await readFile(built.recipe, 'utf8');
    recipe = parseYaml(text) as Record<string, any>;
  }, 180_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('writes a recipe the check accepts, for this platform and artifact, serving the shipped packages', () => {
    expect(checkRecipe(text)).toEqual([]);
    expect(recipe['ComponentVersion']).toBe('1.2.3');
    expect(recipe['ComponentDependencies']['aws.greengrass.TokenExchangeService']).toMatchObject({ DependencyType: 'HARD' });
    const manifest = recipe['Manifests'][0];
    expect(manifest['Platform']).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(manifest['Artifacts']).toEqual([{ URI: 's3://my-bucket/tandem/1.2.3/tandem-edge.zip', Unarchive: 'ZIP', Permission: { Read: 'OWNER', Execute: 'OWNER' } }]);
    // Nothing is installed on the device: no npm, no registry.
    expect(JSON.stringify(manifest['Lifecycle'])).not.toMatch(/npm|yarn|pnpm/);
    expect(recipe['ComponentConfiguration']['DefaultConfiguration']['edge']['models']).toEqual([
      { name: 'ppocr-det', path: '{artifacts:decompressedPath}/tandem-edge/models/ppocr-det', workers: 1, memoryArena: false, warmup: false },
    ]);
    const broken = text.replace('{artifacts:decompressedPath}/tandem-edge/models/ppocr-det', '{artifacts:decompressedPath}/tandem/models/ppocr-det');
    expect(checkRecipe(broken, work)).toEqual(['the default configuration\'s model "ppocr-det" is not in the artifact']);
    expect(checkRecipe(text.replace("ComponentVersion: '1.2.3'", "ComponentVersion: 'v1'"))).toEqual(['ComponentVersion "v1" is not semantic versioning (MAJOR.MINOR.PATCH)']);
  });

  it('starts with the lifecycle scripts from the unpacked zip, answers through the nucleus and stops cleanly', async () => {
    // The nucleus's layout: the zip unpacked into a folder named after it, and a work folder.
    const decompressed = join(work, 'packages', 'artifacts-unarchived', 'dev.tandem.EdgeAgent', '1.2.3');
    const workPath = join(work, 'work', 'dev.tandem.EdgeAgent');
    await mkdir(workPath, { recursive: true });
    await extractZip(built.zip, join(decompressed, 'tandem-edge'));
    const manifest = await verifyArtifact(join(decompressed, 'tandem-edge'));
    expect(manifest.sdks).toEqual(['greengrass']);
    expect(checkRecipe(text, join(decompressed, 'tandem-edge'))).toEqual([]);

    const nucleus = new FakeNucleus({ socketPath: join(work, 'ipc.socket'), authToken: TOKEN });
    await nucleus.start();
    try {
      const lifecycle = recipe['Manifests'][0]['Lifecycle'];
      const env = { ...lifecycle['Run']['Setenv'], AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: join(work, 'ipc.socket'), SVCUID: TOKEN, AWS_IOT_THING_NAME: THING };
      const edge = recipe['ComponentConfiguration']['DefaultConfiguration']['edge'];
      // A deployment's configuration update: another port, as 8780 may be taken on this machine.
      const configuration = JSON.stringify({ ...edge, http: { ...edge.http, port: 0 } });
      // As a nucleus with its default settings: variables interpolated in the script, not in
      // the configuration it inserts (interpolateComponentConfiguration is off by default).
      const render = (script: string): string =>
        script
          .replaceAll('{artifacts:decompressedPath}', decompressed)
          .replaceAll('{work:path}', workPath)
          .replaceAll('{iot:thingName}', THING)
          .replaceAll('{configuration:/edge}', configuration);

      const install = runScript(render(lifecycle['Install']['Script']), workPath, env);
      expect(await install.exited, install.output()).toBe(0);

      const run = runScript(render(lifecycle['Run']['Script']), workPath, env);
      const until = Date.now() + 60_000;
      while (!nucleus.subscribedTopics().includes(`iotcore:tandem/${THING}/infer`)) {
        if (Date.now() > until) throw new Error(`the agent did not subscribe:\n${run.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const image = await sharp({ create: { width: 160, height: 120, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
      const published = new Promise<PublishedMessage>((resolve) => nucleus.once('published', resolve));
      expect(nucleus.deliver('iotcore', `tandem/${THING}/infer`, encodeRequest({ requestId: 'gg-1', model: 'ppocr-det', image }, 'json'))).toBe(1);
      const reply = await published;
      expect(reply.topic).toBe(`tandem/${THING}/results`);
      expect(JSON.parse(reply.payload.toString()), run.output()).toMatchObject({ requestId: 'gg-1', ok: true, model: 'ppocr-det' });

      // The nucleus stops a component with SIGTERM to the Run process (node itself, through exec).
      run.kill('SIGTERM');
      expect(await run.exited, run.output()).toBe(0);
      expect(run.output()).toMatch(/"drained":true,"flushed":true/);
    } finally {
      await nucleus.stop();
    }
  }, 120_000);
});
