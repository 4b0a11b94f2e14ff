/**
 * Polls `probe` until it returns true, failing after a generous ceiling: how the lib's tests wait for a
 * recovery without sleeping a fixed time or asserting on timings (the app's tests have the same helper).
 */
export async function eventually(
  probe: () => boolean | Promise<boolean>,
  ceilingMs = 15_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + ceilingMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ceilingMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
