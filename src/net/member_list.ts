/**
 * A set of long-lived registrations for short-lived members (connections, deadlines), kept as a
 * doubly linked list whose node is stored on the member itself.
 *
 * Why not a `Set`: a Set that lives as long as the process but sees every connection added and
 * deleted rebuilds its hash table every few dozen additions (deleted entries fill it up). V8
 * leaves the replaced table holding a pointer to every member it ever had (it keeps them for
 * iterators that may still walk it). Those tables outlive a young-generation GC and get promoted;
 * from then on, until the next full GC, each scavenge treats their stale pointers as roots, so
 * connections that closed long ago survive scavenges and are copied and promoted too. With one
 * connection per request, 14 % of everything allocated survived each scavenge (3.5 MB, 6 ms
 * pauses); with the process-wide connection set and the deadline sweeper on this list, 1 %
 * (0.4 ms). docs/benchmarks.md has the run.
 *
 * A removed node is unlinked and its member forgets it, so nothing removed points at anything.
 * Like a Set: adding a member twice keeps one entry, removing an absent member does nothing.
 * Iteration visits the members present when it starts, skipping any removed meanwhile, so the
 * visitor may remove members (itself included).
 *
 * The property that holds the node is a `MemberSlot`, made once per kind of list at module level
 * and shared by every list of that kind (each HTTP/3 connection's streams, say). A symbol per
 * list would give the members of each list their own hidden class: V8's inline caches on them
 * would go megamorphic, and the member class's map would grow a transition per list. So a member
 * is in at most one list of a kind at a time; adding it to a second one throws.
 */

/** The property a kind of list keeps its nodes under (see above): `memberSlot("h3 streams")`. */
export type MemberSlot = symbol & { readonly __memberSlot: true };

export function memberSlot(kind: string): MemberSlot {
  return Symbol(kind) as MemberSlot;
}

interface Node<T> {
  item: T;
  /** The list the node is in: lists of one kind share the slot. */
  owner: object;
  prev: Node<T> | null;
  next: Node<T> | null;
}

export class MemberList<T extends object> {
  #head: Node<T> | null = null;
  #size = 0;

  /** `slot`: the property, on each member, that holds its node (one per kind of list). */
  constructor(readonly slot: MemberSlot) {}

  get size(): number {
    return this.#size;
  }

  has(item: T): boolean {
    return this.#nodeOf(item) !== undefined;
  }

  add(item: T): void {
    const held = (item as Record<symbol, Node<T> | undefined>)[this.slot];
    if (held !== undefined) {
      if (held.owner === this) return;
      throw new Error(`already in another list of kind ${this.slot.description}`);
    }
    const node: Node<T> = { item, owner: this, prev: null, next: this.#head };
    if (this.#head !== null) this.#head.prev = node;
    this.#head = node;
    (item as Record<symbol, Node<T> | undefined>)[this.slot] = node;
    this.#size++;
  }

  /** Removes `item`; true if it was a member (as Set.delete). */
  delete(item: T): boolean {
    const node = this.#nodeOf(item);
    if (node === undefined) return false;
    if (node.prev !== null) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next !== null) node.next.prev = node.prev;
    node.prev = node.next = null;
    (item as Record<symbol, Node<T> | undefined>)[this.slot] = undefined;
    this.#size--;
    return true;
  }

  clear(): void {
    for (const item of this.#members()) this.delete(item);
  }

  /** The members at the time of the call; a member removed before it is reached is skipped. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const item of this.#members()) {
      if (this.#nodeOf(item) !== undefined) yield item;
    }
  }

  #members(): T[] {
    const items: T[] = [];
    for (let n = this.#head; n !== null; n = n.next) items.push(n.item);
    return items;
  }

  #nodeOf(item: T): Node<T> | undefined {
    const node = (item as Record<symbol, Node<T> | undefined>)[this.slot];
    return node !== undefined && node.owner === this ? node : undefined;
  }
}
