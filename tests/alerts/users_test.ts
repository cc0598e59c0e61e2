// The alert detector's user cache (src/alerts/users.ts), on a stub table:
// what a reload of user_metadata changes for devices, emails and slots.
import assert from "node:assert/strict";
import type { Queryable } from "../../src/db/db.ts";
import { UserDirectory } from "../../src/alerts/users.ts";
import { createLogger } from "../../src/log.ts";

interface Row {
  id: string;
  email: string;
  quota: number;
}

/** A user_metadata of `rows` (the fingerprint changes with every edit). */
function table(rows: Row[]): { db: Queryable; set(next: Row[]): void } {
  let version = 0;
  const db = {
    query: <T>(sql: string): Promise<T[]> =>
      Promise.resolve(
        (sql.includes("hashtext") ? [{ fp: String(version) }] : rows.map((r) => ({ ...r }))) as T[],
      ),
  } as Queryable;
  return {
    db,
    set(next) {
      rows = next;
      version++;
    },
  };
}

Deno.test("a reload: devices and emails follow the table, slots keep their last user", async () => {
  const t = table([
    { id: "d1", email: "a@x", quota: 100 },
    { id: "d2", email: "a@x", quota: 300 },
    { id: "d3", email: "b@x", quota: 50 },
  ]);
  const users = new UserDirectory(t.db, createLogger({ test: "users" }));
  await users.refresh();
  const a = users.lookup("d1")!;
  const b = users.lookup("d3")!;
  assert.equal(users.lookup("d2"), a, "one entry per email");
  assert.equal(a.quota, 300, "the email's quota is its devices' largest");
  assert.notEqual(a.slot, b.slot);
  assert.equal(users.atSlot(b.slot), b);

  t.set([{ id: "d1", email: "a@x", quota: 300 }, { id: "d2", email: "a@x", quota: 300 }]);
  await users.refresh();
  assert.equal(users.lookup("d1"), a, "an unchanged user keeps its entry");
  assert.equal(users.lookup("d3"), undefined, "a device gone from the table is unknown");
  assert.equal(users.userOf("b@x"), undefined);
  // Shares counted b's events before the reload: the fold still finds b by its slot.
  assert.equal(users.atSlot(b.slot), b);

  t.set([{ id: "d1", email: "a@x", quota: 10 }, { id: "d3", email: "b@x", quota: 70 }]);
  await users.refresh();
  const a2 = users.lookup("d1")!;
  assert.notEqual(a2, a, "a changed quota is a new entry");
  assert.equal(a2.quota, 10);
  assert.equal(a2.slot, a.slot, "an email keeps its slot");
  assert.equal(users.atSlot(a.slot), a2);
  assert.equal(users.lookup("d3")!.slot, b.slot, "a returning email gets its slot back");
  assert.equal(users.atSlot(99), undefined, "a slot never given out");
});
