/**
 * Printing sweep grids: nested arrays for --json, compact tables for people. A grid is row-major
 * values over a shape with named axes ([layer, pos], [layer, head], [layer, pos, head],
 * [component, layer, pos], [layer, head, dest_pos, src_pos], ...); a grid of more than two axes
 * prints one table per index of its leading axes.
 */
import { fmt } from './experiment.ts';

export { nest } from '../experiments/grid-json.ts';

const PLURAL: Record<string, string> = {
  layer: 'layers',
  pos: 'positions',
  head: 'heads',
  component: 'components',
  dest_pos: 'destination positions',
  src_pos: 'source positions',
};

/** "2 layers × 17 positions" */
export function describeShape(shape: readonly number[], axes: readonly string[]): string {
  return shape.map((n, i) => `${n} ${n === 1 ? axes[i] : (PLURAL[axes[i]] ?? axes[i])}`).join(' × ');
}

export interface TableOptions {
  /** Names of the first axis' indices (grids of 3 or more axes), e.g. ['resid_pre', 'attn_out', 'mlp_out']. */
  leadingNames?: readonly string[];
  digits?: number;
}

/**
 * The grid as text tables, two-space indented: a header of column indices, then one row per
 * index of the row axis. The last lines printed are always the last table's rows.
 */
export function printGrid(print: (line: string) => void, values: ArrayLike<number>, shape: readonly number[], axes: readonly string[], options: TableOptions = {}): void {
  const digits = options.digits ?? 3;
  const [R, C] = shape.slice(-2);
  const [rowAxis, colAxis] = axes.slice(-2);
  const leading = shape.slice(0, -2);
  const tables = leading.reduce((a, b) => a * b, 1);
  const cells = Array.from(values, (v) => fmt(v, digits));
  const corner = `${rowAxis[0].toUpperCase()}\\${colAxis === 'pos' ? 'p' : colAxis[0]}`;
  /** "component z, layer 1:" for table t (its indices on the leading axes). */
  const title = (t: number) => {
    const idx: number[] = [];
    for (let i = leading.length - 1, rest = t; i >= 0; i--) {
      idx[i] = rest % leading[i];
      rest = Math.floor(rest / leading[i]);
    }
    return idx.map((v, i) => `${axes[i]} ${i === 0 ? (options.leadingNames?.[v] ?? v) : v}`).join(', ');
  };
  const labelWidth = Math.max(corner.length, String(R - 1).length);
  const width = Math.max(...cells.map((s) => s.length), String(C - 1).length) + 1;
  for (let t = 0; t < tables; t++) {
    if (tables > 1) {
      if (t > 0) print('');
      print(`  ${title(t)}:`);
    }
    print(`  ${corner.padStart(labelWidth)}${Array.from({ length: C }, (_, c) => String(c).padStart(width)).join('')}`);
    for (let r = 0; r < R; r++) {
      const row = cells.slice((t * R + r) * C, (t * R + r + 1) * C);
      print(`  ${String(r).padStart(labelWidth)}${row.map((s) => s.padStart(width)).join('')}`);
    }
  }
}

/** Feature attribution's cells: per position, each feature and its estimated effect. */
export function printFeatureCells(print: (line: string) => void, positions: readonly number[], features: readonly number[][], effects: readonly number[][]): void {
  print('  estimated effect of patching each feature from the clean run (m_patched - m_corrupt):');
  positions.forEach((p, i) => {
    const cells = features[i].map((f, r) => (f < 0 ? '' : `#${f} ${fmt(effects[i][r])}`)).filter(Boolean);
    print(`    ${String(p).padStart(4)}  ${cells.join('  ') || '(no feature differs)'}`);
  });
}
