/**
 * Colour scales of the heatmaps, light and dark. One rule for every figure:
 *
 * - `sequential`: [0, domain] (attention, probabilities), from the page's background (nothing)
 *   to deep blue (everything).
 * - `diverging`: centred on `center`, the value that means "no effect" (0 for an ablation's
 *   change, the corrupted run's metric for raw patching), drawn in the background's grey; blue is
 *   the direction `better` names ("higher" or "lower" values of the metric are better), red the
 *   other, so blue means "better" on every grid.
 */
export type HeatmapScale = 'sequential' | 'diverging';
export type Better = 'higher' | 'lower';

type Rgb = readonly [number, number, number];

/** ColorBrewer "Blues", light; a dark-background ramp of the same hue. */
const SEQUENTIAL: Record<'light' | 'dark', readonly Rgb[]> = {
  light: [
    [247, 251, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107],
  ],
  dark: [
    [22, 27, 34],
    [24, 60, 110],
    [31, 111, 235],
    [121, 192, 255],
    [202, 232, 255],
  ],
};
/** ColorBrewer "RdBu" (red = worse, blue = better), the centre in the background's grey. */
const DIVERGING: Record<'light' | 'dark', readonly Rgb[]> = {
  light: [
    [178, 24, 43],
    [239, 138, 98],
    [247, 247, 247],
    [103, 169, 207],
    [33, 102, 172],
  ],
  dark: [
    [255, 123, 114],
    [160, 60, 60],
    [48, 54, 61],
    [45, 100, 170],
    [121, 192, 255],
  ],
};

export type Scheme = 'light' | 'dark';

function ramp(stops: readonly Rgb[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [stops[i], stops[i + 1]];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

const rgb = (c: Rgb) => `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;

export interface ScaleOptions {
  scale: HeatmapScale;
  /** |value − center| at full colour (diverging), or the value at full colour (sequential). */
  domain: number;
  center?: number;
  better?: Better;
  scheme?: Scheme;
}

/** Position of `v` along the scale, 0 .. 1 (0.5 = no effect on a diverging scale, 1 = better). */
export function scaleT(v: number, o: ScaleOptions): number {
  const d = o.domain > 0 ? o.domain : 1;
  if (o.scale === 'sequential') return Math.max(0, Math.min(1, v / d));
  const sign = o.better === 'lower' ? -1 : 1;
  return 0.5 + 0.5 * Math.max(-1, Math.min(1, (sign * (v - (o.center ?? 0))) / d));
}

/** Background and a readable text colour for value `v`. */
export function cellColor(v: number, o: ScaleOptions): { background: string; color: string } {
  const scheme = o.scheme ?? 'light';
  if (!Number.isFinite(v)) return scheme === 'dark' ? { background: '#30363d', color: '#e6edf3' } : { background: '#e5e7eb', color: '#374151' };
  const c = ramp((o.scale === 'diverging' ? DIVERGING : SEQUENTIAL)[scheme], scaleT(v, o));
  const luminance = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
  return { background: rgb(c), color: luminance < 0.55 ? '#ffffff' : '#111827' };
}

/** The scale as a CSS gradient (for legends), worse/low on the left. */
export function scaleGradient(scale: HeatmapScale, scheme: Scheme = 'light'): string {
  const stops = (scale === 'diverging' ? DIVERGING : SEQUENTIAL)[scheme];
  return `linear-gradient(to right, ${stops.map(rgb).join(', ')})`;
}

/** The scale's colour stops, low/worse first, for drawing a legend on a canvas or in SVG. */
export function scaleStops(scale: HeatmapScale, scheme: Scheme = 'light'): string[] {
  return (scale === 'diverging' ? DIVERGING : SEQUENTIAL)[scheme].map(rgb);
}

/** `v` with `digits` decimals and a true minus sign. */
export function formatValue(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const s = v.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s.replace('-', '−');
}

/** Light or dark, from a CSS colour's luminance (the element's background). */
export function schemeOf(background: string): Scheme {
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(background);
  if (!m) return 'light';
  const [r, g, b] = m.slice(1).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.4 ? 'dark' : 'light';
}
