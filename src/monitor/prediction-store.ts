import { DataInvalidError } from '../errors.js';
import { UUID_LENGTH, UuidIndex } from './uuid-index.js';

/** Why a remembered prediction was forgotten: index into PredictionStore.evictions. */
export const evictionReasons = ['capacity', 'age'] as const;

/** What match() found; a slot index (>= 0) means matched. */
export const UNKNOWN = -1;
export const DUPLICATE = -2;

/** Milliseconds on a monotonic clock: a wall-clock jump must not expire or revive predictions. */
export type Clock = () => number;

/** Row index stored for a single-row request, whose row id is the request id itself. */
const SINGLE = -1;
const BY_CAPACITY = evictionReasons.indexOf('capacity');
const BY_AGE = evictionReasons.indexOf('age');
/** Flag bits per slot. */
const MATCHED = 1;
/** The request's last row: the slot its id is indexed under, so the id leaves with the request's last row. */
const OWNER = 2;
/** `<uuid>.<row>` with a row below 10^9: longer ids were never handed out. */
const ROW_ID_MAX_LENGTH = UUID_LENGTH + 1 + 9;

/**
 * The last `capacity` predicted rows, each for at most `ttlMs`, so late ground truth can be joined
 * to its prediction without a database. Rows live in preallocated typed arrays used as one ring in
 * arrival order, which is also age order: evicting by capacity and by age both pop the tail, O(1)
 * per row. Each request's id is indexed once, under its last row: a batch row `<id>.<row>` is
 * found by arithmetic from there. Nothing is allocated per prediction, so memory is fixed at start.
 */
export class PredictionStore {
  /** Cumulative evictions by evictionReasons index. */
  readonly evictions = new Float64Array(evictionReasons.length);

  /** Float64, not the model's float32: /observe reports other models' answers as sent. */
  private readonly predictions: Float64Array;
  private readonly times: Float64Array;
  /** Row within its request, or SINGLE. Tells a batch's row 0 from a single-row request. */
  private readonly rows: Int32Array;
  private readonly flags: Uint8Array;
  private readonly index: UuidIndex;
  /** Rows remembered, the slot the next one goes to, and the slot of the oldest. */
  private count = 0;
  private headSlot = 0;
  private tailSlot = 0;

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    readonly clock: Clock,
  ) {
    this.predictions = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
    this.rows = new Int32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.index = new UuidIndex(capacity);
  }

  /** Rows remembered now. */
  get size(): number {
    return this.count;
  }

  /** Memory held, all of it allocated up front: the same before the first prediction and after the billionth. */
  get bytes(): number {
    return this.predictions.byteLength + this.times.byteLength + this.rows.byteLength + this.flags.byteLength + this.index.bytes;
  }

  /**
   * Remembers the `rows` predictions of request `requestId` (a UUID, as watch.record makes it), in
   * row order: as `<requestId>.<row>` when `batch`, as `requestId` itself for a single row.
   */
  remember(requestId: string, predictions: ArrayLike<number>, rows: number, batch = rows > 1): void {
    if (this.capacity === 0) return;
    const now = this.clock();
    this.expire(now);
    let slot = 0;
    for (let r = 0; r < rows; r++) {
      if (this.count === this.capacity) this.evictOldest(BY_CAPACITY);
      slot = this.headSlot;
      this.predictions[slot] = predictions[r]!;
      this.times[slot] = now;
      this.rows[slot] = batch ? r : SINGLE;
      this.flags[slot] = 0;
      this.count++;
      this.headSlot = slot + 1 === this.capacity ? 0 : slot + 1;
    }
    // Unindexed rows are harmless: they can never match and leave with the ring like any other.
    if (!this.index.add(requestId, slot)) throw new DataInvalidError('request id', `${JSON.stringify(requestId)} is not a UUID; the prediction store indexes UUIDs only`);
    this.flags[slot] = OWNER;
  }

  /**
   * Finds the remembered row with this row id and marks it matched. Returns its slot, UNKNOWN
   * (never seen, expired or evicted) or DUPLICATE (matched before and still remembered).
   */
  match(rowId: string): number {
    this.expire(this.clock());
    const slot = this.find(rowId);
    if (slot < 0) return slot;
    if ((this.flags[slot]! & MATCHED) !== 0) return DUPLICATE;
    this.flags[slot]! |= MATCHED;
    return slot;
  }

  /** Whether this row id is remembered now, matched or not; unlike match(), it marks nothing. */
  has(rowId: string): boolean {
    this.expire(this.clock());
    return this.find(rowId) >= 0;
  }

  prediction(slot: number): number {
    return this.predictions[slot]!;
  }

  /** When the row in `slot` was predicted, on the store's clock. */
  predictedAt(slot: number): number {
    return this.times[slot]!;
  }

  /** Evicts every row that has reached the TTL: on each use, and at scrape time so an idle server's gauges are true. */
  expire(now = this.clock()): void {
    const cutoff = now - this.ttlMs;
    while (this.count > 0 && this.times[this.tailSlot]! <= cutoff) this.evictOldest(BY_AGE);
  }

  private find(rowId: string): number {
    const row = rowId.length === UUID_LENGTH ? SINGLE : rowNumber(rowId);
    if (row === NOT_A_ROW) return UNKNOWN;
    const owner = this.index.find(rowId);
    if (owner < 0) return UNKNOWN;
    const last = this.rows[owner]!;
    if (row === SINGLE ? last !== SINGLE : last === SINGLE || row > last) return UNKNOWN;
    const back = row === SINGLE ? 0 : last - row;
    // Rows older than the owner that are still here; the row is gone if it lies further back.
    const behindOwner = (owner - this.tailSlot + this.capacity) % this.capacity;
    if (back > behindOwner) return UNKNOWN;
    return owner >= back ? owner - back : owner - back + this.capacity;
  }

  private evictOldest(reason: number): void {
    const slot = this.tailSlot;
    if ((this.flags[slot]! & OWNER) !== 0) this.index.remove(slot);
    this.flags[slot] = 0;
    this.count--;
    this.tailSlot = slot + 1 === this.capacity ? 0 : slot + 1;
    this.evictions[reason]!++;
  }
}

const NOT_A_ROW = -2;

/** The row of a batch row id `<uuid>.<row>` (no leading zeros, as handed out), or NOT_A_ROW. */
function rowNumber(rowId: string): number {
  const { length } = rowId;
  if (length <= UUID_LENGTH + 1 || length > ROW_ID_MAX_LENGTH || rowId.charCodeAt(UUID_LENGTH) !== 46) return NOT_A_ROW;
  if (rowId.charCodeAt(UUID_LENGTH + 1) === 48 && length > UUID_LENGTH + 2) return NOT_A_ROW;
  let row = 0;
  for (let c = UUID_LENGTH + 1; c < length; c++) {
    const digit = rowId.charCodeAt(c) - 48;
    if (digit < 0 || digit > 9) return NOT_A_ROW;
    row = row * 10 + digit;
  }
  return row;
}
