/**
 * Cut discovery in time and memory linear in the model (see docs/design/cuts.md). Candidate
 * heads are the prefixes of the topological order and the ancestor closure of every node; a
 * head's cut is its frontier once shape-only nodes are absorbed. Instead of building each
 * candidate (quadratic), two sweeps keep one head up to date:
 *
 * - the prefix sweep adds the nodes in order: every prefix is one step away from the last;
 * - the ancestor sweep keeps the nodes still "open" at rank r (those with a descendant at r or
 *   later). The ancestors of node r are those open nodes minus the few that do not reach r,
 *   found by walking back from r only until every earlier open node is known to reach it;
 *   they are taken out, the cut read, and put back.
 *
 * Frontiers are compared by hash; only distinct ones are turned into tensor names. What each
 * candidate's minimal head holds is kept as a log of changes, so sums over heads (node
 * counts, FLOPs) cost one pass over the log, not one pass over the model per cut.
 */
import type { CutGraph } from './cut-graph.js';
import { HeadState, IntList } from './cut-state.js';

/** A cut crossing more tensors than this is of no use to a planner and is not listed. */
export const MAX_CUT_TENSORS = 64;
/** Nodes the ancestor sweep may walk back from one node; beyond, that node's closure is skipped. */
export const MAX_ANCESTOR_WINDOW = 4096;

export interface FoundCut {
  /** Tensor ids, unordered. */
  readonly tensors: readonly number[];
  /** Which sweep found it (0: prefix, 1: ancestor), and the length of that sweep's log then. */
  readonly sweep: 0 | 1;
  readonly logEnd: number;
  /** Changes on top of the sweep's state: `adjustments[adjustStart … adjustEnd - 1]`. */
  readonly adjustStart: number;
  readonly adjustEnd: number;
}

export interface SweepStats {
  /** Candidate heads looked at, and distinct cuts found. */
  candidates: number;
  distinct: number;
  /** Candidates left out: frontier wider than {@link MAX_CUT_TENSORS}, tensor budget spent, ancestor walk too long. */
  tooWide: number;
  overBudget: number;
  walkTooLong: number;
  /** Largest frontier seen, and elementary updates done (both sweeps, walks included). */
  maxFrontier: number;
  work: number;
}

export interface SweepResult {
  readonly cuts: FoundCut[];
  readonly logs: readonly [Int32Array, Int32Array];
  readonly adjustments: Int32Array;
  readonly stats: SweepStats;
}

export function sweepCuts(g: CutGraph): SweepResult {
  const stats: SweepStats = { candidates: 0, distinct: 0, tooWide: 0, overBudget: 0, walkTooLong: 0, maxFrontier: 0, work: 0 };
  const cuts: FoundCut[] = [];
  const seen = new FrontierSet(2 * g.size + 2);
  // Tensor names kept across all cuts: linear in the model, whatever its width.
  let tensorBudget = 16 * g.size + 4096;
  const adjustments = new IntList();

  const visit = (state: HeadState, sweep: 0 | 1, logEnd: number, adjustStart: number): boolean => {
    stats.candidates++;
    const width = state.frontierSize;
    if (width > stats.maxFrontier) stats.maxFrontier = width;
    if (width > MAX_CUT_TENSORS) {
      stats.tooWide++;
      return false;
    }
    if (seen.has(state.hashA, state.hashB, width)) return false;
    if (width > tensorBudget) {
      stats.overBudget++;
      return false;
    }
    seen.add(state.hashA, state.hashB, width);
    tensorBudget -= width;
    cuts.push({ tensors: state.frontier(), sweep, logEnd, adjustStart, adjustEnd: adjustments.length });
    stats.distinct++;
    return true;
  };

  // Prefixes.
  const prefixLog = new IntList();
  let state = new HeadState(g, prefixLog);
  visit(state, 0, prefixLog.length, 0);
  for (let r = 0; r < g.size; r++) {
    state.set(r, true);
    visit(state, 0, prefixLog.length, 0);
  }
  stats.work += state.work;

  // Ancestor closures.
  const ancestorLog = new IntList();
  state = new HeadState(g, ancestorLog);
  const closing = closingOrder(g);
  const walk = new AncestorWalk(g);
  for (let r = 0; r < g.size; r++) {
    for (let i = closing.start[r]!; i < closing.start[r + 1]!; i++) state.set(closing.items[i]!, false);
    state.set(r, true);
    const outsiders = walk.outsiders(r);
    if (outsiders === undefined) {
      stats.walkTooLong++;
      continue;
    }
    const logEnd = ancestorLog.length;
    const adjustStart = adjustments.length;
    state.log = adjustments;
    for (const u of outsiders) state.set(u, false);
    if (!visit(state, 1, logEnd, adjustStart)) adjustments.length = adjustStart;
    // Putting them back restores the same state: nothing to log.
    state.log = undefined;
    for (const u of outsiders) state.set(u, true);
    state.log = ancestorLog;
  }
  stats.work += state.work + walk.work;
  return { cuts, logs: [prefixLog.toArray(), ancestorLog.toArray()], adjustments: adjustments.toArray(), stats };
}

