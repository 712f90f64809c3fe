import { vhostOf, type Config } from '../config';
import { formatDrift } from '../topology/drift';
import { allNames, loadDefinitions, retargetDefinitions } from '../topology/definitions';
import { findDrift } from '../topology/check';
import { OperatorError } from './operatorError';

/**
 * `warren topology check`: the whole definitions file against the live
 * broker, every difference on its own line. Exit 0 on a match, 1 on drift,
 * 2 when the broker cannot be compared (unreachable, stats not there yet).
 */
export async function topologyCheck(config: Config, print: (text: string) => void = console.log): Promise<number> {
  const vhost = vhostOf(config.amqp.url);
  const file = config.amqp.definitionsFile;
  const defs = retargetDefinitions(loadDefinitions(file), vhost);
  let drift;
  try {
    drift = await findDrift({ managementUrl: config.amqp.managementUrl, vhost, defs, ...allNames(defs), full: true });
  } catch (err) {
    throw new OperatorError(`warren topology check: cannot compare: ${(err as Error).message}`, 2);
  }
  if (drift.length === 0) {
    print(`topology of vhost ${vhost} matches ${file}`);
    return 0;
  }
  print(`topology of vhost ${vhost} differs from ${file} in ${drift.length} place(s) (- missing, ~ different, + not in the definitions):`);
  print(formatDrift(drift));
  return 1;
}
