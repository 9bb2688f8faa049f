/**
 * Population stability index, sum over bins of (a - e) * ln(a / e). An empty window bin would
 * make ln(0), so window shares get half a row of additive smoothing per bin:
 * a_i = (c_i + 0.5) / (n + 0.5 k). The fleet-wide recording rules use the same formula.
 */
export const PSI_SMOOTHING = 0.5;
export function psi(counts: ArrayLike<number>, n: number, expected: readonly number[]): number {
  const k = expected.length;
  let total = 0;
  for (let i = 0; i < k; i++) {
    const a = (counts[i]! + PSI_SMOOTHING) / (n + PSI_SMOOTHING * k);
    const e = expected[i]!;
    total += (a - e) * Math.log(a / e);
  }
  return total;
}
