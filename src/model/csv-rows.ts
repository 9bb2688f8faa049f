import { createReadStream } from 'node:fs';
import { parse } from 'fast-csv';
import { DataInvalidError } from '../errors.js';

export interface NumericCsv {
  /** Header names, in file order. */
  columns: string[];
  /** Row-major numbers of one row at a time, with its line number (header is line 1) and its cells as text. */
  rows: AsyncGenerator<{ values: Float64Array; line: number; cells: string[] }>;
}

export interface CsvColumns {
  /** Columns read as text only (a classifier's class names, a categorical feature), their numbers NaN. */
  text?: readonly string[];
  /** Columns whose cells may be empty (a feature with missing values): NaN and "" then. */
  missing?: readonly string[];
  /** Columns not read at all (an id, a timestamp): their numbers NaN. */
  skipped?: readonly string[];
}

/**
 * Streams a numeric CSV with fast-csv in bounded memory. Every value must be a finite number: a
 * missing or non-numeric one is an error naming the file, the line and the column, but for the
 * `text`, `missing` and `skipped` columns.
 */
export async function readNumericCsv(file: string, { text = [], missing = [], skipped = [] }: CsvColumns = {}): Promise<NumericCsv> {
  const input = createReadStream(file);
  const stream = input.pipe(parse({ headers: false, ignoreEmpty: true, trim: true }));
  // pipe() (and fast-csv's parseFile) does not forward a read error such as ENOENT or EISDIR: it
  // would be an unhandled 'error' event that kills the process. Hand it to the parser instead.
  input.once('error', (err) => stream.destroy(err));
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<string[]>;
  let first: IteratorResult<string[]>;
  try {
    first = await iterator.next();
  } catch (cause) {
    throw new DataInvalidError(file, `cannot read: ${(cause as Error).message}`, { cause });
  }
  if (first.done) throw new DataInvalidError(file, 'is empty; expected a header line and rows');
  const columns = first.value;
  const isText = columns.map((c) => text.includes(c));
  const mayMiss = columns.map((c) => missing.includes(c));
  const isSkipped = columns.map((c) => skipped.includes(c));
  async function* rows() {
    let line = 1;
    const values = new Float64Array(columns.length);
    for (;;) {
      let next: IteratorResult<string[]>;
      try {
        next = await iterator.next();
      } catch (cause) {
        throw new DataInvalidError(file, `line ${line + 1}: ${(cause as Error).message}`, { cause });
      }
      if (next.done) return;
      line++;
      const cells = next.value;
      if (cells.length !== columns.length) {
        throw new DataInvalidError(file, `line ${line} has ${cells.length} values, the header has ${columns.length}`);
      }
      for (let c = 0; c < columns.length; c++) {
        const cell = cells[c]!;
        if (isSkipped[c] || (cell === '' && mayMiss[c])) {
          values[c] = Number.NaN;
          continue;
        }
        if (isText[c]) {
          if (cell === '') throw new DataInvalidError(file, `line ${line}, column ${c + 1} ("${columns[c]}"): missing value`);
          values[c] = Number.NaN;
          continue;
        }
        const v = cell === '' ? Number.NaN : Number(cell);
        if (!Number.isFinite(v)) {
          throw new DataInvalidError(file, `line ${line}, column ${c + 1} ("${columns[c]}"): ${cell === '' ? 'missing value' : `"${cell.slice(0, 40)}" is not a finite number`}`);
        }
        values[c] = v;
      }
      yield { values, line, cells };
    }
  }
  return { columns, rows: rows() };
}
