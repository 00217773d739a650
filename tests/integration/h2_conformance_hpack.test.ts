/**
 * h2spec HPACK cases: the "generic" group's section 5 (every field representation of RFC 7541 §6
 * must be accepted) and the "hpack" group (2.3.3, 4.2, 5.2, 6.1, 6.3: decoding errors must be
 * connection errors COMPRESSION_ERROR) — same representations sent, same outcomes accepted (see
 * h2spec_helpers.ts), against the h2c and the TLS (ALPN h2) listener.
 */

import {
  concatBytes,
  ErrorCode,
  headersFrame,
  hpackInt,
  hpackString,
  huffman,
  runSpec,
  type SpecCase,
  type SpecConn,
} from "./h2spec_helpers.ts";

const { COMPRESSION_ERROR } = ErrorCode;
/** Static table index of "user-agent" (RFC 7541 Appendix A). */
const USER_AGENT = 58;

/** HEADERS on stream 1: the common request fields, then (or, with `before`, preceded by) `rep`. */
async function sendWith(c: SpecConn, rep: Uint8Array, before = false): Promise<void> {
  const block = c.encode(c.common());
  await c.send(headersFrame(1, before ? concatBytes(rep, block) : concatBytes(block, rep)));
}

type Repr = "incremental" | "without" | "never";
/** First-octet pattern and name-index prefix of each literal representation (RFC 7541 §6.2). */
const LITERAL: Record<Repr, [pattern: number, prefix: number]> = {
  incremental: [0x40, 6],
  without: [0x00, 4],
  never: [0x10, 4],
};

/** A literal field: `user-agent: h2spec` by static index, or `x-test: h2spec` with a new name. */
function literal(repr: Repr, newName: boolean, huff: boolean): Uint8Array {
  const [pattern, prefix] = LITERAL[repr];
  const str = (s: string) => hpackString(huff ? { huffman: huffman(s) } : s);
  return newName
    ? concatBytes(new Uint8Array([pattern]), str("x-test"), str("h2spec"))
    : concatBytes(hpackInt(USER_AGENT, prefix, pattern), str("h2spec"));
}

const accepted = (id: string, desc: string, rep: () => Uint8Array, before = false): SpecCase => ({
  id,
  desc: `${desc} is accepted`,
  async run(c) {
    await sendWith(c, rep(), before);
    await c.headersFrame(1);
  },
});

const rejected = (id: string, desc: string, rep: (c: SpecConn) => Uint8Array, before = false): SpecCase => ({
  id,
  desc: `${desc} → connection COMPRESSION_ERROR`,
  async run(c) {
    await sendWith(c, rep(c), before);
    await c.connectionError(COMPRESSION_ERROR);
  },
});

const generic: SpecCase[] = [
  accepted("generic/5/1", "indexed field (user-agent, static)", () => hpackInt(USER_AGENT, 7, 0x80)),
  accepted(
    "generic/5/2",
    "literal with incremental indexing, indexed name",
    () => literal("incremental", false, false),
  ),
  accepted(
    "generic/5/3",
    "literal with incremental indexing, indexed name, Huffman",
    () => literal("incremental", false, true),
  ),
  accepted(
    "generic/5/4",
    "literal with incremental indexing, new name",
    () => literal("incremental", true, false),
  ),
  accepted(
    "generic/5/5",
    "literal with incremental indexing, new name, Huffman",
    () => literal("incremental", true, true),
  ),
  accepted("generic/5/6", "literal without indexing, indexed name", () => literal("without", false, false)),
  accepted(
    "generic/5/7",
    "literal without indexing, indexed name, Huffman",
    () => literal("without", false, true),
  ),
  accepted("generic/5/8", "literal without indexing, new name", () => literal("without", true, false)),
  accepted(
    "generic/5/9",
    "literal without indexing, new name, Huffman",
    () => literal("without", true, true),
  ),
  accepted("generic/5/10", "literal never indexed, indexed name", () => literal("never", false, false)),
  accepted(
    "generic/5/11",
    "literal never indexed, indexed name, Huffman",
    () => literal("never", false, true),
  ),
  accepted("generic/5/12", "literal never indexed, new name", () => literal("never", true, false)),
  accepted("generic/5/13", "literal never indexed, new name, Huffman", () => literal("never", true, true)),
  accepted(
    "generic/5/14",
    "dynamic table size update to 0 at the block start",
    () => hpackInt(0, 5, 0x20),
    true,
  ),
  accepted(
    "generic/5/15",
    "two dynamic table size updates (0, then 4096) at the block start",
    () => concatBytes(hpackInt(0, 5, 0x20), hpackInt(4096, 5, 0x20)),
    true,
  ),
];

const hpack: SpecCase[] = [
  // 2.3.3 Index Address Space
  rejected("hpack/2.3.3/1", "indexed field with an index beyond both tables", () => hpackInt(126, 7, 0x80)),
  rejected(
    "hpack/2.3.3/2",
    "literal field whose name index is beyond both tables",
    () => concatBytes(hpackInt(126, 6, 0x40), hpackString("test")),
  ),

  // 4.2 Maximum Table Size
  rejected("hpack/4.2/1", "dynamic table size update at the end of a block", () => hpackInt(1, 5, 0x20)),

  // 5.2 String Literal Representation (x-test: test, Huffman value)
  rejected("hpack/5.2/1", "Huffman string with padding longer than 7 bits", () =>
    concatBytes(
      new Uint8Array([0x00]),
      hpackString({ huffman: huffman("x-test") }),
      hpackString({ huffman: concatBytes(huffman("test"), new Uint8Array([0xff])) }),
    )),
  rejected("hpack/5.2/2", "Huffman string padded with zeros", () => {
    const value = huffman("test");
    value[value.length - 1] &= 0xf0; // "test" is 20 bits: the last 4 are padding, made 0 instead of 1
    return concatBytes(
      new Uint8Array([0x00]),
      hpackString({ huffman: huffman("x-test") }),
      hpackString({ huffman: value }),
    );
  }),
  rejected("hpack/5.2/3", "Huffman string containing the EOS symbol", () =>
    concatBytes(
      new Uint8Array([0x00]),
      hpackString({ huffman: huffman("x-test") }),
      hpackString({ huffman: huffman("test", { insertEosAfter: 2 }) }),
    )),

  // 6.1 Indexed Header Field Representation
  rejected("hpack/6.1/1", "indexed field with index 0", () => new Uint8Array([0x80])),

  // 6.3 Dynamic Table Size Update
  rejected(
    "hpack/6.3/1",
    "dynamic table size update above SETTINGS_HEADER_TABLE_SIZE",
    (c) => hpackInt((c.serverSettings.get(0x1) ?? 4096) + 1, 5, 0x20),
    true,
  ),
];

Deno.test("h2spec HPACK (generic 5, hpack 2.3.3–6.3) on h2c and h2", async (t) => {
  await runSpec(t, [...generic, ...hpack]);
});
