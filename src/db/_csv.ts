/**
 * A small RFC 4180 CSV reader: comma separated, fields optionally in double
 * quotes (with `""` for a quote, and commas or line breaks inside), CRLF or LF
 * line ends, an optional UTF-8 BOM. Each record keeps the line it starts on so
 * errors can point at it. Too small a job for a dependency.
 */

export interface CsvRecord {
  /** 1-based line number where the record starts. */
  readonly line: number;
  readonly fields: string[];
}

export class CsvSyntaxError extends SyntaxError {
  readonly line: number;
  constructor(line: number, message: string) {
    super(message);
    this.name = "CsvSyntaxError";
    this.line = line;
  }
}

/** Parses `text` into records; a malformed quote throws `CsvSyntaxError`. */
export function parseCsv(text: string): CsvRecord[] {
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  const records: CsvRecord[] = [];
  let line = 1;
  let start = 1;
  let fields: string[] = [];
  let field = "";
  let quoted = false; // inside a quoted field
  let wasQuoted = false; // current field started with a quote
  const endField = () => {
    fields.push(field);
    field = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    records.push({ line: start, fields });
    fields = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          const next = text[i + 1];
          if (next !== undefined && next !== "," && next !== "\n" && next !== "\r") {
            throw new CsvSyntaxError(line, "unexpected character after a closing quote");
          }
        }
      } else {
        if (c === "\n") line++;
        field += c;
      }
      continue;
    }
    if (c === '"') {
      if (field !== "" || wasQuoted) {
        throw new CsvSyntaxError(line, "a quote inside an unquoted field (quote the whole field)");
      }
      quoted = true;
      wasQuoted = true;
    } else if (c === ",") {
      endField();
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      line++;
      start = line;
    } else {
      field += c;
    }
  }
  if (quoted) throw new CsvSyntaxError(start, "a quoted field is not closed");
  // A final line without a line break is still a record.
  if (field !== "" || fields.length > 0 || wasQuoted) endRecord();
  return records;
}
