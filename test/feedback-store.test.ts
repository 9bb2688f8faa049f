import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { DUPLICATE, PredictionStore, UNKNOWN, evictionReasons } from '../src/monitor/prediction-store.js';
import { UuidIndex } from '../src/monitor/uuid-index.js';

const HOUR = 3_600_000;
const byCapacity = evictionReasons.indexOf('capacity');
const byAge = evictionReasons.indexOf('age');

/** A clock the test moves by hand, in ms. */
function manualClock(start = 1_000) {
  let now = start;
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

const one = (p: number) => Float64Array.of(p);

t.test('a single-row prediction is matched once, then duplicate; unseen ids are unknown', async (t) => {
  const { clock, advance } = manualClock();
  const store = new PredictionStore(10, HOUR, clock);
  const id = randomUUID();
  store.remember(id, one(151.5), 1);
  advance(2_500);
  const slot = store.match(id);
  t.ok(slot >= 0, 'matched');
  t.equal(store.prediction(slot), 151.5);
  t.equal(clock() - store.predictedAt(slot), 2_500, 'time of the prediction is kept');
  t.equal(store.match(id), DUPLICATE);
  t.equal(store.match(randomUUID()), UNKNOWN, 'a UUID never predicted');
  t.equal(store.match(id.toUpperCase()), DUPLICATE, 'hex case does not make another id');
  for (const bad of ['', 'x', `${id}.0`, `${id}x`, id.slice(0, 35), `${id.slice(0, 8)}_${id.slice(9)}`, `${id.slice(0, 35)}g`]) {
    t.equal(store.match(bad), UNKNOWN, `unknown: ${JSON.stringify(bad)}`);
  }
});

t.test('batch rows are <request id>.<row>; the bare batch id and rows past the end are unknown', async (t) => {
  const store = new PredictionStore(100, HOUR, manualClock().clock);
  const batch = randomUUID();
  const after = randomUUID();
  store.remember(batch, Float64Array.of(10, 11, 12), 3);
  store.remember(after, one(99), 1);
  for (let r = 0; r < 3; r++) t.equal(store.prediction(store.match(`${batch}.${r}`)), 10 + r, `row ${r}`);
  t.equal(store.match(`${batch}.3`), UNKNOWN, 'row 3 of 3 is the next request, not this one');
  t.equal(store.match(batch), UNKNOWN, 'a batch has no row without a number');
  t.equal(store.match(`${batch}.01`), UNKNOWN, 'leading zeros were never handed out');
  t.equal(store.match(`${batch}.`), UNKNOWN);
  t.equal(store.match(`${batch}.1234567890`), UNKNOWN, 'more digits than any batch');
  t.equal(store.prediction(store.match(after)), 99, 'the next request is intact');
});

t.test('capacity: the oldest rows go first, are counted, and answer unknown', async (t) => {
  const store = new PredictionStore(5, HOUR, manualClock().clock);
  const ids = Array.from({ length: 8 }, () => randomUUID());
  ids.forEach((id, i) => store.remember(id, one(i), 1));
  t.equal(store.size, 5);
  t.equal(store.evictions[byCapacity], 3);
  t.equal(store.evictions[byAge], 0);
  for (const id of ids.slice(0, 3)) t.equal(store.match(id), UNKNOWN, 'evicted by capacity');
  ids.slice(3).forEach((id, i) => t.equal(store.prediction(store.match(id)), i + 3, 'still remembered'));

  // A batch that straddles the tail loses its first rows only.
  const batch = randomUUID();
  store.remember(batch, Float64Array.of(20, 21, 22, 23), 4);
  const single = randomUUID();
  store.remember(single, one(30), 1);
  store.remember(randomUUID(), one(31), 1);
  t.equal(store.match(`${batch}.0`), UNKNOWN, 'row 0 evicted');
  t.equal(store.prediction(store.match(`${batch}.1`)), 21, 'row 1 still here');
  t.equal(store.prediction(store.match(`${batch}.3`)), 23);
  t.equal(store.prediction(store.match(single)), 30);

  // A batch larger than the whole store keeps its last rows.
  const huge = randomUUID();
  store.remember(huge, Float64Array.from({ length: 7 }, (_, r) => 100 + r), 7);
  t.equal(store.size, 5);
  t.equal(store.match(`${huge}.1`), UNKNOWN);
  t.equal(store.prediction(store.match(`${huge}.2`)), 102);
  t.equal(store.prediction(store.match(`${huge}.6`)), 106);
  t.equal(store.evictions[byCapacity], 3 + 4 + 2 + 7, "8 singles, a batch of 4, 2 singles and the 7-row batch each evicted as needed");
});

t.test('TTL: a prediction is matchable until its age reaches the TTL, then unknown and counted as age', async (t) => {
  const { clock, advance } = manualClock();
  const store = new PredictionStore(100, 60_000, clock);
  const early = randomUUID();
  const late = randomUUID();
  store.remember(early, one(1), 1);
  advance(30_000);
  store.remember(late, Float64Array.of(2, 3), 2);
  advance(29_999);
  t.ok(store.match(early) >= 0, 'age 59.999 s < TTL 60 s: matched');
  advance(1);
  t.equal(store.match(early), UNKNOWN, 'age 60 s: expired, even though it was matched before');
  t.equal(store.evictions[byAge], 1);
  t.equal(store.size, 2);
  advance(30_000);
  store.expire();
  t.equal(store.size, 0, 'expire() with no traffic empties the store');
  t.equal(store.match(`${late}.0`), UNKNOWN);
  t.equal(store.evictions[byAge], 3);
  t.equal(store.evictions[byCapacity], 0);
});

t.test('feedback off: capacity 0 remembers nothing and matches nothing', async (t) => {
  const store = new PredictionStore(0, HOUR, manualClock().clock);
  const id = randomUUID();
  store.remember(id, one(1), 1);
  t.equal(store.size, 0);
  t.equal(store.match(id), UNKNOWN);
  t.ok(store.bytes <= 8, `${store.bytes} bytes: an empty table of two cells at most`);
});

t.test('a request id that is not a UUID is a programming error, not a silent miss', async (t) => {
  const store = new PredictionStore(4, HOUR, manualClock().clock);
  t.throws(() => store.remember('request-1', one(1), 1), { code: 'MW_ERR_DATA_INVALID' });
});

t.test('the UUID index agrees with a Map under random adds and removes in a crowded table', async (t) => {
  // 64 slots in a 128-cell table, kept half full or more: long probe chains, many backward shifts.
  const slots = 64;
  const index = new UuidIndex(slots);
  const reference = new Map<string, number>();
  const bySlot: (string | undefined)[] = new Array(slots).fill(undefined);
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let mismatches = 0;
  for (let step = 0; step < 20_000; step++) {
    const slot = Math.floor(random() * slots);
    const old = bySlot[slot];
    if (old !== undefined) {
      index.remove(slot);
      reference.delete(old);
      bySlot[slot] = undefined;
    }
    if (random() < 0.8) {
      const id = randomUUID();
      if (!index.add(id, slot)) mismatches++;
      reference.set(id, slot);
      bySlot[slot] = id;
    }
    if (step % 97 === 0) {
      for (const [id, s] of reference) if (index.find(id) !== s) mismatches++;
      for (const id of bySlot) if (id === undefined && index.find(randomUUID()) !== -1) mismatches++;
    }
  }
  t.equal(mismatches, 0, 'every live id found at its slot, no removed or unseen id found');
  for (const [id, s] of reference) t.equal(index.find(id), s);
  t.equal(index.add('not-a-uuid', 0), false);
});

/** gc() without --expose-gc on the command line: tap starts the file, not us. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

t.test('memory stays under the cap after 1,000,000 predictions without feedback', async (t) => {
  const gc = collector();
  const used = () => {
    gc();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const capacity = 100_000;
  const before = used();
  const store = new PredictionStore(capacity, HOUR, () => performance.now());
  const bytes = store.bytes;
  t.ok(bytes <= capacity * 53, `${bytes} bytes allocated up front: at most 53 per slot`);
  const prediction = one(152);
  const batch = Float64Array.from({ length: 16 }, (_, r) => r);
  let rows = 0;
  let atCap = 0;
  // Mostly single rows (one id each, the costly case), every tenth request a batch of 16.
  for (let request = 0; rows < 1_000_000; request++) {
    const batched = request % 10 === 9;
    store.remember(randomUUID(), batched ? batch : prediction, batched ? 16 : 1);
    rows += batched ? 16 : 1;
    if (atCap === 0 && rows >= capacity) atCap = used();
  }
  const after = used();
  t.equal(store.size, capacity, 'full, and never more than the cap');
  t.equal(store.evictions[byCapacity], rows - capacity, 'every row past the cap evicted one, and was counted');
  t.equal(store.bytes, bytes, "the store's own accounting did not grow");
  const growth = after - atCap;
  t.ok(growth < 2_000_000, `heap + array buffers grew ${growth} bytes from the first ${capacity} rows to ${rows}`);
  t.ok(after - before < bytes + 2_000_000, `in all ${after - before} bytes, about the ${bytes} allocated up front: nothing per prediction`);
});
