/**
 * Concatenation of lake files without decoding them: their row groups (the
 * column chunks' dictionary and data pages) are copied byte for byte into one
 * new file, in the order added, and a new footer lists them with their
 * offsets moved to where they now start. This is how compaction joins the
 * usual disjoint, full-size segments of an hour at the cost of a memory copy.
 *
 * What a lake file holds outside its row groups is either rebuilt or refused:
 * offset indexes (the writer adds one to every column chunk of several pages)
 * hold absolute page offsets, so they are read, moved and written again after
 * the copied row groups, as the writer places them; column indexes and bloom
 * filters, which the lake's writer never writes, make `canCopyRowGroups` false,
 * as does any schema but the lake's, and the caller then re-encodes the rows.
 */
import { isDeepStrictEqual } from "node:util";
import type { ColumnChunk, FileMetaData, OffsetIndex, RowGroup } from "hyparquet";
import { readOffsetIndex } from "hyparquet";
import { ByteWriter } from "hyparquet-writer";
// Sub-path modules the package exports ("./src/*.js"): the footer and page
// index writers its ParquetWriter uses, so the footer is the writer's own.
import { writeIndexes } from "hyparquet-writer/src/indexes.js";
import { writeMetadata } from "hyparquet-writer/src/metadata.js";
import { LakeFileError } from "./errors.ts";
import { CREATED_BY, SCHEMA } from "./format.ts";

/** "PAR1", at both ends of a Parquet file. */
const MAGIC = 0x31524150;

/**
 * Whether the row groups of the file with this footer can be copied by
 * `RowGroupCopier`: the lake's schema, and nothing outside the row groups
 * but offset indexes.
 */
export function canCopyRowGroups(metadata: FileMetaData): boolean {
  if (metadata.schema.length !== SCHEMA.length) return false;
  for (let i = 0; i < SCHEMA.length; i++) {
    if (!isDeepStrictEqual(schemaFields(metadata.schema[i]), schemaFields(SCHEMA[i]))) {
      return false;
    }
  }
  return metadata.row_groups.every((g) =>
    g.columns.every((c) =>
      c.meta_data !== undefined && c.file_path === undefined &&
      c.column_index_offset === undefined && c.meta_data.bloom_filter_offset === undefined &&
      c.crypto_metadata === undefined && c.encrypted_column_metadata === undefined
    )
  );
}

type SchemaLike = FileMetaData["schema"][number] | (typeof SCHEMA)[number];

function schemaFields(e: SchemaLike) {
  const { name, type, repetition_type, converted_type, num_children, logical_type } = e;
  return { name, type, repetition_type, converted_type, num_children, logical_type };
}

/**
 * A lake file built from the row groups of other lake files, copied as they
 * are. The caller adds files in offset order, each accepted by
 * `canCopyRowGroups`; only the output and the file being added are held.
 *
 * @example
 * const out = new RowGroupCopier(totalBytes);
 * for (const f of files) out.add(f.key, await store.get(f.key), f.metadata);
 * await store.put(key, out.finish());
 */
export class RowGroupCopier {
  readonly #out: ByteWriter;
  readonly #rowGroups: RowGroup[] = [];
  /** Offset indexes to write after the row groups, already moved. */
  readonly #indexes: { chunk: ColumnChunk; offsetIndex: OffsetIndex }[] = [];
  #rows = 0n;

  /** `initialBytes`: room for the output (the inputs' total size is enough). */
  constructor(initialBytes = 0) {
    this.#out = new ByteWriter(Math.max(1024, initialBytes));
    this.#out.appendUint32(MAGIC);
  }

  /** Rows added so far. */
  get rows(): number {
    return Number(this.#rows);
  }

  /** Appends the row groups of the file `bytes` (named `key` in errors), whose footer is `metadata`. */
  add(key: string, bytes: Uint8Array, metadata: FileMetaData): void {
    // Page data lies between the leading magic and the footer.
    const bodyEnd = bytes.length - 8 - metadata.metadata_length;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const group of metadata.row_groups) {
      const columns = group.columns.map((chunk) => {
        const meta = chunk.meta_data!;
        const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
        const end = start + Number(meta.total_compressed_size);
        if (start < 4 || end > bodyEnd) {
          throw new LakeFileError(
            key,
            `column chunk "${
              meta.path_in_schema.join(".")
            }" at bytes ${start}..${end} is outside the file's pages (4..${bodyEnd})`,
          );
        }
        const shift = BigInt(this.#out.offset - start);
        this.#out.appendBytes(bytes.subarray(start, end));
        const moved: ColumnChunk = {
          ...chunk,
          file_offset: chunk.file_offset + shift,
          meta_data: {
            ...meta,
            data_page_offset: meta.data_page_offset + shift,
            dictionary_page_offset: plus(meta.dictionary_page_offset, shift),
            index_page_offset: plus(meta.index_page_offset, shift),
          },
          // Set again by writeIndexes where the index lands.
          offset_index_offset: undefined,
          offset_index_length: undefined,
        };
        if (chunk.offset_index_offset !== undefined && chunk.offset_index_length) {
          const at = Number(chunk.offset_index_offset);
          if (at < 4 || at + chunk.offset_index_length > bodyEnd) {
            throw new LakeFileError(key, `offset index at byte ${at} is outside the file's body`);
          }
          const { page_locations } = readOffsetIndex({ view, offset: at });
          this.#indexes.push({
            chunk: moved,
            offsetIndex: {
              page_locations: page_locations.map((p) => ({ ...p, offset: p.offset + shift })),
            },
          });
        }
        return moved;
      });
      // A row group's own offset (the writer sets none) moves with its first chunk.
      const shift = columns.length ? columns[0].file_offset - group.columns[0].file_offset : 0n;
      this.#rowGroups.push({ ...group, columns, file_offset: plus(group.file_offset, shift) });
      this.#rows += group.num_rows;
    }
  }

  /** Ends the file and returns its bytes (a view of the copier's buffer). */
  finish(): Uint8Array {
    // As ParquetWriter.finish: page indexes, footer, its length, magic.
    writeIndexes(this.#out, this.#indexes as Parameters<typeof writeIndexes>[1]);
    const metadata = {
      version: 2,
      created_by: CREATED_BY,
      schema: SCHEMA,
      num_rows: this.#rows,
      row_groups: this.#rowGroups,
    };
    writeMetadata(this.#out, metadata as unknown as Parameters<typeof writeMetadata>[1]);
    this.#out.appendUint32(MAGIC);
    return this.#out.getBytes();
  }
}

function plus(offset: bigint | undefined, shift: bigint): bigint | undefined {
  return offset === undefined ? undefined : offset + shift;
}
