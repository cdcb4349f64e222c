/**
 * `tandem policy check FILE`: prints a JSON summary as the last stdout line; an invalid policy
 * surfaces as a typed error (exit 2). `tandem audit verify` is in audit-commands.ts.
 */
import type { Command } from 'commander';

export function registerResidencyCommands(program: Command): void {
  const policy = program.command('policy').description('Residency policies.');
  policy
    .command('check')
    .argument('<file>', 'policy file (YAML or JSON)')
    .description('Validate a residency policy and explain where each class may go (raw input, or features past a cut depth); errors name the line and the JSON path.')
    .action(async (file: string) => {
      // Loaded with the command, as the other commands' libraries are: `tandem --help` needs none.
      const { allowedSends, allowedStores, describeRule, describeThreshold, evaluateWrite, keyRegionConflict, loadPolicy } = await import('../src/residency/index.js');
      const p = await loadPolicy(file);
      // The rule per class: where raw input may go, where only features past a depth (derived data).
      const sends: Record<string, { raw: string[]; features: Record<string, string> }> = {};
      for (const [cls, rule] of Object.entries(p.classes)) {
        const rules = allowedSends(p, cls);
        const raw = [...rules].filter(([, r]) => r.raw).map(([name]) => name);
        const features = Object.fromEntries([...rules].filter(([, r]) => !r.raw).map(([name, r]) => [name, describeRule(r)]));
        sends[cls] = { raw, features };
        process.stdout.write(`class "${cls}": raw input to ${raw.length ? raw.join(', ') : 'no endpoint'}\n`);
        for (const [name, text] of Object.entries(features)) process.stdout.write(`  ${name}: ${text}\n`);
        for (const f of rule.features) process.stdout.write(`  rule: features to ${f.provider}/${f.regions.join('|')}${f.services ? ` (${f.services.join(', ')})` : ''} past ${describeThreshold(f)}\n`);
      }
      // Valid but probably unintended: a class that can be stored nowhere, a store no class may use.
      const warnings: string[] = [];
      for (const cls of Object.keys(p.classes)) if (allowedStores(p, cls).length === 0) warnings.push(`class "${cls}" may not be stored in any declared store`);
      for (const store of Object.keys(p.stores)) if (!Object.keys(p.classes).some((cls) => evaluateWrite(p, cls, undefined, store).allowed)) warnings.push(`store "${store}" may hold no class`);
      // Keys: a store region without a key (or with one that lives elsewhere) can hold nothing.
      for (const [store, decl] of p.keys === undefined ? [] : Object.entries(p.stores)) {
        const why = keyRegionConflict(p.keys?.[decl.region], decl.region);
        if (why !== undefined) warnings.push(`store "${store}": ${why}`);
      }
      for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
      const summary = {
        ok: true,
        file,
        classes: Object.keys(p.classes),
        origins: Object.keys(p.origins),
        endpoints: Object.keys(p.endpoints),
        stores: Object.keys(p.stores),
        keys: Object.fromEntries(Object.entries(p.keys ?? {}).map(([r, k]) => [r, k.kind])),
        sends,
        warnings,
      };
      process.stdout.write(`policy ${file}: ${summary.classes.length} classes, ${summary.endpoints.length} endpoints, ${summary.stores.length} stores\n`);
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    });
}
