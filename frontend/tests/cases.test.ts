import { afterEach, describe, expect, it, vi } from "vitest";
import { casesQuery, exportUrl, fetchCases, reviewCase, seenBeforeText } from "@/lib/cases";

afterEach(() => vi.unstubAllGlobals());

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

describe("casesQuery", () => {
  it("leaves empty filters out and turns days into a UTC range ending at the next midnight", () => {
    expect(casesQuery({})).toBe("");
    expect(casesQuery({ verdict: "", decision: "", model_version: "  " })).toBe("");
    const query = new URLSearchParams(
      casesQuery({ verdict: "synthetic", decision: "none", since: "2026-01-31", until: "2026-01-31", disagreements: true }),
    );
    expect(query.get("verdict")).toBe("synthetic");
    expect(query.get("decision")).toBe("none");
    expect(query.get("since")).toBe("2026-01-31T00:00:00Z");
    expect(query.get("until")).toBe("2026-02-01T00:00:00Z");
    expect(query.get("disagreements")).toBe("true");
  });

  it("searches by sha256 only when it is one", () => {
    const sha = "AB".repeat(32);
    expect(casesQuery({ sha256: sha })).toBe(`?sha256=${"ab".repeat(32)}`);
    expect(casesQuery({ sha256: "abc" })).toBe("");
  });
});

describe("fetchCases", () => {
  it("pages with the cursor and says null when the store is off", async () => {
    const fetchMock = vi
      .fn()
      .mockResolvedValueOnce(answer(200, { cases: [], next_cursor: null }))
      .mockResolvedValueOnce(answer(404, { error: { code: "cases_off", message: "off" } }));
    vi.stubGlobal("fetch", fetchMock);
    expect(await fetchCases({ verdict: "authentic" }, "abc", 20)).toEqual({ cases: [], next_cursor: null });
    expect(fetchMock.mock.calls[0][0]).toBe("/v1/cases?verdict=authentic&limit=20&cursor=abc");
    expect(await fetchCases({})).toBeNull();
  });

  it("sends a review as a PATCH of the fields given", async () => {
    const fetchMock = vi.fn().mockResolvedValue(answer(200, { id: 3 }));
    vi.stubGlobal("fetch", fetchMock);
    await reviewCase(3, { decision: "confirmed_authentic" });
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe("/v1/cases/3");
    expect(init.method).toBe("PATCH");
    expect(JSON.parse(init.body as string)).toEqual({ decision: "confirmed_authentic" });
  });
});

describe("exports and seen-before", () => {
  it("exports the disagreements as the labelled folder", () => {
    expect(exportUrl({ disagreements: true }, "zip")).toBe("/v1/cases/export?disagreements=true&format=zip");
  });

  it("says when and what the earlier check said", () => {
    const text = seenBeforeText({ created_at: "2026-02-03T10:00:00Z", verdict: "synthetic", decision: "confirmed_authentic", times: 2 });
    expect(text).toMatch(/^Seen before on .+, verdict synthetic \(reviewed: confirmed authentic\); judged 2 times before$/);
  });
});
