import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// `lib/api-schema.ts` is generated from `openapi.json` (itself exported from the service, and checked against it by
// tests/test_openapi_types.py); regenerate both with `make types`.
const ROOT = join(__dirname, "..");
const CLI = join(ROOT, "node_modules", "openapi-typescript", "bin", "cli.js");

describe("lib/api-schema.ts", () => {
  it("is what openapi-typescript generates from openapi.json today", () => {
    const generated = execFileSync(process.execPath, [CLI, join(ROOT, "openapi.json")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    const committed = readFileSync(join(ROOT, "lib", "api-schema.ts"), "utf8");
    expect(committed === generated, "lib/api-schema.ts is stale: run `make types`").toBe(true);
  }, 30_000);
});
