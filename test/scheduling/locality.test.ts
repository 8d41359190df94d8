// Restore locality scores (src/scheduling/locality.ts), the prioritize answer: the node that
// holds the archive scores MaxExtenderPriority (10), nodes in its zone the configured zone
// score, every other node is left out (kube-scheduler gives an unlisted node 0), and a zone
// score of MinExtenderPriority (0) or less lists no zone nodes at all.
import { describe, expect, it } from '@jest/globals';
import { MaxExtenderPriority } from '../../src/api/extender.js';
import { nodeFacts, type NodeFacts } from '../../src/cluster/facts.js';
import type { RestoreConstraints, RestoreContract } from '../../src/scheduling/restoreContract.js';
import { scoreLocality } from '../../src/scheduling/locality.js';
import { node } from '../helpers/objects.js';

const ZONES: Record<string, string | undefined> = {
  'n-holder': 'zone-a',
  'n-near': 'zone-a',
  'n-near-2': 'zone-a',
  'n-far': 'zone-b',
  'n-nozone': undefined,
};
const FACTS = new Map(
  Object.entries(ZONES).map(([name, zone]) => [name, nodeFacts(node(name, zone === undefined ? {} : { zone }))]),
);
const facts = (name: string): NodeFacts | undefined => FACTS.get(name);

const contract = (constraints: Partial<RestoreConstraints> = {}): RestoreContract => ({
  checkpoint: 'ck-trainer-0',
  constraints: { node: 'n-holder', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o', zone: 'zone-a', ...constraints },
});

describe('scoreLocality', () => {
  it('scores the holder 10 and its zone the zone score, in the order the nodes came, and leaves the rest out', () => {
    const names = ['n-far', 'n-near', 'n-holder', 'n-nozone', 'n-near-2'];
    expect(scoreLocality(contract(), names, facts, 5)).toEqual([
      { Host: 'n-near', Score: 5 },
      { Host: 'n-holder', Score: MaxExtenderPriority },
      { Host: 'n-near-2', Score: 5 },
    ]);
  });

  it('lists no zone nodes when the zone score is 0 or less: a 0 is what an unlisted node gets', () => {
    const names = ['n-holder', 'n-near', 'n-far'];
    expect(scoreLocality(contract(), names, facts, 0)).toEqual([{ Host: 'n-holder', Score: 10 }]);
    expect(scoreLocality(contract(), names, facts, -3)).toEqual([{ Host: 'n-holder', Score: 10 }]);
  });

  it('scores the holder 10 by name alone, even when the extender does not know the node', () => {
    expect(scoreLocality(contract({ node: 'n-gone' }), ['n-gone', 'n-near'], facts, 5)).toEqual([
      { Host: 'n-gone', Score: 10 },
      { Host: 'n-near', Score: 5 },
    ]);
  });

  it('gives zone scores only when the contract names a zone: nodes without one are not "in the same zone"', () => {
    const noZone = contract({ zone: undefined });
    expect(scoreLocality(noZone, ['n-nozone', 'n-near', 'n-holder'], facts, 5)).toEqual([
      { Host: 'n-holder', Score: 10 },
    ]);
  });

  it('leaves out nodes the extender does not know and nodes in another zone', () => {
    expect(scoreLocality(contract({ zone: 'zone-b' }), ['n-unknown', 'n-near', 'n-far'], facts, 7)).toEqual([
      { Host: 'n-far', Score: 7 },
    ]);
  });

  it('answers an empty list when the holder is not among the nodes and no node shares its zone', () => {
    expect(scoreLocality(contract({ zone: 'zone-c' }), ['n-near', 'n-far'], facts, 5)).toEqual([]);
    expect(scoreLocality(contract(), [], facts, 5)).toEqual([]);
  });
});
