// Multinomial logistic regression by full-batch gradient descent: no randomness, so the same data gives
// the same weights on every run, which keeps the committed models and fixtures reproducible.

export interface SoftmaxModel {
  /** One row of raw-feature weights per class. */
  coefficients: number[][];
  intercepts: number[];
}

export interface FitOptions {
  iterations: number;
  learningRate: number;
  /** sklearn's C: the L2 penalty is |W|^2 / (2 C), which keeps weights finite on separable classes. */
  c: number;
}

export function softmax(scores: number[]): number[] {
  const top = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

export function scores(m: SoftmaxModel, x: number[]): number[] {
  return m.coefficients.map((w, k) => x.reduce((s, v, j) => s + v * w[j]!, m.intercepts[k]!));
}

/** y holds class indices 0..classes-1. */
export function fitSoftmax(X: number[][], y: number[], classes: number, opts: FitOptions): SoftmaxModel {
  const n = X.length;
  const f = X[0]!.length;
  // Standardized features make one learning rate suit every column; the fit is folded back to raw units.
  const mean = Array.from({ length: f }, (_, j) => X.reduce((s, r) => s + r[j]!, 0) / n);
  const sd = mean.map((m, j) => Math.sqrt(X.reduce((s, r) => s + (r[j]! - m) ** 2, 0) / n) || 1);
  const Z = X.map((r) => r.map((v, j) => (v - mean[j]!) / sd[j]!));
  const W = Array.from({ length: classes }, () => new Array<number>(f).fill(0));
  const b = new Array<number>(classes).fill(0);
  for (let it = 0; it < opts.iterations; it++) {
    const gW = W.map((w) => w.map((v) => v / opts.c));
    const gb = new Array<number>(classes).fill(0);
    Z.forEach((z, i) => {
      const p = softmax(scores({ coefficients: W, intercepts: b }, z));
      p.forEach((pk, k) => {
        const err = pk - (y[i] === k ? 1 : 0);
        gb[k] += err;
        z.forEach((v, j) => (gW[k]![j] += err * v));
      });
    });
    W.forEach((w, k) => w.forEach((_, j) => (w[j] -= (opts.learningRate * gW[k]![j]!) / n)));
    b.forEach((_, k) => (b[k] -= (opts.learningRate * gb[k]!) / n));
  }
  const coefficients = W.map((w) => w.map((v, j) => v / sd[j]!));
  const intercepts = b.map((bk, k) => bk - coefficients[k]!.reduce((s, w, j) => s + w * mean[j]!, 0));
  return { coefficients, intercepts };
}
