import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The dashboard's own modules (components/, lib/, app/) and what each imports among them: "./X", "../lib/x" and
// "@/lib/x" specifiers, resolved to a path relative to the frontend root without its extension.
const ROOT = join(__dirname, "..");
const FOLDERS = ["app", "components", "lib"];
const IMPORT = /^\s*(?:import|export)\b[^"']*?from\s+["']([^"']+)["']/gm;

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

function moduleName(file: string): string {
  return file.replace(/\.tsx?$/, "");
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of FOLDERS.flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const targets = [...text.matchAll(IMPORT)]
      .map((match) => match[1])
      .filter((specifier) => specifier.startsWith(".") || specifier.startsWith("@/"))
      .map((specifier) =>
        specifier.startsWith("@/") ? specifier.slice(2) : relative(ROOT, join(ROOT, file, "..", specifier)),
      );
    graph.set(moduleName(file), targets);
  }
  return graph;
}

function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    if (state.get(node) === "done" || !graph.has(node)) return null;
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

describe("the dashboard's modules", () => {
  it("are found with the imports between them", () => {
    expect(importGraph().get("components/AnalyseView")).toContain("components/FaceCard");
  });

  it("import one another without a cycle", () => {
    expect(findCycle(importGraph())).toBeNull();
  });

  it("would report a cycle", () => {
    expect(findCycle(new Map([["a", ["b"]], ["b", ["a"]]]))).toEqual(["a", "b", "a"]);
  });
});
