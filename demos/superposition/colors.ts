/** Colour scales of the superposition page (plain RGB, for SVG attributes and canvas pixels). */

export type Rgb = [number, number, number];

const mix = (a: Rgb, b: Rgb, t: number): Rgb => a.map((v, k) => Math.round(v + (b[k]! - v) * Math.min(1, Math.max(0, t)))) as Rgb;

export const css = ([r, g, b]: Rgb) => `rgb(${r} ${g} ${b})`;

/** Feature importance, most important (t = 0, yellow) to least (t = 1, purple), as the paper colours features. */
export function importanceColor(t: number): Rgb {
  const stops: Rgb[] = [
    [240, 200, 30],
    [225, 100, 60],
    [150, 40, 120],
    [70, 30, 110],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const k = Math.min(stops.length - 2, Math.floor(x));
  return mix(stops[k]!, stops[k + 1]!, x - k);
}

/** Superposition of a feature: 0 (a dimension to itself: black) to 1 and more (shared: yellow). */
export function superpositionColor(s: number): Rgb {
  return mix([30, 30, 40], [245, 190, 40], s);
}

/** Diverging scale for W W^T entries: -1 blue, 0 white, +1 red. */
export function divergingColor(v: number): Rgb {
  return v >= 0 ? mix([255, 255, 255], [200, 40, 40], v) : mix([255, 255, 255], [40, 80, 200], -v);
}
