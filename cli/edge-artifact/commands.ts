/**
 * `tandem package edge` and `tandem package greengrass`: device artifacts (see build.ts,
 * greengrass.ts); `tandem bench edge`: their footprint and start-up (bench-command.ts). Each
 * action loads its module when run: registering must stay cheap for every other command.
 */
import { Option, type Command } from 'commander';
import { intAtLeast } from '../options.js';
import type { EdgeBenchCliOptions } from './bench-command.js';
import { PLATFORMS, SDKS, type Platform, type Sdk } from './platforms.js';

interface ArtifactOptions {
  platform: Platform;
  out: string;
  model: string[];
  sdk: Sdk[];
  natives: string[];
  images: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function artifactOptions(command: Command): Command {
  return command
    .addOption(new Option('--platform <platform>', 'device platform').choices(PLATFORMS).makeOptionMandatory())
    .requiredOption('--out <dir>', 'folder to write (new, or empty)')
    .option('--model <package>', 'model package to ship (tandem package create); repeat for more', collect, [])
    .addOption(new Option('--sdk <name...>', 'cloud SDKs to ship (none by default)').choices(SDKS).default([]))
    .option('--natives <dir>', "another platform's binary packages: unpacked, or `npm pack` tarballs; repeat for more", collect, [])
    .option('--no-images', 'leave out sharp: the agent then takes tensors, not images')
    .option('--json', 'print a JSON summary on stdout');
}

export function registerEdgeArtifactCommands(pkg: Command): void {
  artifactOptions(
    pkg.command('edge').description("write a self-contained edge agent for a device: the bundled agent, that platform's native binaries, model packages, edge.yaml and manifest.json"),
  ).action(async (o: ArtifactOptions) => {
    const { buildEdgeArtifact } = await import('./build.js');
    const built = await buildEdgeArtifact({ platform: o.platform, out: o.out, models: o.model, sdks: o.sdk, natives: o.natives, images: o.images });
    const m = built.manifest;
    if (!o.json) {
      process.stdout.write(`${built.dir}\n${m.platform}: ${m.files.length} files, ${(m.bytes / 1e6).toFixed(1)} MB${m.missingOptional.length > 0 ? ` (without optional ${m.missingOptional.join(', ')})` : ''}\n`);
      return;
    }
    process.stdout.write(`${JSON.stringify({ path: built.dir, platform: m.platform, files: m.files.length, bytes: m.bytes, models: m.models, sdks: m.sdks, packages: m.packages, missingOptional: m.missingOptional, bundle: built.bundle })}\n`);
  });

  artifactOptions(pkg.command('greengrass').description('write an AWS IoT Greengrass v2 component: recipe.yaml and tandem-edge.zip, deployable with no registry access'))
    .option('--component-version <version>', "the recipe's ComponentVersion (default: Tandem's version)")
    .option('--artifact-uri <uri>', 'where tandem-edge.zip will be uploaded (s3://…)')
    .action(async (o: ArtifactOptions & { componentVersion?: string; artifactUri?: string }) => {
      const { buildGreengrassComponent } = await import('./greengrass.js');
      const built = await buildGreengrassComponent({
        platform: o.platform,
        out: o.out,
        models: o.model,
        sdks: o.sdk,
        natives: o.natives,
        images: o.images,
        ...(o.componentVersion !== undefined ? { componentVersion: o.componentVersion } : {}),
        ...(o.artifactUri !== undefined ? { artifactUri: o.artifactUri } : {}),
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ recipe: built.recipe, zip: built.zip, zipBytes: built.zipBytes, unpackedBytes: built.manifest.bytes, platform: built.manifest.platform, models: built.manifest.models })}\n`);
      else process.stdout.write(`${built.recipe}\n${built.zip} (${(built.zipBytes / 1e6).toFixed(1)} MB)\n`);
    });
}

/** Attaches `edge` to the shared `tandem bench` command. */
export function registerEdgeBenchCommand(bench: Command): void {
  bench
    .command('edge')
    .description('the packaged edge agent: artifact size per platform, process start to first answer, RSS idle and under load (PP-OCR det, one worker)')
    .option('--json', 'print the result as one JSON line')
    .option('--runs <n>', 'cold starts to time', intAtLeast('--runs', 1, 'CLI_OPTION'), 3)
    .option('--requests <n>', 'requests in the load phase', intAtLeast('--requests', 1, 'CLI_OPTION'), 40)
    .option('--concurrency <n>', 'requests at once in the load phase', intAtLeast('--concurrency', 1, 'CLI_OPTION'), 4)
    .option('--natives <dir>', "other platforms' binary packages (see tandem package edge); repeat for more", collect, [])
    .option('--keep', 'keep the artifacts and print where they are')
    .action(async (o: EdgeBenchCliOptions) => {
      const { runEdgeBenchCommand } = await import('./bench-command.js');
      await runEdgeBenchCommand(o);
    });
}
