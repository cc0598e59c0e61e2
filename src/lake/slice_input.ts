/**
 * A lake file read a slice of rows at a time, its strings as codes of
 * dictionaries shared by every file of a merge: the input of the merges by
 * offset of compaction (compact.ts) and of a partition's replay
 * (partition_stream.ts), so that what is decoded at once is a slice per open
 * file, however many rows the files hold.
 */
import { LakeFileError } from "./errors.ts";
import type { LakeColumn } from "./format.ts";
import { type FileColumns, readFileMetadata, readRowsInto, StringDictionary } from "./read_file.ts";
import type { LakeFile } from "./reader.ts";
import type { ObjectStore } from "./store.ts";

/** The string columns of the lake, decoded through dictionaries. */
export type StringColumn = "id" | "antenna_id" | "app";
export type Dictionaries = Record<StringColumn, StringDictionary>;
export const STRING_COLUMNS: readonly StringColumn[] = ["id", "antenna_id", "app"];

/** Empty dictionaries for one merge: each distinct string is decoded once for all its files. */
export function newDictionaries(): Dictionaries {
  return {
    id: new StringDictionary(),
    antenna_id: new StringDictionary(),
    app: new StringDictionary(),
  };
}

export class SliceInput {
  cols: FileColumns = {};
  /** Rows in the current slice, and the next of them to merge. */
  n = 0;
  at = 0;
  /** Offset of the row merged last, to check the file's order. */
  prev = -1;
  #next = 0;
  #total: number;

  /**
   * `total`: the file's rows when the caller knows them already; otherwise
   * the first `load` reads them from the file's footer.
   */
  constructor(
    readonly file: LakeFile,
    readonly columns: readonly LakeColumn[],
    total?: number,
  ) {
    this.#total = total ?? -1;
  }

  /** Offset of the current row. */
  get offset(): number {
    return (this.cols.offset as Float64Array)[this.at];
  }

  /** Decodes the next slice; false when the file has no more rows. */
  async load(store: ObjectStore, sliceRows: number, dicts: Dictionaries): Promise<boolean> {
    const { key, size } = this.file;
    if (this.#total < 0) this.#total = Number((await readFileMetadata(store, key, size)).num_rows);
    if (this.#next >= this.#total) return false;
    const range = { start: this.#next, end: Math.min(this.#total, this.#next + sliceRows) };
    const slice = await readRowsInto(
      store,
      key,
      size,
      this.columns,
      range,
      undefined,
      undefined,
      dicts,
    );
    this.cols = slice.cols;
    this.n = slice.rows;
    this.at = 0;
    this.#next = range.end;
    return this.n > 0;
  }
}

/** An input just opened, checked against its name: no offset below the first one it names. */
export function checkedFirst(input: SliceInput): SliceInput {
  if (input.offset < input.file.firstOffset) {
    throw new LakeFileError(
      input.file.key,
      `row offset ${input.offset} is below the first offset ${input.file.firstOffset} of its name`,
    );
  }
  return input;
}
