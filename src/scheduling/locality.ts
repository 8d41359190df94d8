import type { NodeFacts } from '../cluster/facts.js';
import { MaxExtenderPriority, MinExtenderPriority, type HostPriority } from '../api/extender.js';
import type { RestoreContract } from './restoreContract.js';

/**
 * The prioritize extension point: restore where the archive already is (10), else in its
 * zone (zoneScore), else anywhere (0). Scores are integers: kube-scheduler rejects 7.5.
 * Zero scores are left out: kube-scheduler gives a node the extender does not list 0, and
 * at 5,000 nodes the list of zeros is most of the answer's size and encoding time.
 */
export function scoreLocality(
  contract: RestoreContract,
  names: readonly string[],
  facts: (name: string) => NodeFacts | undefined,
  zoneScore: number,
): HostPriority[] {
  const { node, zone } = contract.constraints;
  const scores: HostPriority[] = [];
  for (const name of names) {
    if (name === node) scores.push({ Host: name, Score: MaxExtenderPriority });
    else if (zoneScore > MinExtenderPriority && zone !== undefined && facts(name)?.zone === zone)
      scores.push({ Host: name, Score: zoneScore });
  }
  return scores;
}
