import { UNKNOWN_CLASS, type ClassificationAnswer } from './model.js';

/**
 * A classifier's answer from JSON, as an upstream model server or an /observe client sends it:
 * a label per row (a class name, or a number for integer classes) and, optionally, per row a map
 * of class to probability. A label outside the baseline's classes is kept as said (its row is an
 * unknown_class outlier); a map that misses a class, names another or holds a non-number makes
 * that row's probabilities invalid (NaN), counted as invalid_probabilities.
 */
export function classAnswerFromJson(classes: readonly string[], labels: readonly unknown[], probabilities: readonly unknown[] | undefined): ClassificationAnswer {
  const rows = labels.length;
  const k = classes.length;
  const index = new Map(classes.map((c, i) => [c, i]));
  const answer: ClassificationAnswer = { task: 'classification', classes: new Int32Array(rows), labels: labels.map(String) };
  for (let r = 0; r < rows; r++) answer.classes[r] = index.get(answer.labels[r]!) ?? UNKNOWN_CLASS;
  if (probabilities === undefined) return answer;
  const out = new Float64Array(rows * k).fill(Number.NaN);
  for (let r = 0; r < rows; r++) {
    const map = probabilities[r];
    if (typeof map !== 'object' || map === null || Array.isArray(map) || Object.keys(map).length !== k) continue;
    for (let c = 0; c < k; c++) {
      const p = (map as Record<string, unknown>)[classes[c]!];
      if (typeof p === 'number') out[r * k + c] = p;
    }
  }
  answer.probabilities = out;
  return answer;
}

/** The answer's probabilities of row `r` as a map of class to probability, as /predict answers them; null when they are none (JSON has no NaN). */
export function probabilityMap(classes: readonly string[], probabilities: ArrayLike<number>, r: number): Record<string, number> | null {
  const k = classes.length;
  const map: Record<string, number> = {};
  for (let c = 0; c < k; c++) {
    const p = probabilities[r * k + c]!;
    if (!Number.isFinite(p)) return null;
    map[classes[c]!] = p;
  }
  return map;
}
