/**
 * MemberList (src/net/member_list.ts) stands in for the process-wide Sets of connections and
 * deadlines, so it must keep a Set's semantics: one entry per member however often it is added,
 * removing an absent member is harmless, and iteration tolerates the visitor removing members.
 */

import assert from "node:assert/strict";
import { MemberList, memberSlot } from "../../../src/net/member_list.ts";

interface Member {
  name: string;
}

const TEST = memberSlot("test");
const members = (n: number): Member[] => Array.from({ length: n }, (_, i) => ({ name: `m${i}` }));

Deno.test("MemberList: add is idempotent, delete of an absent member does nothing, size follows", () => {
  const list = new MemberList<Member>(TEST);
  const [a, b, c] = members(3);
  list.add(a);
  list.add(a);
  list.add(b);
  assert.equal(list.size, 2);
  assert.ok(list.has(a) && list.has(b) && !list.has(c));
  assert.equal(list.delete(c), false);
  assert.equal(list.size, 2);
  assert.equal(list.delete(a), true);
  assert.equal(list.delete(a), false);
  assert.equal(list.size, 1);
  assert.deepEqual([...list], [b]);
  list.add(a); // a removed member can come back
  assert.deepEqual(new Set(list), new Set([a, b]));
});

Deno.test("MemberList: one member in lists of two kinds keeps separate entries", () => {
  const one = new MemberList<Member>(memberSlot("one")), two = new MemberList<Member>(memberSlot("two"));
  const [a] = members(1);
  one.add(a);
  two.add(a);
  one.delete(a);
  assert.ok(!one.has(a) && two.has(a));
  assert.equal(two.size, 1);
});

Deno.test("MemberList: lists of one kind share the slot; a member is in one of them at a time", () => {
  const first = new MemberList<Member>(TEST), second = new MemberList<Member>(TEST);
  const [a, b] = members(2);
  first.add(a);
  second.add(b);
  assert.ok(first.has(a) && !first.has(b) && second.has(b) && !second.has(a));
  second.delete(a); // not its list: nothing happens
  assert.ok(first.has(a) && first.size === 1 && second.size === 1);
  assert.throws(() => second.add(a), /already in another list of kind test/);
  first.delete(a);
  second.add(a); // free again
  assert.deepEqual(new Set(second), new Set([a, b]));
  // Members of every list of the kind keep one hidden class: the same property key on all.
  assert.deepEqual(Object.getOwnPropertySymbols(a), Object.getOwnPropertySymbols(b));
});

Deno.test("MemberList: a visitor may remove itself and members not yet reached; those are skipped", () => {
  const list = new MemberList<Member>(TEST);
  const all = members(6);
  for (const m of all) list.add(m);
  const seen: Member[] = [];
  for (const m of list) {
    seen.push(m);
    list.delete(m);
    // Remove the next two members as well: they must not be visited.
    let skipped = 0;
    for (const other of all) {
      if (skipped === 2) break;
      if (other !== m && list.has(other)) {
        list.delete(other);
        skipped++;
      }
    }
  }
  assert.equal(seen.length, 2);
  assert.equal(list.size, 0);
  assert.deepEqual([...list], []);
});

Deno.test("MemberList: clear removes every member; members added during a walk wait for the next", () => {
  const list = new MemberList<Member>(TEST);
  const all = members(4);
  for (const m of all.slice(0, 2)) list.add(m);
  const seen: Member[] = [];
  for (const m of list) {
    seen.push(m);
    list.add(all[2]);
  }
  assert.equal(seen.length, 2);
  assert.equal(list.size, 3);
  list.clear();
  assert.equal(list.size, 0);
  assert.ok(all.every((m) => !list.has(m)));
});
