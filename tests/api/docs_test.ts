/** docs/api.md is the generated reference of the served routes: it must not drift. */
import assert from "node:assert/strict";
import { API_DOC_PATH, formattedApiMarkdown } from "../../src/api/docs.ts";

Deno.test("docs/api.md matches the route table (run `./deno run -A src/api/docs.ts`)", async () => {
  assert.equal(await Deno.readTextFile(API_DOC_PATH), await formattedApiMarkdown());
});
