/**
 * Generates docs/reference/errors.md from the error catalogue (src/errors/catalogue.ts).
 * Run with `npm run docs:errors`; test/errors/catalogue.test.ts fails when the file on disk
 * differs from what {@link renderErrorsDoc} gives, so the two cannot drift apart.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_AREAS, type ErrorArea, type ErrorInfo } from '../src/errors/catalogue.js';

/** Where the generated reference lives, from the repository root. */
export const ERRORS_DOC_PATH = 'docs/reference/errors.md';

const AREA_TITLES: Record<ErrorArea, string> = {
  tensor: 'Tensors',
  codec: 'Tensor codec',
  wire: 'JSON wires (OIP v2, Vertex AI)',
  graph: 'Graphs (inspect, split, shapes)',
  planner: 'Planner and profiles',
  preprocess: 'Images and post-processing',
  package: 'Model packages',
  prune: 'Pruning',
  runtime: 'Edge runtime',
  providers: 'Cloud providers (client side)',
  residency: 'Residency, stores, outbox, audit',
  shaper: 'Network shaper',
  edge: 'Edge agent',
  cloud: 'Cloud service',
  cli: 'CLI',
  demo: 'Demo',
  bench: 'Bench',
  models: 'Reference models',
};

const INTRO = `# Errors

<!-- Generated from src/errors/catalogue.ts by \`npm run docs:errors\`; do not edit by hand. -->

Every failure Tandem raises on purpose is a \`TandemError\` (or a subclass) with a stable
\`code\`: branch on the code, never on the message. Each error also says whether it is
\`retryable\` and carries structured \`details\`. The edge agent's replies and the cloud
service's error bodies carry the same code.

- **HTTP**: the status the cloud service or the edge agent's HTTP front answers when the code
  ends a request there. A code that never reaches a front shows the status the same rules give
  it: 400 for the caller's input, 503 for a retryable fault, 500 for the rest. 499 is logged,
  not sent: the client had already left.
- **Retryable**: whether the same request may succeed later. *sometimes*: it depends on where
  the code is raised, as its meaning says.

The CLI exits with 2 for a \`CLI_*\` code or an input that fails validation, 1 for the rest.
`;

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function row(code: string, info: ErrorInfo): string {
  const status = [info.status, ...(info.alsoStatus ?? [])].join(', ');
  const retryable = info.retryable === 'sometimes' ? 'sometimes' : info.retryable ? 'yes' : 'no';
  const meaning = `${info.reserved ? '*(reserved)* ' : ''}${info.meaning}`;
  return `| \`${code}\` | ${status} | ${retryable} | ${cell(meaning)} |`;
}

/** The reference as it should be on disk now. */
export function renderErrorsDoc(): string {
  const sections = (Object.entries(ERROR_AREAS) as [ErrorArea, Readonly<Record<string, ErrorInfo>>][]).map(([area, table]) => {
    const rows = Object.entries(table).map(([code, info]) => row(code, info));
    return [`## ${AREA_TITLES[area]}`, '', '| Code | HTTP | Retryable | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
  });
  return `${INTRO}\n${sections.join('\n\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = fileURLToPath(new URL(`../${ERRORS_DOC_PATH}`, import.meta.url));
  writeFileSync(target, renderErrorsDoc());
  process.stdout.write(`wrote ${ERRORS_DOC_PATH}\n`);
}
