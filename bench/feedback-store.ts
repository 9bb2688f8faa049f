/**
 * The prediction store on its own: ns per remembered prediction (single rows and batches) and
 * bytes per remembered row, the numbers behind the README's sizing advice for days-late labels.
 * Run: node --expose-gc --import tsx bench/feedback-store.ts [--entries 1000000]
 * Times are CPU time of the process, so a busy machine skews them less than wall time.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { PredictionStore } from '../src/monitor/prediction-store.js';

const { values: flags } = parseArgs({ options: { entries: { type: 'string', default: '1000000' } } });
const entries = Number(flags.entries);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/feedback-store.ts');
const print = (line: string) => process.stdout.write(`${line}\n`);
const memory = () => {
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
};
const cpuNs = (run: () => void) => {
  const before = process.cpuUsage();
  run();
  const { user, system } = process.cpuUsage(before);
  return (user + system) * 1000;
};
const clock = () => performance.now();
const batch = 64;
const single = Float32Array.of(152.1);
const batched = new Float32Array(batch).fill(152.1);

/**
 * Fills a fresh store with single-row requests (one id per row: the costly case) whose ids only
 * the store could keep, as in the server. Batches use the same slots and index one id per request.
 */
function measureMemory(): string {
  const before = memory();
  const store = new PredictionStore(entries, 3_600_000, clock);
  const allocated = memory() - before;
  for (let i = 0; i < entries; i++) store.remember(randomUUID(), single, 1);
  const filled = memory() - before;
  return `capacity ${entries.toLocaleString('en-US')}, single rows: ${(allocated / entries).toFixed(1)} bytes per slot up front, ${(filled / entries).toFixed(1)} bytes per row when full (store.bytes: ${(store.bytes / entries).toFixed(1)})`;
}
print(measureMemory());

// Time: ids made beforehand (the server makes them for its answer anyway); the store is full, so every row also evicts one.
const ids = Array.from({ length: entries }, () => randomUUID());
const store = new PredictionStore(entries, 3_600_000, clock);
for (const rows of [1, batch]) {
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    rounds.push(cpuNs(() => {
      for (let i = 0; i < entries / rows; i++) store.remember(ids[i]!, rows === 1 ? single : batched, rows);
    }) / entries);
  }
  rounds.sort((a, b) => a - b);
  print(`remember(), ${rows === 1 ? 'single rows' : `batches of ${rows}`}, full store: median ${rounds[2]!.toFixed(0)} ns CPU per row (best ${rounds[0]!.toFixed(0)})`);
}
// The alternative the UUID index replaces: a Map from id string to slot, with the same churn.
const map = new Map<string, number>();
const mapKeys: (string | undefined)[] = new Array(entries).fill(undefined);
const mapRounds: number[] = [];
for (let round = 0; round < 5; round++) {
  mapRounds.push(cpuNs(() => {
    for (let i = 0; i < entries; i++) {
      const old = mapKeys[i];
      if (old !== undefined) map.delete(old);
      mapKeys[i] = ids[i]!;
      map.set(ids[i]!, i);
    }
  }) / entries);
}
mapRounds.sort((a, b) => a - b);
print(`for comparison, Map<string, number> set+delete with the same ids: median ${mapRounds[2]!.toFixed(0)} ns CPU per id`);

// The store now holds the last round of batches: request k's row k % 64, each matched once.
const requests = entries / batch;
const lookups = cpuNs(() => {
  for (let k = 0; k < requests; k++) store.match(`${ids[k]!}.${k % batch}`);
});
print(`match(): ${(lookups / requests).toFixed(0)} ns CPU per label, building its row id included`);
