/**
 * A connection's open streams by stream ID: an open-addressing hash table (linear probing,
 * backward-shift deletion) instead of a `Map`.
 *
 * Why: a connection lives long and sees a stream added and deleted per request. A `Map` churned
 * like that rebuilds its table every few streams, and V8 leaves each replaced table pointing at
 * its stale entries and at its successor. After a full GC has promoted a connection's current
 * table, every later replaced table and every stream they held survive each scavenge until the
 * next full GC (src/net/member_list.ts has the measurements for the same effect on Sets). Here a
 * deleted slot is emptied at once and the arrays are replaced only when the table grows.
 *
 * Stream IDs are positive 31-bit integers and 0 is never a stream, so 0 marks an empty slot. IDs
 * of one side step by 2, so `id >>> 1` spreads consecutive streams over consecutive slots.
 */

const MIN_CAPACITY = 16; // a power of two

export class StreamTable<V> {
  #ids = new Int32Array(MIN_CAPACITY);
  #values: (V | undefined)[] = new Array(MIN_CAPACITY).fill(undefined);
  #mask = MIN_CAPACITY - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    const ids = this.#ids;
    for (let i = (id >>> 1) & this.#mask;; i = (i + 1) & this.#mask) {
      const at = ids[i];
      if (at === id) return this.#values[i];
      if (at === 0) return undefined;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(id: number, value: V): void {
    if (id <= 0 || id > 0x7fffffff) throw new RangeError(`not a stream ID: ${id}`);
    const ids = this.#ids;
    let i = (id >>> 1) & this.#mask;
    for (;; i = (i + 1) & this.#mask) {
      const at = ids[i];
      if (at === id) {
        this.#values[i] = value;
        return;
      }
      if (at === 0) break;
    }
    ids[i] = id;
    this.#values[i] = value;
    // At most half full, so probes stay short and an empty slot always ends a search.
    if (++this.#size * 2 > ids.length) this.#grow();
  }

  delete(id: number): boolean {
    const ids = this.#ids, values = this.#values, mask = this.#mask;
    let i = (id >>> 1) & mask;
    for (;; i = (i + 1) & mask) {
      if (ids[i] === id) break;
      if (ids[i] === 0) return false;
    }
    // Backward shift: move later members of the probe run into the hole, so no tombstones.
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      const at = ids[j];
      if (at === 0) break;
      const home = (at >>> 1) & mask;
      // Slot j's entry may fill hole i only if its home is not cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        ids[i] = at;
        values[i] = values[j];
        i = j;
      }
    }
    ids[i] = 0;
    values[i] = undefined;
    this.#size--;
    return true;
  }

  /** The streams present now, as an array (callers may close streams while they walk it). */
  values(): V[] {
    const out: V[] = [];
    const ids = this.#ids, values = this.#values;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== 0) out.push(values[i]!);
    return out;
  }

  #grow(): void {
    const oldIds = this.#ids, oldValues = this.#values;
    const capacity = oldIds.length * 2;
    this.#ids = new Int32Array(capacity);
    this.#values = new Array(capacity).fill(undefined);
    this.#mask = capacity - 1;
    this.#size = 0;
    for (let i = 0; i < oldIds.length; i++) {
      if (oldIds[i] !== 0) this.set(oldIds[i], oldValues[i]!);
    }
    oldValues.fill(undefined); // the replaced array must not keep streams reachable
  }
}
