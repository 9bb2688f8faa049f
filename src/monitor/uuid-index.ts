import { randomFillSync } from 'node:crypto';

/** Length of a UUID in its canonical 8-4-4-4-12 form, as randomUUID() writes it. */
export const UUID_LENGTH = 36;

/** UUIDs' worth of random bytes drawn from the CSPRNG at once, as node:crypto's randomUUID buffers them. */
const POOL_UUIDS = 512;
const pool = new Uint8Array(16 * POOL_UUIDS);
let pooled = POOL_UUIDS;
const uuidText = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');
/** Where each of the 16 bytes' two hex digits go in the 8-4-4-4-12 text. */
const DIGIT_AT = Uint8Array.from({ length: 16 }, (_, b) => b * 2 + (b >= 4 ? 1 : 0) + (b >= 6 ? 1 : 0) + (b >= 8 ? 1 : 0) + (b >= 10 ? 1 : 0));
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
/** The last UUID randomUuid() made, and its four words: UuidIndex.add reads them instead of parsing it again. */
let lastUuid = '';
const lastWords = new Int32Array(4);

/**
 * A random (version 4) UUID in lower case, as crypto.randomUUID() makes it, written in one
 * latin1 slice rather than joined from 20 pieces: half its time, and the index gets its words for free.
 */
export function randomUuid(): string {
  if (pooled === POOL_UUIDS) {
    randomFillSync(pool);
    pooled = 0;
  }
  const o = pooled++ * 16;
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x40;
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80;
  for (let b = 0; b < 16; b++) {
    const byte = pool[o + b]!;
    uuidText[DIGIT_AT[b]!] = HEX_DIGITS[byte >> 4]!;
    uuidText[DIGIT_AT[b]! + 1] = HEX_DIGITS[byte & 15]!;
  }
  for (let w = 0; w < 4; w++) lastWords[w] = (pool[o + w * 4]! << 24) | (pool[o + w * 4 + 1]! << 16) | (pool[o + w * 4 + 2]! << 8) | pool[o + w * 4 + 3]!;
  lastUuid = uuidText.toString('latin1', 0, UUID_LENGTH);
  return lastUuid;
}

/**
 * UUID -> slot for up to `slots` slots, in typed arrays only: open addressing with linear probing
 * at a load of at most one half, keys kept as four 32-bit words per slot. A Map<string, number>
 * would keep every id string alive into the old generation (about 100 bytes per id with its entry)
 * and is slower under set+delete churn (bench/feedback-store.ts compares); this allocates nothing
 * per id and leaves no garbage.
 */
export class UuidIndex {
  /** Four words of the UUID indexed under each slot (stale for slots not indexed). */
  private readonly keys: Int32Array;
  /** slot + 1, or 0 for an empty cell. */
  private readonly cells: Int32Array;
  private readonly mask: number;
  private readonly parsed = new Int32Array(4);

  constructor(slots: number) {
    this.keys = new Int32Array(slots * 4);
    let size = 2;
    while (size < slots * 2) size *= 2;
    this.cells = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Memory held: 16 bytes of key per slot and 8 to 16 bytes of cells, as the table rounds up to a power of two. */
  get bytes(): number {
    return this.keys.byteLength + this.cells.byteLength;
  }

  /** Indexes `slot` under `uuid`; false (and nothing indexed) when `uuid` is not a UUID. */
  add(uuid: string, slot: number): boolean {
    if (uuid === lastUuid) this.parsed.set(lastWords);
    else if (uuid.length !== UUID_LENGTH || !this.parse(uuid)) return false;
    const { keys, cells, mask, parsed } = this;
    keys.set(parsed, slot * 4);
    let i = home(parsed[0]!, parsed[1]!, parsed[2]!, parsed[3]!) & mask;
    while (cells[i] !== 0) i = (i + 1) & mask;
    cells[i] = slot + 1;
    return true;
  }

  /** The slot indexed under the UUID that `id` starts with, or -1. */
  find(id: string): number {
    if (!this.parse(id)) return -1;
    const { keys, cells, mask, parsed } = this;
    const w0 = parsed[0]!;
    const w1 = parsed[1]!;
    const w2 = parsed[2]!;
    const w3 = parsed[3]!;
    for (let i = home(w0, w1, w2, w3) & mask; cells[i] !== 0; i = (i + 1) & mask) {
      const slot = cells[i]! - 1;
      const k = slot * 4;
      if (keys[k] === w0 && keys[k + 1] === w1 && keys[k + 2] === w2 && keys[k + 3] === w3) return slot;
    }
    return -1;
  }

  /** Removes `slot` from the index; backward-shift deletion keeps every probe chain unbroken without tombstones. */
  remove(slot: number): void {
    const { cells, mask } = this;
    let i = this.homeOf(slot);
    while (cells[i] !== slot + 1) {
      if (cells[i] === 0) return;
      i = (i + 1) & mask;
    }
    for (let j = (i + 1) & mask; cells[j] !== 0; j = (j + 1) & mask) {
      const h = this.homeOf(cells[j]! - 1);
      // The entry at j may move back to i only if its home is not cyclically within (i, j].
      const stays = i <= j ? i < h && h <= j : i < h || h <= j;
      if (!stays) {
        cells[i] = cells[j]!;
        i = j;
      }
    }
    cells[i] = 0;
  }

  private homeOf(slot: number): number {
    const k = slot * 4;
    const { keys } = this;
    return home(keys[k]!, keys[k + 1]!, keys[k + 2]!, keys[k + 3]!) & this.mask;
  }

  /** Reads the 8-4-4-4-12 hex digits at the start of `id` into `parsed`; false if they are not a UUID. */
  private parse(id: string): boolean {
    if (id.length < UUID_LENGTH) return false;
    if (id.charCodeAt(8) !== 45 || id.charCodeAt(13) !== 45 || id.charCodeAt(18) !== 45 || id.charCodeAt(23) !== 45) return false;
    const { parsed } = this;
    // Any non-digit is -1 in the table and turns `bad` negative: one test at the end, no branch per character.
    let bad = 0;
    let c = 0;
    for (let w = 0; w < 4; w++) {
      let word = 0;
      for (let d = 0; d < 8; d++, c++) {
        if (c === 8 || c === 13 || c === 18 || c === 23) c++;
        const v = HEX[id.charCodeAt(c)]!;
        bad |= v;
        word = (word << 4) | v;
      }
      parsed[w] = word;
    }
    return bad >= 0;
  }
}

/** Hex digit value of every UTF-16 code unit, -1 for anything else. */
const HEX = new Int8Array(65536).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[97 + i] = 10 + i;
  HEX[65 + i] = 10 + i;
}

/** Mixes all four words, so ids whose leading bits are a timestamp (UUIDv7) still spread over the table. */
function home(w0: number, w1: number, w2: number, w3: number): number {
  let h = w0 ^ Math.imul(w1, 0x85ebca6b) ^ Math.imul(w2, 0xc2b2ae35) ^ Math.imul(w3, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}
