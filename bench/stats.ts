/** Median of a non-empty sample; the mean of the two middle values when the count is even. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty sample');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median and range of a sample: what a report shows for a value measured once per round. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Element-wise candidate / baseline, one ratio per round. */
export function ratios(candidate: readonly number[], baseline: readonly number[]): number[] {
  if (candidate.length !== baseline.length) throw new Error('ratios need one value per round on each side');
  return candidate.map((value, i) => value / baseline[i]);
}
