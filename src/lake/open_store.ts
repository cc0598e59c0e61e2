/**
 * Opens the store a `LakePlan` names: a local folder for `file://`, a bucket
 * (and prefix) for `gs://`.
 */
import type { LakePlan } from "../config/plan.ts";
import { GcsStore } from "./gcs_store.ts";
import { LocalStore } from "./local_store.ts";
import type { ObjectStore } from "./store.ts";

/**
 * @example const store = openStore(plan.lake); await store.list(hourPath(h));
 */
export function openStore(lake: LakePlan): ObjectStore {
  if (lake.kind === "file") {
    // Created now so a wrong path fails at start, not at the first roll.
    Deno.mkdirSync(lake.root, { recursive: true });
    return new LocalStore(lake.root);
  }
  return new GcsStore({
    bucket: lake.root,
    prefix: lake.prefix,
    apiEndpoint: lake.gcsEndpoint,
    projectId: lake.gcsProjectId,
  });
}
