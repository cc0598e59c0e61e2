/**
 * Developer helper: (re)creates a scratch database on the stack PostgreSQL,
 * fills it with the stand-in fixture, starts the local Superset and imports the
 * dashboard pointing at it. Prints the dashboard URL.
 *
 *   deno run -A superset/dev/demo.ts [--admin-url postgres://postgres@127.0.0.1:15432/postgres] [--name superset_demo]
 */
import postgres from "postgres";
import { populate } from "./fixture.ts";
import { install } from "../install.ts";
import { start } from "../server.ts";
import { importBundle } from "../import_bundle.ts";

function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

const adminUrl = option("--admin-url", "postgres://postgres@127.0.0.1:15432/postgres");
const name = option("--name", "superset_demo");
if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`--name "${name}" is not a plain identifier`);

const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
try {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
} finally {
  await admin.end();
}
const url = new URL(adminUrl);
url.pathname = `/${name}`;
console.log(await populate(url.toString()));
await install();
await start();
const r = await importBundle({ databaseUri: url.toString() });
console.log(r.url);
