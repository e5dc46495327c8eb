/**
 * The loading line of `<pb-model>`: how much has arrived, and, when the total is known, how much
 * is left and about how long it will take. A server that compresses the weights (vite preview
 * gzips .safetensors) sends no Content-Length: the total is then unknown, and the bar is
 * indeterminate rather than full.
 */

/** "2 min 5 s", "40 s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ''}`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The loading line: indeterminate while the total is unknown, with the time left once it is. */
export function describeProgress(p: { loaded: number; total: number; started: number }, now: number): { text: string; fraction: number | null } {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  if (!p.total) return { text: `${mb(p.loaded)} MB so far (size unknown)`, fraction: null };
  const fraction = Math.min(1, p.loaded / p.total);
  const elapsed = (now - p.started) / 1000;
  let left = '';
  if (elapsed > 1 && p.loaded > 0 && fraction < 1) left = `, about ${formatDuration(((p.total - p.loaded) * elapsed) / p.loaded)} left`;
  return { text: `${mb(p.loaded)} of ${mb(p.total)} MB (${Math.floor(100 * fraction)}%)${left}`, fraction };
}
