/**
 * The largest float32. The model reads and writes float32, so no feature, prediction or label
 * beyond it means anything; and kept below it, every sum and square the monitoring accumulates
 * stays finite (a squared error is at most (2 * 3.4e38)^2 = 4.6e77, a sum of 10^200 of them fits a
 * double), so no single value can turn a counter into +Inf for the life of the process.
 */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** True for a value that may enter the monitoring's sums: a number within float32 range (NaN is not). */
export const withinFloat32 = (v: number): boolean => Math.abs(v) <= FLOAT32_MAX;
