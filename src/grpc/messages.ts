/**
 * Just enough of gRPC's wire format for grpc.health.v1, both ways: the 5-octet message prefix
 * (compressed flag + big-endian length) and the two protobuf messages, hand-encoded:
 *   HealthCheckRequest  { string service = 1; }
 *   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
 * A full protobuf library would be a dependency for two fields.
 */

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/** One length-prefixed gRPC message (uncompressed). */
export function frameMessage(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + msg.length);
  new DataView(out.buffer).setUint32(1, msg.length);
  out.set(msg, 5);
  return out;
}

/**
 * The first message of `bytes`: its payload, or a reason it cannot be read. `undefined` while
 * the prefix says more bytes are coming.
 */
export function unframeMessage(bytes: Uint8Array): { msg: Uint8Array; compressed: boolean } | undefined {
  if (bytes.length < 5) return undefined;
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
  if (bytes.length < 5 + len) return undefined;
  return { msg: bytes.subarray(5, 5 + len), compressed: bytes[0] !== 0 };
}

/** The bytes a message prefix says the first message needs (prefix included); 5 while unknown. */
export function framedLength(bytes: Uint8Array): number {
  if (bytes.length < 5) return 5;
  return 5 + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

export function encodeHealthRequest(service: string): Uint8Array {
  if (service === "") return new Uint8Array(0);
  const s = new TextEncoder().encode(service);
  return new Uint8Array([0x0a, ...varint(s.length), ...s]);
}

export function encodeHealthResponse(status: number): Uint8Array {
  return status === 0 ? new Uint8Array(0) : new Uint8Array([0x08, ...varint(status)]);
}

/** Walks the fields of a protobuf message; calls `on` for each, stops on malformed input (false). */
function walk(
  msg: Uint8Array,
  on: (field: number, wire: number, value: number | Uint8Array) => void,
): boolean {
  let p = 0;
  const readVarint = (): number | undefined => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= msg.length) return undefined;
      const b = msg[p++];
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    return undefined;
  };
  while (p < msg.length) {
    const key = readVarint();
    if (key === undefined) return false;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    switch (wire) {
      case 0: {
        const v = readVarint();
        if (v === undefined) return false;
        on(field, wire, v);
        break;
      }
      case 1:
      case 5: {
        const n = wire === 1 ? 8 : 4;
        if (p + n > msg.length) return false;
        p += n;
        break;
      }
      case 2: {
        const len = readVarint();
        if (len === undefined || p + len > msg.length) return false;
        on(field, wire, msg.subarray(p, p + len));
        p += len;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

/** HealthCheckRequest.service; undefined when the message is malformed. */
export function decodeHealthRequest(msg: Uint8Array): string | undefined {
  let service = "";
  let bad = false;
  const ok = walk(msg, (field, wire, value) => {
    if (field !== 1) return;
    if (wire !== 2) bad = true;
    else {
      try {
        service = new TextDecoder("utf-8", { fatal: true }).decode(value as Uint8Array);
      } catch {
        bad = true;
      }
    }
  });
  return ok && !bad ? service : undefined;
}

/** HealthCheckResponse.status; undefined when malformed. */
export function decodeHealthResponse(msg: Uint8Array): number | undefined {
  let status = 0;
  let bad = false;
  const ok = walk(msg, (field, wire, value) => {
    if (field !== 1) return;
    if (wire !== 0) bad = true;
    else status = value as number;
  });
  return ok && !bad ? status : undefined;
}
