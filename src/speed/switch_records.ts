/**
 * Where the speed layer's plan switches are recorded (plan_switch.ts,
 * contract item 2): a switch flush adds `switchWrite` to every owned
 * partition's flush; a partition assigned after the last switch (a
 * rebalance) records that switch, at its stored offset, with its own first
 * flush, so every partition's switch offset is in PostgreSQL whichever
 * instance applied it.
 */
import type { SpeedPartition } from "./partition.ts";
import type { PartitionFlush } from "./sink.ts";
import type { PartitionSwitch, SpeedPlanSwitch } from "./plan_switch.ts";

export class SwitchRecords {
  #last: SpeedPlanSwitch | undefined;
  /** Partitions assigned after the last switch whose first flush records it. */
  readonly #unrecorded = new Map<number, PartitionSwitch>();

  /** A partition was assigned: after a switch, everything it applies is under the switched plan. */
  assigned(st: SpeedPartition): void {
    if (!this.#last) return;
    this.#unrecorded.set(st.partition, {
      partition: st.partition,
      offset: st.skipBelow,
      clockMs: st.windows.clockMs,
    });
  }

  /** Whether the partition's next flush must be taken even with nothing changed. */
  due(partition: number, sw: SpeedPlanSwitch | undefined): boolean {
    return sw !== undefined || this.#unrecorded.has(partition);
  }

  /**
   * The flush `part` of `partition` with the switch write it carries: `sw`'s
   * at its next offset (every message below ran under the old plan, and
   * `switched` gets that offset), or the last switch's for a partition
   * assigned since.
   */
  carry(
    partition: number,
    part: PartitionFlush,
    sw: SpeedPlanSwitch | undefined,
    switched: Map<number, number>,
  ): PartitionFlush {
    if (sw) {
      const here = { partition, offset: part.nextOffset, clockMs: part.clockMs };
      switched.set(partition, here.offset);
      return { ...part, writes: [...part.writes ?? [], sw.switchWrite(here)] };
    }
    const at = this.#unrecorded.get(partition);
    if (!at) return part;
    return { ...part, writes: [...part.writes ?? [], this.#last!.switchWrite(at)] };
  }

  /** The partition's flush is written: its switch is recorded. */
  recorded(partition: number): void {
    this.#unrecorded.delete(partition);
  }

  /** `s` is the plan now; every owned partition recorded it with the switch flush. */
  adopt(s: SpeedPlanSwitch): void {
    this.#last = s;
    this.#unrecorded.clear();
  }
}
