/** Release version; bumped with CHANGELOG.md. */
export const VERSION = "0.1.0";
