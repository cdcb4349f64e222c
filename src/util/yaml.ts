/**
 * One guarded YAML parse for the files operators write (edge.yaml, residency policies): every
 * failure of the parser comes back as issues with a line, for the caller's typed config error,
 * instead of escaping as a bare exception (an alias bomb's "Excessive alias count", a stack
 * overflow on absurd nesting).
 */
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';

/**
 * Alias expansions a document may make, counted the yaml package's way (each alias times the
 * nodes it copies). Hand-written configs use a few anchors; a "billion laughs" document needs
 * far more, and would otherwise grow exponentially in memory.
 */
export const MAX_YAML_ALIAS_COUNT = 100;

export interface YamlIssue {
  message: string;
  /** 1-based, when the parser gave a position. */
  line?: number;
  column?: number;
}

export type YamlParse =
  | { ok: true; doc: Document; lineCounter: LineCounter; value: unknown }
  | { ok: false; issues: YamlIssue[]; cause?: unknown };

/** Parses YAML (or JSON) text; never throws. `uniqueKeys` refuses a key given twice in one map. */
export function parseYamlSafely(text: string, options: { uniqueKeys?: boolean } = {}): YamlParse {
  const lineCounter = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: options.uniqueKeys ?? true });
  } catch (error) {
    return { ok: false, issues: [{ message: `cannot parse: ${describe(error)}` }], cause: error };
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { message: e.message.split('\n')[0] ?? e.message, line: pos.line, column: pos.col };
      }),
    };
  }
  try {
    return { ok: true, doc, lineCounter, value: doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT }) };
  } catch (error) {
    const aliases = error instanceof ReferenceError && /alias/i.test(error.message);
    const message = aliases
      ? `aliases expand past ${MAX_YAML_ALIAS_COUNT} nodes (a YAML alias bomb?); write the values out`
      : `cannot read the document: ${describe(error)}`;
    return { ok: false, issues: [{ message }], cause: error };
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The 1-based line and column of the deepest node on `path` that exists in `doc`: a missing
 * key has no node, so a problem with it points at its closest enclosing node.
 */
export function positionOf(doc: Document, counter: LineCounter, path: readonly PropertyKey[]): { line?: number; column?: number } {
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as unknown[], true);
    if (isNode(node) && node.range) {
      const pos = counter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

/** A config key path as messages write it: `endpoints[0].url`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}