/**
 * The frontiers seen, by their two independent 32-bit hashes and size (a false match is about
 * one in 2^64 per pair): open addressing over typed arrays, nothing allocated per candidate.
 */
class FrontierSet {
  private readonly a: Int32Array;
  private readonly b: Int32Array;
  /** Size + 1; 0 marks an empty slot. */
  private readonly n: Int32Array;
  private readonly mask: number;

  constructor(expected: number) {
    let capacity = 16;
    while (capacity < 2 * expected) capacity *= 2;
    this.a = new Int32Array(capacity);
    this.b = new Int32Array(capacity);
    this.n = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  private slot(a: number, b: number, n: number): number {
    let i = (Math.imul(a, 0x9e3779b1) ^ b) & this.mask;
    while (this.n[i] !== 0 && !(this.a[i] === a && this.b[i] === b && this.n[i] === n + 1)) i = (i + 1) & this.mask;
    return i;
  }

  has(a: number, b: number, n: number): boolean {
    return this.n[this.slot(a, b, n)] !== 0;
  }

  add(a: number, b: number, n: number): void {
    const i = this.slot(a, b, n);
    this.a[i] = a;
    this.b[i] = b;
    this.n[i] = n + 1;
  }
}

/** Nodes by the step at which they stop being open (one past their last descendant). */
function closingOrder(g: CutGraph): { start: Int32Array; items: Int32Array } {
  const start = new Int32Array(g.size + 2);
  for (let u = 0; u < g.size; u++) start[g.lastDescendant[u]! + 2]!++;
  for (let i = 0; i <= g.size; i++) start[i + 1]! += start[i]!;
  const items = new Int32Array(g.size);
  const at = start.slice();
  for (let u = 0; u < g.size; u++) items[at[g.lastDescendant[u]! + 1]!++] = u;
  return { start, items };
}

/**
 * Finds the open nodes that are not ancestors of a node, walking back from it in rank order.
 * At boundary j, every node up to j that is still open has a child beyond j, so it reaches a
 * node that does (a "boundary" node). Once every boundary node has a child known to reach r,
 * every open node up to j reaches r, and the walk stops. Work: the walk's length times degree.
 */
class AncestorWalk {
  /** Boundary nodes at j: rank ≤ j with a child beyond j. */
  private readonly boundary: Int32Array;
  private readonly reaches: Uint8Array;
  private readonly touched: number[] = [];
  private readonly found: number[] = [];
  private budget: number;
  work = 0;

  constructor(private readonly g: CutGraph) {
    const diff = new Int32Array(g.size + 1);
    for (let u = 0; u < g.size; u++) {
      if (g.lastChild[u]! > u) {
        diff[u]!++;
        diff[g.lastChild[u]!]!--;
      }
    }
    this.boundary = new Int32Array(g.size);
    let running = 0;
    for (let j = 0; j < g.size; j++) this.boundary[j] = running += diff[j]!;
    this.reaches = new Uint8Array(g.size);
    // Linear overall, however the windows fall.
    this.budget = 64 * g.size + 65536;
  }

  /** Open nodes before `r` that do not reach it; undefined when the walk would be too long. */
  outsiders(r: number): number[] | undefined {
    const { parents, lastDescendant } = this.g;
    const { reaches, touched, found } = this;
    found.length = 0;
    // Boundary nodes known to reach r.
    let known = this.mark(r);
    let j = r - 1;
    let ok = true;
    while (j >= 0 && known < this.boundary[j]!) {
      if (r - j > MAX_ANCESTOR_WINDOW || this.budget <= 0) {
        ok = false;
        break;
      }
      this.work++;
      this.budget -= 1 + parents.start[j + 1]! - parents.start[j]!;
      if (reaches[j]) known += this.mark(j) - 1; else if (lastDescendant[j]! >= r) {
        found.push(j);
      }
      j--;
    }
    for (const u of touched) reaches[u] = 0;
    touched.length = 0;
    return ok ? found : undefined;
  }

  /** Marks the parents of `u` as reaching r; returns how many were not marked yet. */
  private mark(u: number): number {
    const { parents } = this.g;
    let added = 0;
    for (let i = parents.start[u]!; i < parents.start[u + 1]!; i++) {
      const p = parents.items[i]!;
      if (this.reaches[p]) continue;
      this.reaches[p] = 1;
      this.touched.push(p);
      added++;
    }
    return added;
  }
}
