/**
 * gRPC as the gateway sees it: which requests are gRPC (content-type), the status codes, and the
 * errors the gateway answers itself. Those are Trailers-Only responses (HTTP 200, grpc-status and
 * grpc-message in the only HEADERS frame), because a gRPC client reads the outcome of a call from
 * grpc-status — an HTTP 503 would only be guessed at through the spec's HTTP→gRPC mapping.
 * See https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
 */

import { getHeader, type HeaderList, type ProxyResponse } from "../http/exchange.ts";

/** The canonical status codes the gateway produces (google.rpc.Code). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** `application/grpc` or `application/grpc+proto` (and parameters) — not grpc-web, which is HTTP/1-friendly. */
export function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || ct.length < 16) return false;
  const v = ct.toLowerCase();
  if (!v.startsWith("application/grpc")) return false;
  const next = v.charCodeAt(16);
  return v.length === 16 || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

export function isGrpcRequest(headers: HeaderList): boolean {
  return isGrpcContentType(getHeader(headers, "content-type"));
}

/** grpc-message is percent-encoded: everything outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(text)) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** A Trailers-Only answer: the call failed with `code` before any message. */
export function grpcErrorResponse(code: number, message: string, extra: HeaderList = []): ProxyResponse {
  return {
    status: 200,
    headers: [
      "content-type",
      "application/grpc",
      "grpc-status",
      String(code),
      "grpc-message",
      encodeGrpcMessage(message),
      ...extra,
    ],
    body: null,
  };
}

/**
 * The gRPC status for an error the gateway produced with HTTP `status` (the spec's HTTP→gRPC
 * mapping, with the gateway's own meanings: 404 is "no route", i.e. no such method here).
 */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 413:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}
