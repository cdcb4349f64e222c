/**
 * A head under construction, kept up to date node by node: which nodes it holds (its base,
 * plus the shape-only nodes it can compute), which tensors cross out of it (its frontier, with
 * a hash so equal frontiers are found without comparing them), and which of its nodes the
 * frontier needs (its minimal head). Every update costs the degree of the nodes it touches,
 * so a sweep that adds and removes each node a bounded number of times is linear.
 */
import type { CutGraph } from './cut-graph.js';

/** A growable list of int32s: the sweeps' logs, without a JS array's boxing or GC churn. */
export class IntList {
  private data = new Int32Array(1024);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Int32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  get(i: number): number {
    return this.data[i]!;
  }

  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

export class HeadState {
  private readonly inBase: Uint8Array;
  private readonly inHead: Uint8Array;
  private readonly dead: Uint8Array;
  private readonly live: Uint8Array;
  /** Shape-only nodes: reads not yet available; absorbed at 0. */
  private readonly unavailable: Int32Array;
  /** Children that are not dead; a node is dead (not in the minimal head) at 0. */
  private readonly liveChildren: Int32Array;
  /** Per tensor: readers outside the head. */
  private readonly outside: Int32Array;
  private readonly position: Int32Array;
  private readonly members: Int32Array;
  private readonly pending: number[] = [];
  /** Tensors in the frontier. */
  frontierSize = 0;
  hashA = 0;
  hashB = 0;
  /** Elementary updates done so far: what the tests bound to show the work is linear. */
  work = 0;
  /** Where changes to the minimal head go: rank + 1 for a node joining it, -(rank + 1) for one leaving. */
  log: IntList | undefined;

  /** `log` also receives the nodes the empty head absorbs (shape arithmetic on model inputs). */
  constructor(private readonly g: CutGraph, log?: IntList) {
    this.log = log;
    const { size, reads, children, readers, isInput, producer, shapeOnly } = g;
    const tensors = g.tensorNames.length;
    this.inBase = new Uint8Array(size);
    this.inHead = new Uint8Array(size);
    this.dead = new Uint8Array(size);
    this.live = new Uint8Array(size);
    this.unavailable = new Int32Array(size);
    this.liveChildren = new Int32Array(size);
    this.outside = new Int32Array(tensors);
    this.position = new Int32Array(tensors).fill(-1);
    this.members = new Int32Array(tensors);
    for (let r = 0; r < size; r++) {
      this.liveChildren[r] = children.start[r + 1]! - children.start[r]!;
      if (!shapeOnly[r]) continue;
      let missing = 0;
      for (let i = reads.start[r]!; i < reads.start[r + 1]!; i++) if (!isInput[reads.items[i]!] && producer[reads.items[i]!]! >= 0) missing++;
      this.unavailable[r] = missing;
      if (missing === 0) this.pending.push(r);
    }
    for (let t = 0; t < tensors; t++) {
      this.outside[t] = readers.start[t + 1]! - readers.start[t]!;
      if (isInput[t]) this.refresh(t);
    }
    this.drain();
  }

  /** Puts a node into the base (`on`) or takes it out, and brings everything that follows up to date. */
  set(rank: number, on: boolean): void {
    const flag = on ? 1 : 0;
    if (this.inBase[rank] === flag) return;
    this.inBase[rank] = flag;
    this.pending.push(rank);
    this.drain();
  }

  /** The frontier's tensors (unordered). */
  frontier(): number[] {
    return Array.from(this.members.subarray(0, this.frontierSize));
  }

  private drain(): void {
    while (this.pending.length > 0) this.recheck(this.pending.pop()!);
  }

  private recheck(u: number): void {
    const { writes, reads, readers, parents, shapeOnly, isInput, feedsOutput } = this.g;
    this.work++;
    const head = this.inBase[u] === 1 || (shapeOnly[u] === 1 && this.unavailable[u] === 0) ? 1 : 0;
    if (head !== this.inHead[u]) {
      this.inHead[u] = head;
      const delta = head ? -1 : 1;
      for (let i = writes.start[u]!; i < writes.start[u + 1]!; i++) {
        const t = writes.items[i]!;
        if (isInput[t]) continue;
        this.refresh(t);
        for (let k = readers.start[t]!; k < readers.start[t + 1]!; k++) {
          const s = readers.items[k]!;
          if (!shapeOnly[s]) continue;
          this.unavailable[s]! += delta;
          this.pending.push(s);
        }
      }
      for (let i = reads.start[u]!; i < reads.start[u + 1]!; i++) {
        const t = reads.items[i]!;
        this.outside[t]! += delta;
        this.refresh(t);
      }
    }
    // Dead: in the head, but neither a model output nor anything outside the head depends on it.
    const dead = head === 1 && !feedsOutput[u] && this.liveChildren[u] === 0 ? 1 : 0;
    if (dead !== this.dead[u]) {
      this.dead[u] = dead;
      for (let i = parents.start[u]!; i < parents.start[u + 1]!; i++) {
        const p = parents.items[i]!;
        this.liveChildren[p]! += dead ? -1 : 1;
        this.pending.push(p);
      }
    }
    const live = head === 1 && dead === 0 ? 1 : 0;
    if (live !== this.live[u]) {
      this.live[u] = live;
      this.log?.push(live ? u + 1 : -(u + 1));
    }
  }

  private refresh(t: number): void {
    const { isInput, isOutput, producer, keyA, keyB } = this.g;
    this.work++;
    const p = producer[t]!;
    const available = isInput[t] === 1 || (p >= 0 && this.inHead[p] === 1);
    const want = available && (isOutput[t] === 1 || this.outside[t]! > 0);
    const at = this.position[t]!;
    if (want === at >= 0) return;
    this.hashA ^= keyA[t]!;
    this.hashB ^= keyB[t]!;
    if (want) {
      this.position[t] = this.frontierSize;
      this.members[this.frontierSize++] = t;
    } else {
      const last = this.members[--this.frontierSize]!;
      this.members[at] = last;
      this.position[last] = at;
      this.position[t] = -1;
    }
  }
}
