/**
 * Routing: a listener's routes, first match wins (host exact or `*.suffix`, then path
 * prefix). Compiled once per snapshot; matching allocates nothing.
 */

import type { RouteConfig } from "../config/types.ts";

export interface CompiledRoute {
  /** "listener#index", used as the route label in logs and metrics */
  readonly id: string;
  readonly config: RouteConfig;
  readonly hostExact?: string;
  /** ".example.com" for "*.example.com" */
  readonly hostSuffix?: string;
  readonly pathPrefix?: string;
}

export class Router {
  readonly routes: readonly CompiledRoute[];

  constructor(listener: string, routes: readonly RouteConfig[]) {
    this.routes = routes.map((r, i) => {
      const host = r.host?.toLowerCase();
      return {
        id: `${listener}#${i}`,
        config: r,
        hostExact: host && !host.startsWith("*.") ? host : undefined,
        hostSuffix: host?.startsWith("*.") ? host.slice(1) : undefined,
        pathPrefix: r.path_prefix,
      };
    });
  }

  /** `authority` as received (port and case ignored); `path` origin-form. */
  match(authority: string, path: string): CompiledRoute | undefined {
    let host: string | undefined;
    for (const r of this.routes) {
      if (r.hostExact !== undefined || r.hostSuffix !== undefined) {
        host ??= hostOf(authority);
        if (
          r.hostExact !== undefined
            ? host !== r.hostExact
            : !(host.endsWith(r.hostSuffix!) && host.length > r.hostSuffix!.length)
        ) continue;
      }
      if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) continue;
      return r;
    }
    return undefined;
  }
}

/** "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]". */
export function hostOf(authority: string): string {
  let end = authority.length;
  if (authority.charCodeAt(0) === 0x5b) {
    const close = authority.indexOf("]");
    end = close >= 0 ? close + 1 : end;
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon >= 0) end = colon;
  }
  const h = authority.slice(0, end);
  return h.endsWith(".") ? h.slice(0, -1).toLowerCase() : h.toLowerCase();
}
