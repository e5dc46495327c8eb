/** Error messages for hook names. */
import { similarNames } from '../util/similar-names.ts';

/** "unknown hook point X; did you mean Y, Z?" with the nearest names by edit distance. */
export function unknownHookMessage(name: string, known: string[]): string {
  return `unknown hook point "${name}"; did you mean ${similarNames(name, known).join(', ')}?`;
}
