import { LRUCache } from 'lru-cache';
import type { Node } from '../api/kubernetes.js';
import { nodeFacts, type NodeFacts } from './facts.js';

/**
 * Projections of the full Node objects that arrive in requests (nodeCacheCapable: false),
 * keyed by name and resourceVersion so that an unchanged node is projected once.
 */
export class NodeFactsCache {
  private readonly lru: LRUCache<string, NodeFacts>;

  constructor(max: number) {
    this.lru = new LRUCache({ max });
  }

  get size(): number {
    return this.lru.size;
  }

  facts(node: Node): NodeFacts {
    const rv = node.metadata?.resourceVersion;
    if (!rv) return nodeFacts(node);
    const key = `${node.metadata?.name ?? ''}\u0000${rv}`;
    let f = this.lru.get(key);
    if (!f) {
      f = nodeFacts(node);
      this.lru.set(key, f);
    }
    return f;
  }
}
