import type { NodeFacts } from '../cluster/facts.js';
import { MaxExtenderPriority, MinExtenderPriority, type HostPriority } from '../server/wire.js';
import type { RestoreContract } from './restoreContract.js';

/**
 * The prioritize extension point: restore where the archive already is (10), else in its
 * zone (zoneScore), else anywhere (0). Scores are integers: kube-scheduler rejects 7.5.
 */
export function scoreLocality(
  contract: RestoreContract,
  names: readonly string[],
  facts: (name: string) => NodeFacts | undefined,
  zoneScore: number,
): HostPriority[] {
  const { node, zone } = contract.constraints;
  return names.map((name) => {
    if (name === node) return { Host: name, Score: MaxExtenderPriority };
    if (zone !== undefined && facts(name)?.zone === zone) return { Host: name, Score: zoneScore };
    return { Host: name, Score: MinExtenderPriority };
  });
}
