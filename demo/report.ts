/**
 * The demo's live table (one line per finished request, printed as replies arrive) and its
 * end-of-run summary by plan and by store, plus the JSON summary line.
 */
export interface DemoRow {
  seq: number;
  requestId: string;
  dataClass: string;
  /** Network phase when the request was sent. */
  phase: string;
  ok: boolean;
  /** `local`, `split@c12→sm-eu`, `offload→eas-sh`, or the error code. */
  plan: string;
  planKind: 'local' | 'split' | 'offload' | 'error';
  fellBack: boolean;
  /** Why it fell back (the endpoint's error code, or `deadline`). */
  fallback?: string;
  latencyMs: number;
  store: string;
  /** Object key of the stored result. */
  key: string;
  boxes: number;
}

export interface DemoSummary {
  requests: number;
  completed: number;
  lost: number;
  /** Requests by plan label (a fallback counts under the plan chosen, marked "↩ local"). */
  plans: Record<string, number>;
  stores: Record<string, number>;
  planKinds: Record<string, number>;
  fallbacks: number;
  /** Results found in a store their class does not allow (must be 0). */
  residencyViolations: number;
  durationMs: number;
}

const COLUMNS: Array<[keyof DemoRow | 'latency', string, number]> = [
  ['seq', '#', 4],
  ['requestId', 'request', 10],
  ['dataClass', 'class', 13],
  ['phase', 'network', 9],
  ['plan', 'plan', 50],
  ['latency', 'latency', 9],
  ['store', 'stored in', 12],
  ['boxes', 'boxes', 5],
];

function pad(text: string, width: number): string {
  return text.length >= width ? `${text.slice(0, width - 1)}…` : text + ' '.repeat(width - text.length);
}

export function tableHeader(): string {
  const head = COLUMNS.map(([, title, w]) => pad(title, w)).join(' ');
  return `${head}\n${COLUMNS.map(([, , w]) => '─'.repeat(w)).join(' ')}`;
}

export function tableRow(row: DemoRow): string {
  return COLUMNS.map(([key, , w]) => {
    switch (key) {
      case 'latency':
        return pad(`${row.latencyMs.toFixed(0)} ms`, w);
      case 'plan':
        return pad(row.fellBack ? `${row.plan} ↩ local${row.fallback ? ` (${row.fallback})` : ''}` : row.plan, w);
      default:
        return pad(String(row[key]), w);
    }
  }).join(' ');
}

export function summarize(rows: readonly DemoRow[], requests: number, residencyViolations: number, durationMs: number): DemoSummary {
  const plans: Record<string, number> = {};
  const stores: Record<string, number> = {};
  const planKinds: Record<string, number> = {};
  let completed = 0;
  let fallbacks = 0;
  for (const r of rows) {
    if (!r.ok) continue;
    completed++;
    const label = r.fellBack ? `${r.plan} ↩ local` : r.plan;
    plans[label] = (plans[label] ?? 0) + 1;
    stores[r.store] = (stores[r.store] ?? 0) + 1;
    const kind = r.fellBack ? 'fallback' : r.planKind;
    planKinds[kind] = (planKinds[kind] ?? 0) + 1;
    if (r.fellBack) fallbacks++;
  }
  return { requests, completed, lost: requests - completed, plans, stores, planKinds, fallbacks, residencyViolations, durationMs: Math.round(durationMs) };
}

function block(title: string, counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const width = Math.max(10, ...entries.map(([k]) => k.length));
  return [title, ...entries.map(([k, v]) => `  ${pad(k, width + 1)} ${String(v).padStart(4)}`)].join('\n');
}

export function summaryText(s: DemoSummary, byClass: Record<string, Record<string, number>>): string {
  const lines = [
    '',
    `requests ${s.requests}, completed ${s.completed}, lost ${s.lost}, fallbacks ${s.fallbacks}, residency violations ${s.residencyViolations}, ${(s.durationMs / 1000).toFixed(1)} s`,
    '',
    block('by plan:', s.plans),
    '',
    block('by store:', s.stores),
    '',
    'by data class → store:',
    ...Object.entries(byClass).map(([cls, st]) => `  ${pad(cls, 14)} ${Object.entries(st).map(([k, v]) => `${k} ${v}`).join(', ')}`),
  ];
  return lines.join('\n');
}
